"""Thin Ray wrappers around the plain actor classes.

This is the only module in ``actors/`` that imports Ray. Each wrapper adds
Ray metrics (``ray.util.metrics``) so a run can be watched in the Ray
dashboard, and each client hides ``.remote()`` behind an ``async`` method with
the plain class's signature, which is the transport seam: generators and
backends only ever see clients. With ``topology.transport: stream``
generators reach backends, and backends reach shards, over
:mod:`actors.stream` instead of Ray calls.
"""

import asyncio
import os
import socket

import ray
from ray.util import metrics

from actors.backend import Backend
from actors.collector import Collector
from actors.engine_shard import EngineShard
from actors.gateway_app import serve_gateway
from actors.heap import settle_heap
from actors.http_client import http_clients
from actors.load_generator import LoadGenerator, RunWindow
from actors.local import LocalBackendClient
from actors.order_flow import OrderFlow
from actors.stage_stats import host_cpus
from actors.stream import StreamClient, StreamServer
from actors.wire import ORDER_DTYPE
from engine.book import TOP_DTYPE
from engine.messages import MESSAGE_DTYPE, REPORT_DTYPE

__all__ = [
    "ShardActor",
    "BackendActor",
    "GeneratorActor",
    "CollectorActor",
    "RayShardClient",
    "RayBackendClient",
    "StreamBackendClient",
    "StreamShardClient",
    "RayStatsClient",
]

_TAGS = ("actor", "run")
#: A stream call's client argument for "no client" (the gateway's own orders): a stream
#: header carries an integer, and generators are numbered from 0.
NO_CLIENT = -1


def _counter(name: str, description: str):
    return metrics.Counter(name, description=description, tag_keys=_TAGS)


class _Metered:
    """Ray metrics of one actor, counted locally and exported once per interval.

    Exporting on every call cost more than the call's own work at one order
    per call; the collector's interval (``take_stats``) is fine-grained enough
    for the dashboard.
    """

    def __init__(self, actor: str, run: str):
        self.tags = {"actor": actor, "run": run}
        self.counters = {
            "orders": _counter("lab_orders", "Orders handled by the actor."),
            "fills": _counter("lab_fills", "Fills seen by the actor."),
            "rejects": _counter("lab_rejects", "Rejects seen by the actor."),
        }
        self.pending = dict.fromkeys(self.counters, 0)
        self.queue = metrics.Gauge(
            "lab_queue_depth", description="Calls in flight.", tag_keys=_TAGS
        )

    def count_stage(self, stage: dict) -> None:
        """A stage's interval (``StageStats.take``): its messages and reports' counts."""
        self.pending["orders"] += stage["messages"]
        self.pending["fills"] += stage["fills"]
        self.pending["rejects"] += stage["rejects"]

    def export(self, queue_depth: int) -> None:
        for name, value in self.pending.items():
            if value > 0:  # Ray's Counter.inc refuses 0
                self.counters[name].inc(value, tags=self.tags)
        self.pending = dict.fromkeys(self.counters, 0)
        self.queue.set(queue_depth, tags=self.tags)


class _Located:
    async def watch(self) -> None:
        """Never returns: the driver holds this call, and its failure is the actor's death."""
        await asyncio.Event().wait()

    def where(self) -> dict:
        """Host, Ray node id and process of this actor."""
        context = ray.get_runtime_context()
        return {
            "host": socket.gethostname(),
            "node_ip": ray.util.get_node_ip_address(),
            "node_id": context.get_node_id(),
            "pid": os.getpid(),
            "host_cpus": host_cpus(),
        }


class ShardActor(_Located, EngineShard):
    """An engine shard as a Ray actor that takes one batch at a time.

    Its methods are coroutines without awaits, all run on the actor's event
    loop: calls over Ray and over its stream (``open_stream``) then take turns
    and never touch the engine at the same time.
    """

    def __init__(self, run_id: str, **kwargs):
        super().__init__(**kwargs)
        self.warm_up()
        self._metrics = _Metered(f"engine-{self.shard_id}", run_id)

    async def process(self, messages, backend_id=0):
        return super().process(messages, backend_id)

    async def open_stream(self) -> tuple[str, int]:
        """Serve ``process`` over a stream too (``topology.transport: stream``); its address."""
        self._stream = StreamServer(self.process, MESSAGE_DTYPE, in_order=True)
        port = await self._stream.start()
        return ray.util.get_node_ip_address(), port

    async def take_stats(self) -> dict:
        out = super().take_stats()
        self._metrics.count_stage(out["stage"])
        self._metrics.export(out["stage"]["max_queue"])
        return out

    async def journal_arrays(self) -> dict:
        return super().journal_arrays()

    async def snapshot(self) -> bytes:
        return super().snapshot()

    async def restore(self, data: bytes) -> None:
        super().restore(data)

    async def state_hash(self) -> str:
        return super().state_hash()

    async def resting(self) -> int:
        return super().resting()

    async def book(self, symbol: int, depth: int) -> dict:
        return super().book(symbol, depth)

    async def order(self, symbol: int, order_id: int) -> dict | None:
        return super().order(symbol, order_id)

    async def ready(self) -> bool:
        settle_heap()
        return True


class BackendActor(_Located, Backend):
    def __init__(self, run_id: str, shard_handles: list, shard_addresses=None, **kwargs):
        if shard_addresses:
            shards = [StreamShardClient(a) for a in shard_addresses]
        else:
            shards = [RayShardClient(h) for h in shard_handles]
        super().__init__(shards=shards, **kwargs)
        self.warm_up()
        self._metrics = _Metered(f"backend-{self.backend_id}", run_id)

    async def open_stream(self) -> tuple[str, int]:
        """Serve ``submit`` over a stream too (``topology.transport: stream``); its address."""
        self._stream = StreamServer(self._submit_streamed, ORDER_DTYPE)
        port = await self._stream.start()
        return ray.util.get_node_ip_address(), port

    async def _submit_streamed(self, orders, client):
        return (await self.submit(orders, None if client == NO_CLIENT else client),)

    async def open_gateway(self, peer_addresses: list, shard_handles: list, spec: dict):
        """Serve the HTTP gateway (``topology.transport: http``, ``lab serve``); its URL.

        Orders of other backends' accounts go to them over their streams.
        """
        peers = [
            LocalBackendClient(self) if i == self.backend_id else StreamBackendClient(a)
            for i, a in enumerate(peer_addresses)
        ]
        shards = [RayShardClient(h) for h in shard_handles]
        self._http, port = await serve_gateway(self.backend_id, peers, shards, spec, self.stores)
        return f"http://{ray.util.get_node_ip_address()}:{port}"

    async def take_stats(self) -> dict:
        out = super().take_stats()
        self._metrics.count_stage(out)
        self._metrics.export(out["max_queue"])
        return out

    async def ready(self) -> bool:
        settle_heap()
        return True


class GeneratorActor(_Located, LoadGenerator):
    def __init__(
        self,
        run_id: str,
        backend_handles: list,
        flow_params,
        flow_seed: int,
        first_order_id: int,
        backend_addresses: list | None = None,
        tracked_orders: int = 1 << 16,
        gateways: dict | None = None,
        **kwargs,
    ):
        # The flow is built here: arrays that come through Ray arrive read-only.
        flow = OrderFlow(
            flow_params, seed=flow_seed, first_order_id=first_order_id, pool_size=tracked_orders
        )
        if gateways:
            backends = http_clients(gateways)
        elif backend_addresses:
            backends = [StreamBackendClient(a) for a in backend_addresses]
        else:
            backends = [RayBackendClient(h) for h in backend_handles]
        super().__init__(backends=backends, flow=flow, **kwargs)
        self.warm_up()
        self._metrics = _Metered(f"loadgen-{self.gen_id}", run_id)
        self._latency = metrics.Histogram(
            "lab_latency_ms",
            description="Order latency from intended send time to reports, ms.",
            boundaries=[0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000],
            tag_keys=_TAGS,
        )

    async def run(self, lead_s: float, warmup_s: float, duration_s: float, drain_s: float) -> dict:
        """Run the window that starts ``lead_s`` from now on this actor's own clock."""
        return await super().run(RunWindow.starting_in(lead_s, warmup_s, duration_s, drain_s))

    async def tally(self) -> dict:
        """What the run measured so far (for a run that fails before its end)."""
        return self.tally_so_far()

    async def take_stats(self) -> dict:
        out = super().take_stats()
        pending = self._metrics.pending
        pending.update(orders=out["acked"], rejects=out["rejects"], fills=out["fills"])
        self._metrics.export(out["in_flight"])
        for sample in out.pop("samples_ms"):
            self._latency.observe(sample, tags=self._metrics.tags)
        return out

    async def ready(self) -> bool:
        settle_heap()
        return True


class CollectorActor(_Located, Collector):
    def __init__(self, source_handles: dict, interval_s: float):
        super().__init__(
            {name: RayStatsClient(h) for name, h in source_handles.items()}, interval_s
        )

    async def ready(self) -> bool:
        settle_heap()
        return True


class RayShardClient:
    def __init__(self, handle):
        self.handle = handle

    async def process(self, messages, backend_id):
        return await self.handle.process.remote(messages, backend_id)

    async def book(self, symbol, depth):
        return await self.handle.book.remote(symbol, depth)

    async def order(self, symbol, order_id):
        return await self.handle.order.remote(symbol, order_id)


class RayBackendClient:
    def __init__(self, handle):
        self.handle = handle

    async def submit(self, orders, client=None):
        return await self.handle.submit.remote(orders, client)


class StreamShardClient:
    def __init__(self, address):
        # reports, the maker fills, and the tops of book if the shard publishes them
        self.stream = StreamClient(address, (REPORT_DTYPE, REPORT_DTYPE, TOP_DTYPE))

    async def process(self, messages, backend_id):
        return tuple(await self.stream.call(messages, backend_id))


class StreamBackendClient:
    def __init__(self, address):
        self.stream = StreamClient(address, REPORT_DTYPE)

    async def submit(self, orders, client=None):
        (reports,) = await self.stream.call(orders, NO_CLIENT if client is None else client)
        return reports


class RayStatsClient:
    def __init__(self, handle):
        self.handle = handle

    async def take_stats(self):
        return await self.handle.take_stats.remote()


def remote_class(cls, **options):
    """``cls`` as a Ray actor class with ``options``."""
    return ray.remote(cls).options(**options)
