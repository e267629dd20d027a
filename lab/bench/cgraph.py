"""``python -m lab.bench.cgraph``: the stream transport against a Ray compiled graph.

Both build the quickstart chain (the caller as its one generator, 2 backends,
2 engine shards) from the same actors doing the same no-op stage work: a
backend checks a batch, turns it into engine messages and splits it by shard;
a shard is a no-op ``EngineShard`` (one ACK per message); the backend joins
the shards' reports. Only the transport differs:

- ``stream``: the project's ``StreamServer`` in the actors, ``StreamClient``
  from the caller and from each backend; a call goes only to the backends and
  shards its orders route to.
- ``cgraph``: one compiled graph, ``route`` -> ``process`` -> ``merge``, over
  Ray's shared-memory channels. The graph is static: every call runs every
  node, with empty batches where no order goes.

Each transport's actors live only while it is measured: an idle compiled-graph
actor spins on its input channel, a core each (``idle_cores_busy``).
"""

import asyncio
import json
import os
import time
from collections import deque

import numpy as np
import ray
import uvloop

from actors.engine_shard import EngineShard
from actors.order_flow import OrderFlow
from actors.partition import split
from actors.ray_actors import StreamBackendClient, StreamShardClient
from actors.routing import backend_of_account, first_order_id, local_symbol, shard_of_symbol
from actors.stream import StreamServer
from actors.wire import ORDER_DTYPE, check_batch, concat_records, to_messages
from engine.messages import MESSAGE_DTYPE
from lab.bench.engine import STANDARD_MIX

__all__ = ["TRANSPORTS", "open_chain", "make_work", "run_cgraph_bench"]

N_BACKENDS = N_SHARDS = 2  # configs/quickstart.yaml
TRANSPORTS = ("stream", "cgraph")
_ACTOR = {"num_cpus": 0.25}  # 4 actors fit a 4-CPU local Ray
_CLK = os.sysconf("SC_CLK_TCK")


def _parts(batch: np.ndarray, route: np.ndarray, n: int, empty: np.ndarray) -> list:
    found = dict(split(batch, route, n))
    return [found.get(k, empty) for k in range(n)]


def route_to_shards(orders: np.ndarray) -> list[np.ndarray]:
    """A backend's no-op work: check, convert, split by shard (local symbols)."""
    messages = to_messages(check_batch(orders))
    routes = shard_of_symbol(messages["symbol"], N_SHARDS)
    messages["symbol"] = local_symbol(messages["symbol"], N_SHARDS)
    return _parts(messages, routes, N_SHARDS, np.empty(0, MESSAGE_DTYPE))


def make_work(orders_per_call: int, calls: int = 64, seed: int = 1) -> list[tuple]:
    """``calls`` batches of real orders, each with its per-backend parts (the generator's split)."""
    flow = OrderFlow(STANDARD_MIX, seed=seed, first_order_id=first_order_id(0))
    work = []
    for _ in range(calls):
        batch = flow.next_batch(orders_per_call, ORDER_DTYPE)
        route = backend_of_account(batch["account"], N_BACKENDS)
        work.append((batch, _parts(batch, route, N_BACKENDS, batch[:0])))
    return work


class _Stage:
    # A compiled graph calls a method without awaiting it: an ``async def`` one would
    # hand its channel a coroutine. Graph methods are sync; only the stream's are async.
    server: StreamServer | None = None

    async def open(self) -> tuple[str, int]:
        """Serve this stage over a stream; its address."""
        self.server = StreamServer(self._serve, self.dtype)
        return "127.0.0.1", await self.server.start("127.0.0.1")

    def pid(self) -> int:
        return os.getpid()


@ray.remote(**_ACTOR)
class _Shard(_Stage):
    dtype = MESSAGE_DTYPE

    def __init__(self, shard_id: int):
        self.shard = EngineShard(shard_id, N_SHARDS, STANDARD_MIX.symbols, N_BACKENDS, noop=True)

    def process(self, messages, backend_id):
        return self.shard.process(messages, backend_id)

    async def _serve(self, messages, backend_id):
        return self.process(messages, backend_id)


@ray.remote(**_ACTOR)
class _Backend(_Stage):
    dtype = ORDER_DTYPE

    def __init__(self, backend_id: int, shard_addresses=()):
        self.backend_id = backend_id
        self.shards = [StreamShardClient(a) for a in shard_addresses]

    def route(self, orders):
        return tuple(route_to_shards(orders))

    def merge(self, *replies):
        return concat_records([reports for reports, _ in replies])

    async def _serve(self, orders, client):
        calls = [
            self.shards[s].process(part, self.backend_id)
            for s, part in enumerate(self.route(orders))
            if len(part)  # the stream calls only the shards the orders go to
        ]
        return (self.merge(*await asyncio.gather(*calls)),)


class StreamChain:
    def __init__(self):
        shards = [_Shard.remote(s) for s in range(N_SHARDS)]
        self.actors = list(shards)
        try:
            addresses = ray.get([s.open.remote() for s in shards])
            backends = [_Backend.remote(b, addresses) for b in range(N_BACKENDS)]
            self.actors += backends
            self.pids = ray.get([a.pid.remote() for a in self.actors])
            addresses = ray.get([b.open.remote() for b in backends])
        except BaseException:
            _kill(self.actors)
            raise
        self._loop = uvloop.new_event_loop()  # what Ray runs the actors' loops on
        self._clients = [StreamBackendClient(a) for a in addresses]

    async def _call(self, parts: list[np.ndarray]) -> np.ndarray:
        calls = [self._clients[b].submit(p, 0) for b, p in enumerate(parts) if len(p)]
        # One order goes to one backend: awaited directly, no task to schedule.
        return await calls[0] if len(calls) == 1 else concat_records(await asyncio.gather(*calls))

    def call(self, parts: list[np.ndarray]) -> np.ndarray:
        return self._loop.run_until_complete(self._call(parts))

    def drive(self, work: list, in_flight: int, duration_s: float) -> tuple:
        """Closed loop, ``in_flight`` calls outstanding: (latencies ns, elapsed s, bad replies)."""
        return self._loop.run_until_complete(self._drive(work, in_flight, duration_s))

    async def _drive(self, work, in_flight, duration_s):
        latencies, bad, end = [], [0], time.perf_counter() + duration_s

        async def caller(i: int) -> None:
            while time.perf_counter() < end:
                batch, parts = work[i % len(work)]
                i += in_flight
                start = time.perf_counter_ns()
                reply = await self._call(parts)
                latencies.append(time.perf_counter_ns() - start)
                bad[0] += len(reply) != len(batch)

        start = time.perf_counter()
        await asyncio.gather(*(caller(i) for i in range(in_flight)))
        return latencies, time.perf_counter() - start, bad[0]

    def close(self) -> None:
        for client in self._clients:
            self._loop.run_until_complete(client.stream.close())
        self._loop.close()
        _kill(self.actors)


class GraphChain:
    def __init__(self, max_in_flight: int):
        from ray.dag import InputNode, MultiOutputNode

        shards = [_Shard.remote(s) for s in range(N_SHARDS)]
        backends = [_Backend.remote(b) for b in range(N_BACKENDS)]
        self.actors = shards + backends
        self.pids = ray.get([a.pid.remote() for a in self.actors])
        self.dag = None
        with InputNode() as inp:  # inp[b]: backend b's part of the call's orders
            merged = []
            for b, backend in enumerate(backends):
                parts = backend.route.options(num_returns=N_SHARDS).bind(inp[b])
                replies = [shard.process.bind(parts[s], b) for s, shard in enumerate(shards)]
                merged.append(backend.merge.bind(*replies))
            graph = MultiOutputNode(merged)
        try:
            self.dag = graph.experimental_compile(_max_inflight_executions=max_in_flight)
        except BaseException:
            _kill(self.actors)
            raise

    def call(self, parts: list[np.ndarray]) -> np.ndarray:
        return concat_records(ray.get(self.dag.execute(*parts)))

    def drive(self, work: list, in_flight: int, duration_s: float) -> tuple:
        """As :meth:`StreamChain.drive`, with up to ``in_flight`` executions pipelined."""
        latencies, bad, pending, i = [], 0, deque(), 0
        start = time.perf_counter()
        end = start + duration_s
        while True:
            while len(pending) < in_flight and time.perf_counter() < end:
                batch, parts = work[i % len(work)]
                i += 1
                pending.append((time.perf_counter_ns(), len(batch), self.dag.execute(*parts)))
            if not pending:
                return latencies, time.perf_counter() - start, bad
            sent, n, ref = pending.popleft()
            reply = concat_records(ray.get(ref))
            latencies.append(time.perf_counter_ns() - sent)
            bad += len(reply) != n

    def close(self) -> None:
        try:
            if self.dag is not None:
                self.dag.teardown()
        finally:
            _kill(self.actors)


def open_chain(transport: str, max_in_flight: int = 1):
    """The quickstart chain over ``transport``; ``close()`` it."""
    return StreamChain() if transport == "stream" else GraphChain(max_in_flight)


def _kill(actors: list) -> None:
    for actor in actors:
        ray.kill(actor, no_restart=True)


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds used so far by these processes (user + system)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / _CLK


def _measure(chain, work, in_flight: int, duration_s: float, warmup_s: float) -> dict:
    chain.drive(work, in_flight, warmup_s)  # connections, channels, caches
    pids = [os.getpid(), *chain.pids]
    cpu = _cpu_s(pids)
    latencies, elapsed, bad = chain.drive(work, in_flight, duration_s)
    cpu = _cpu_s(pids) - cpu
    calls, us = len(latencies), np.asarray(latencies) / 1e3
    orders = calls * len(work[0][0])
    return {
        "calls": calls,
        "elapsed_s": round(elapsed, 3),
        "calls_per_s": round(calls / elapsed, 1),
        "orders_per_s": round(orders / elapsed, 1),
        "p50_us": round(float(np.percentile(us, 50)), 1),
        "p99_us": round(float(np.percentile(us, 99)), 1),
        "cpu_us_per_call": round(cpu * 1e6 / max(calls, 1), 1),
        "cpu_cores_busy": round(cpu / elapsed, 2),
        "bad_replies": bad,
    }


def _summary(runs: list[dict]) -> list[dict]:
    """Median (and range) over repeats of each transport x orders/call x in-flight."""
    keys = sorted({(r["transport"], r["orders_per_call"], r["in_flight"]) for r in runs})
    out = []
    for key in keys:
        same = [r for r in runs if (r["transport"], r["orders_per_call"], r["in_flight"]) == key]
        rate = [r["orders_per_s"] for r in same]
        row = dict(zip(("transport", "orders_per_call", "in_flight"), key, strict=True))
        row |= {"orders_per_s": float(np.median(rate)), "range": [min(rate), max(rate)]}
        for name in ("calls_per_s", "p50_us", "p99_us", "cpu_us_per_call"):
            row[name] = float(np.median([r[name] for r in same]))
        out.append(row)
    return out


def _measure_chain(transport: str, works: dict, in_flight, duration_s, warmup_s) -> tuple:
    """(figures of every orders/call x in-flight, idle cores) of one chain, then closed."""
    chain = open_chain(transport, max(in_flight))
    try:
        cpu = _cpu_s(chain.pids)
        time.sleep(1.0)  # no call: what the actors burn waiting
        idle = round(_cpu_s(chain.pids) - cpu, 2)
        runs = [
            {"transport": transport, "orders_per_call": n, "in_flight": k}
            | _measure(chain, works[n], k, duration_s, warmup_s)
            for n in works
            for k in in_flight
        ]
        return runs, idle
    finally:
        chain.close()


def run_cgraph_bench(
    duration_s: float = 5.0,
    repeats: int = 3,
    orders_per_call=(1, 1000),
    in_flight=(1, 4),
    warmup_s: float = 1.0,
) -> dict:
    """Both transports, each (orders/call, in-flight) measured ``repeats`` times, interleaved."""
    owned = not ray.is_initialized()
    if owned:
        ray.init(num_cpus=4, object_store_memory=200 << 20, include_dashboard=False)
    works = {n: make_work(n) for n in orders_per_call}
    runs, idle, errors, load = [], {t: [] for t in TRANSPORTS}, {}, [os.getloadavg()]
    try:
        for repeat in range(repeats):
            for transport in TRANSPORTS[:: 1 if repeat % 2 == 0 else -1]:  # no fixed first
                if transport in errors:
                    continue
                try:
                    got, idle_cores = _measure_chain(
                        transport, works, in_flight, duration_s, warmup_s
                    )
                except Exception as exc:  # recorded; the other transport still runs
                    errors[transport] = f"{type(exc).__name__}: {exc}"[:2000]
                    continue
                runs += [{**r, "repeat": repeat} for r in got]
                idle[transport].append(idle_cores)
    finally:
        load.append(os.getloadavg())
        if owned:
            ray.shutdown()
    return {
        "config": dict(
            chain={"generators": 1, "backends": N_BACKENDS, "engines": N_SHARDS},
            duration_s=duration_s,
            warmup_s=warmup_s,
            repeats=repeats,
            in_flight=list(in_flight),
            ray=ray.__version__,
            cpus=os.cpu_count(),
            loadavg_before_after=[[round(x, 2) for x in a] for a in load],
        ),
        "summary": _summary(runs),
        "idle_cores_busy": idle,
        "errors": errors,
        "runs": runs,
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run_cgraph_bench(args.duration, args.repeats), indent=1))
