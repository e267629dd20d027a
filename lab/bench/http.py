"""``lab bench http``: what HTTP costs, in one session, with one load client for all three.

1. ``bare``: a FastAPI endpoint with the gateway's request model (``OrderIn``)
   that answers at once, on uvicorn (httptools, one worker) as its defaults serve
   it, on uvloop, in its own process;
2. ``per_order``: one NEW order per ``POST /v1/orders`` through the platform's
   gateways (``lab serve``'s stages on the layout; each request goes to the
   gateway whose backend owns its account);
3. ``batch``: ``POST /v1/orders/batch`` with 1,000 orders per request;
4. ``batch_of_one``: ``POST /v1/orders/batch`` with one order per request, as the
   load generators of ``transport: http`` send it at ``batch_size: 1`` (that
   route also takes their cancels and carries their maker notices).

The load client is one process of its own (aiohttp, keep-alive, a fixed number
of requests in flight) so that it never shares an event loop with a server;
it counts the requests answered 2xx and the orders they carried within the
measured seconds, and how busy the host's CPUs were meanwhile (``host_busy``).
Every figure is measured with the same client, so the ratio per_order / bare
says what the platform adds to a request.
"""

import asyncio
import multiprocessing
import random
import time

import orjson
import uvloop

from actors.stage_stats import host_cpu_ticks
from lab.run.executor import open_executor
from lab.run.experiment import Experiment
from lab.store.result_store import new_run_id

__all__ = ["bare_app", "measure", "run_http_bench"]

_BENCH_KEY = "bench-http"  # only for this process's own platform, never stored
#: Requests in flight: where each leg's requests/s has levelled off. A gateway groups
#: the orders that arrive together, so with few in flight it pays its shard call and
#: its group for few orders: on 2026-12-08, per order 6,618 requests/s with 32 in
#: flight, 8,078 with 64, 8,072 with 128; the bare app 9,673, 10,364 and 9,895.
IN_FLIGHT = 64


def run_http_bench(
    config: str,
    layout: str,
    overrides: list[str],
    duration_s: float = 5.0,
    in_flight: int = IN_FLIGHT,
) -> dict:
    bare = _measure_bare(duration_s, in_flight)
    experiment = Experiment.from_yaml(config, layout=layout, overrides=overrides)
    # The bench's own key, for its own platform only (the user's keys are kept).
    config = experiment.config
    keys = {**config.gateway.api_keys, _BENCH_KEY: "*"}
    config = config.model_copy(
        update={"gateway": config.gateway.model_copy(update={"api_keys": keys})}
    )
    symbols, accounts = config.workload.names, config.workload.accounts
    with open_executor(config, experiment.layout, new_run_id("bench"), True) as ex:
        ex.wait_ready()
        urls = ex.gateway_urls
        singles = _order_bodies(urls, symbols, accounts, 1)
        batches = _order_bodies(urls, symbols, accounts, 1000)
        per_order = ex.serve_while(lambda: measure(singles, "/v1/orders", duration_s, in_flight))
        batch = ex.serve_while(lambda: measure(batches, "/v1/orders/batch", duration_s, 4))
        ones = _order_bodies(urls, symbols, accounts, 1, as_batch=True)
        one = ex.serve_while(lambda: measure(ones, "/v1/orders/batch", duration_s, in_flight))
    return {
        "bare_rps": bare["rps"],
        "per_order_rps": per_order["rps"],
        "per_order_vs_bare": round(per_order["rps"] / max(bare["rps"], 1e-9), 3),
        "batch_orders_per_s": batch["orders_per_s"],
        "batch_rps": batch["rps"],
        "batch_of_one_rps": one["rps"],
        "bare": bare,
        "per_order": per_order,
        "batch": batch,
        "batch_of_one": one,
        "layout": experiment.layout_name,
        "gateways": len(urls),
        "in_flight": in_flight,
    }


# -- the three servers' loads ---------------------------------------------------------------


def _measure_bare(duration_s: float, in_flight: int) -> dict:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    server = ctx.Process(target=_serve_bare, args=(ready,), daemon=True)
    server.start()
    try:
        port = ready.get(timeout=60)
        target = (f"http://127.0.0.1:{port}", [bare_body()], 1)
        return measure([target], "/v1/orders", duration_s, in_flight)
    finally:
        server.terminate()
        server.join(10)


def bare_app():
    """A FastAPI app with the gateway's request model whose ``POST /v1/orders`` answers at once."""
    from fastapi import FastAPI

    from actors.http_models import OrderIn, OrderOut

    app = FastAPI()
    answer = OrderOut(order_id=1, reports=[])

    @app.post("/v1/orders", response_model=OrderOut)
    async def post_order(order: OrderIn):
        return answer

    return app


def bare_body() -> bytes:
    """The one request body the bare endpoints are sent."""
    return orjson.dumps(_order(1, "S0", 1))


def _serve_bare(ready) -> None:
    """The bare app on uvicorn, in a process of its own, on uvloop as uvicorn picks by default."""

    async def main() -> None:
        from actors.http_server import HttpServer

        server = HttpServer(bare_app())
        ready.put(await server.start("127.0.0.1", 0))
        await asyncio.Event().wait()

    uvloop.run(main())


def _order(account: int, symbol: str, rng_seed: int) -> dict:
    rng = random.Random(rng_seed)
    return {
        "symbol": symbol,
        "side": rng.choice("BS"),
        "price": 10_000 + rng.randint(-20, 20),
        "qty": rng.randint(1, 10),
        "account": account,
    }


def _order_bodies(
    urls: list[str], symbols: list[str], accounts: int, per_request: int, as_batch=False
):
    """Per gateway: a few request bodies of accounts its backend owns (ids left to it);
    one order alone, unless ``per_request`` > 1 or ``as_batch``."""
    out = []
    for g, url in enumerate(urls):
        mine = [a for a in range(1, accounts + 1) if a % len(urls) == g] or [g + 1]
        bodies = []
        for k in range(16):
            orders = [
                _order(
                    mine[(k * per_request + i) % len(mine)], symbols[i % len(symbols)], k * 7919 + i
                )
                for i in range(per_request)
            ]
            alone = per_request == 1 and not as_batch
            bodies.append(orjson.dumps(orders[0] if alone else {"orders": orders}))
        out.append((url, bodies, per_request))
    return out


def measure(targets, path: str, duration_s: float, in_flight: int) -> dict:
    """Run the load client in a process of its own against ``targets``; its counts.

    ``targets``: ``(base_url, [request bodies], orders per request)`` per server;
    the ``in_flight`` workers are spread over them round robin.
    """
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    client = ctx.Process(target=_load, args=(targets, path, duration_s, in_flight, results))
    client.start()
    try:
        return results.get(timeout=duration_s + 120)
    finally:
        client.join(30)


def _load(targets, path, duration_s, in_flight, results) -> None:
    results.put(asyncio.run(_load_async(targets, path, duration_s, in_flight)))


async def _load_async(targets, path, duration_s, in_flight) -> dict:
    import aiohttp

    headers = {"X-API-Key": _BENCH_KEY, "Content-Type": "application/json"}
    counts = {"ok": 0, "failed": 0, "orders": 0}
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    warm_until = time.monotonic() + 1.0
    end = warm_until + duration_s
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(w: int) -> None:
            url, bodies, per_request = targets[w % len(targets)]
            k = w
            while (now := time.monotonic()) < end:
                body = bodies[k % len(bodies)]
                k += 1
                async with session.post(url + path, data=body, headers=headers) as answer:
                    await answer.read()
                    ok = 200 <= answer.status < 300
                    status = answer.status
                done = time.monotonic()
                if done < warm_until or done >= end:
                    continue
                counts["ok" if ok else "failed"] += 1
                statuses[status] = statuses.get(status, 0) + 1
                counts["orders"] += per_request if ok else 0
                latencies.append(done - now)

        async def host() -> None:  # how busy the host's CPUs were while counted
            await asyncio.sleep(warm_until - time.monotonic())
            ticks["from"] = host_cpu_ticks()
            await asyncio.sleep(end - time.monotonic())
            ticks["to"] = host_cpu_ticks()

        ticks: dict = {}
        await asyncio.gather(host(), *(worker(w) for w in range(in_flight)))
    latencies.sort()
    busy = None
    if ticks.get("from") and ticks.get("to") and ticks["to"][1] > ticks["from"][1]:
        busy = (ticks["to"][0] - ticks["from"][0]) / (ticks["to"][1] - ticks["from"][1])
    p = (lambda q: round(latencies[int(q * (len(latencies) - 1))] * 1e3, 3)) if latencies else None
    return {
        "rps": round(counts["ok"] / duration_s, 1),
        "orders_per_s": round(counts["orders"] / duration_s, 1),
        "failed": counts["failed"],
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": p(0.5) if p else None,
        "p99_ms": p(0.99) if p else None,
        "seconds": duration_s,
        "host_busy": None if busy is None else round(busy, 3),
    }
