"""``lab bench serve``: the two ways to serve the gateway from a Ray cluster, side by side.

The same bare FastAPI app (the gateway's request model, an answer at once) is
served from Ray twice, and measured with ``lab bench http``'s load client:

1. ``uvicorn_actor``: uvicorn on the event loop of one async Ray actor, the
   way the platform's gateways run (``actors.http_server.HttpServer``);
2. ``ray_serve``: one Ray Serve replica behind Serve's HTTP proxy, the app as
   its ``@serve.ingress``.

Neither does any work of its own, so the ratio is what the serving path costs
per request. The legs alternate over ``repeats`` so that neither always runs
first on a machine whose speed drifts. The platform keeps the faster one.
"""

import os
import socket
import statistics

import ray

from actors.http_server import HttpServer
from lab.bench.http import bare_app, bare_body, measure

__all__ = ["run_serve_bench"]

LEGS = ("uvicorn_actor", "ray_serve")
_PATH = "/v1/orders"


@ray.remote(num_cpus=0)
class _UvicornActor:
    """The bare app on uvicorn in this actor's event loop, as a gateway runs."""

    async def start(self) -> int:
        self._server = HttpServer(bare_app())
        return await self._server.start("127.0.0.1", 0)

    async def stop(self) -> None:
        await self._server.close()


def run_serve_bench(duration_s: float = 5.0, in_flight: int = 32, repeats: int = 2) -> dict:
    owned = not ray.is_initialized()
    if owned:
        ray.init(
            num_cpus=4,
            object_store_memory=200 << 20,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    runs = {leg: [] for leg in LEGS}
    try:
        with _uvicorn_actor() as uvicorn_url, _ray_serve(in_flight) as serve_url:
            urls = {"uvicorn_actor": uvicorn_url, "ray_serve": serve_url}
            for repeat in range(repeats):
                for leg in LEGS[:: 1 if repeat % 2 == 0 else -1]:
                    target = (urls[leg], [bare_body()], 1)
                    runs[leg].append(measure([target], _PATH, duration_s, in_flight))
    finally:
        if owned:
            ray.shutdown()
    summary = {leg: _summary(runs[leg]) for leg in LEGS}
    faster = max(LEGS, key=lambda leg: summary[leg]["rps"])
    return {
        "uvicorn_actor_rps": summary["uvicorn_actor"]["rps"],
        "ray_serve_rps": summary["ray_serve"]["rps"],
        "ray_serve_vs_uvicorn": round(
            summary["ray_serve"]["rps"] / max(summary["uvicorn_actor"]["rps"], 1e-9), 3
        ),
        "faster": faster,
        **summary,
        "runs": runs,
        "in_flight": in_flight,
        "repeats": repeats,
        "ray": ray.__version__,
        "load_avg": list(os.getloadavg()),
    }


def _summary(runs: list[dict]) -> dict:
    """Median requests/s and latencies over the repeats, and every failed request."""
    return {
        "rps": round(statistics.median(r["rps"] for r in runs), 1),
        "p50_ms": round(statistics.median(r["p50_ms"] or 0.0 for r in runs), 3),
        "p99_ms": round(statistics.median(r["p99_ms"] or 0.0 for r in runs), 3),
        "failed": sum(r["failed"] for r in runs),
    }


class _uvicorn_actor:
    def __enter__(self) -> str:
        self.actor = _UvicornActor.remote()
        port = ray.get(self.actor.start.remote(), timeout=60)
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        try:
            ray.get(self.actor.stop.remote(), timeout=30)
        finally:
            ray.kill(self.actor)


class _ray_serve:
    """One replica of the bare app behind Serve's proxy on a free local port."""

    def __init__(self, in_flight: int):
        self.in_flight = in_flight

    def __enter__(self) -> str:
        from ray import serve

        port = _free_port()
        # No access log: a line per request would be most of what the replica does.
        quiet = {"enable_access_log": False, "log_level": "WARNING"}
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=quiet)
        # Serve queues a replica's requests past max_ongoing_requests at the proxy:
        # room for every request in flight, as uvicorn takes them all.
        ingress = serve.deployment(
            num_replicas=1,
            ray_actor_options={"num_cpus": 0},
            max_ongoing_requests=max(self.in_flight, 1),
        )(serve.ingress(bare_app())(_BareIngress))
        serve.run(ingress.bind(), name="bench-serve", route_prefix="/", logging_config=quiet)
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        from ray import serve

        serve.shutdown()


class _BareIngress:
    """Serve's deployment class: the routes are the ingress app's."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
