"""The in-process executor: a run's stages as plain objects on one event loop.

The same stage classes as on Ray (:mod:`actors`), wired with the clients of
:mod:`actors.local`, all in the calling process and without Ray: a stage can
be stepped through in a debugger or profiled as one program. It is a layout
of ``kind: inprocess`` (``--layout in-process``). Every stage shares one
core, so its figures are those of one process, not of the topology spread
over a cluster; placement, Ray metrics and the dashboard do not apply.

As on Ray, every wait has a deadline and a run that fails keeps what it
measured (:class:`~lab.errors.RunFailed`).
"""

import asyncio
import os
import signal
import socket
from pathlib import Path

from actors.backend import Backend
from actors.collector import Collector
from actors.engine_shard import EngineShard
from actors.gateway_app import serve_gateway
from actors.heap import settle_heap
from actors.http_client import http_clients
from actors.http_server import HttpServer
from actors.load_generator import LoadGenerator, RunWindow
from actors.local import LocalBackendClient, LocalShardClient, LocalStatsClient
from actors.order_flow import OrderFlow
from actors.stage_stats import host_cpus
from lab.config import ExperimentConfig, Layout
from lab.errors import RunFailed
from lab.replay.journal import write_journal
from lab.run.stages import START_LEAD_S, Stage, StagePlan, named, plan_stages, used

__all__ = ["InProcessExecutor"]

#: How long after its duration and drain a run may take to wrap up before it fails.
_WRAP_UP_S = 30.0
_PROGRESS_S = 0.5


class InProcessExecutor:
    """The stages of one run in this process; ``run()`` drives it."""

    def __init__(
        self, config: ExperimentConfig, layout: Layout, run_id: str, serving: bool = False
    ):
        self.config = config
        self.run_id = run_id
        self._loop = asyncio.new_event_loop()
        plan = plan_stages(config, serving, run_id)
        self.shards = [EngineShard(**s.kwargs) for s in plan.shards]
        shards = named(plan.shards, [LocalShardClient(s) for s in self.shards])
        self.backends = [Backend(shards=used(s, shards), **s.kwargs) for s in plan.backends]
        self.names = [s.name for s in plan.all()]
        self._plan: StagePlan = plan
        self._servers: list[HttpServer] = []
        self.gateway_urls: list[str] = []
        # Over HTTP, generators are made once the gateways serve (wait_ready).
        if plan.gateway is None:
            self._add_generators([LocalBackendClient(b) for b in self.backends])

    def _add_generators(self, backend_clients: list) -> None:
        """Generators, each with the clients of the backends it uses; then the collector."""
        plan = self._plan
        backends = named(plan.backends, backend_clients)
        self.generators = [_generator(s, used(s, backends)) for s in plan.generators]
        polled = named(plan.all()[:-1], [*self.shards, *self.backends, *self.generators])
        sources = {name: LocalStatsClient(polled[name]) for name in plan.collector.uses}
        self.collector = Collector(sources, plan.interval_s)

    async def _open_gateways(self) -> None:
        """One gateway per backend on this loop, each on its own port, as on Ray."""
        spec = self._plan.gateway
        peers = [LocalBackendClient(b) for b in self.backends]
        queries = [LocalShardClient(s) for s in self.shards]
        for i, backend in enumerate(self.backends):
            server, port = await serve_gateway(i, peers, queries, spec, backend.stores)
            self._servers.append(server)
            self.gateway_urls.append(f"http://127.0.0.1:{port}")
        gateways = {"urls": self.gateway_urls, "api_key": spec["run_key"]}
        self._add_generators(http_clients({**gateways, "symbols": spec["symbols"]}))

    def wait_ready(self, on_progress=None) -> None:
        """Compile (or load from Numba's cache) every stage's kernels, as the actors do."""
        if self._plan.gateway is not None:
            self._loop.run_until_complete(self._open_gateways())
        stages = [*self.shards, *self.backends, *self.generators]
        for done, stage in enumerate(stages, start=1):
            stage.warm_up()
            if on_progress is not None:
                on_progress({"phase": "starting", "ready": done, "total": len(self.names)})
        settle_heap()
        if on_progress is not None:  # and the collector, which has nothing to compile
            on_progress({"phase": "starting", "ready": len(self.names), "total": len(self.names)})

    def nodes(self) -> dict[str, dict]:
        """Every stage is in this process."""
        here = {"host": socket.gethostname(), "node_ip": "127.0.0.1", "node_id": "in-process"}
        here["pid"] = os.getpid()
        here["host_cpus"] = host_cpus()
        return {name: dict(here) for name in self.names}

    def run(self, on_progress=None) -> dict:
        """Drive the run to its end; the generators' tallies and the collector's series."""
        return self._loop.run_until_complete(self._run(on_progress))

    async def _run(self, on_progress) -> dict:
        exp = self.config.experiment
        collecting = asyncio.ensure_future(self.collector.run(START_LEAD_S))
        window = (START_LEAD_S, exp.warmup_s, exp.duration_s, exp.drain_s)
        runs = {
            asyncio.ensure_future(g.run(RunWindow.starting_in(*window))): f"loadgen-{i}"
            for i, g in enumerate(self.generators)
        }
        ends = self._loop.time() + START_LEAD_S + exp.duration_s + exp.drain_s + _WRAP_UP_S
        pending = set(runs)
        try:
            while pending:
                _, pending = await asyncio.wait(pending, timeout=_PROGRESS_S)
                for task in runs:
                    if task.done() and task.exception() is not None:
                        error = task.exception()
                        raise self._failed(f"{runs[task]} failed: {type(error).__name__}: {error}")
                if pending and self._loop.time() > ends:
                    late = ", ".join(sorted(runs[t] for t in pending))
                    raise self._failed(f"{late} did not finish its run by its end and drain")
                if on_progress is not None:
                    on_progress(self.collector.progress())
        finally:
            for task in pending:
                task.cancel()
            await self.collector.stop()
            await collecting
        # Every journal and cache write of the run lands before the run counts as done.
        await asyncio.gather(*(b.close_stores() for b in self.backends))
        return {
            "tallies": [task.result() for task in runs],
            "journals": self._journals(),
            "resting": {f"engine-{i}": s.resting() for i, s in enumerate(self.shards)},
            **self.collector.summary(),
        }

    def serve(self) -> None:
        """Serve until SIGINT or SIGTERM (``lab serve``): the gateways answer while the loop runs.

        The loop takes the signals itself: a KeyboardInterrupt raised wherever the
        loop happened to be could land inside a server's own task and be lost there.
        """
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._loop.add_signal_handler(sig, stop.set)
        try:
            self._loop.run_until_complete(stop.wait())
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.remove_signal_handler(sig)

    def serve_while(self, work):
        """``work()`` in a thread while the gateways serve on this loop; its result."""
        return self._loop.run_until_complete(asyncio.to_thread(work))

    def dashboard_url(self) -> None:
        return None  # no Ray, no dashboard

    def _journals(self) -> list:
        if not self.config.topology.journal:
            return []
        directory = str(Path(self.config.topology.journal_dir) / self.run_id)
        return [write_journal(s.journal_arrays(), directory) for s in self.shards]

    def _failed(self, reason: str) -> RunFailed:
        partial = {"tallies": [g.tally_so_far() for g in self.generators]}
        return RunFailed(reason, {**partial, **self.collector.summary()})

    def shutdown(self) -> None:
        async def close() -> None:
            for server in self._servers:
                await server.close()
            for generator in getattr(self, "generators", []):
                for client in generator.backends:
                    if hasattr(client, "close"):
                        await client.close()

        self._loop.run_until_complete(close())
        self._loop.close()


def _generator(stage: Stage, backends: list) -> LoadGenerator:
    """A load generator with its own order flow, as :class:`GeneratorActor` builds it."""
    kwargs = dict(stage.kwargs)
    flow = OrderFlow(
        kwargs.pop("flow_params"),
        seed=kwargs.pop("flow_seed"),
        first_order_id=kwargs.pop("first_order_id"),
        pool_size=kwargs.pop("tracked_orders"),
    )
    return LoadGenerator(backends=backends, flow=flow, **kwargs)
