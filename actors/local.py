"""Clients that call a stage in this process: the in-process transport.

They have the same async methods as the Ray and stream clients in
:mod:`actors.ray_actors`, so a backend, a generator or the collector cannot
tell which transport it was given. A shard's ``process`` runs to its end
without yielding, as it does on its Ray actor's event loop.
"""

import inspect

from actors.backend import Backend
from actors.engine_shard import EngineShard

__all__ = ["LocalShardClient", "LocalBackendClient", "LocalStatsClient"]


class LocalShardClient:
    def __init__(self, shard: EngineShard):
        self.shard = shard

    async def process(self, messages, backend_id):
        return self.shard.process(messages, backend_id)

    async def book(self, symbol, depth):
        return self.shard.book(symbol, depth)

    async def order(self, symbol, order_id):
        return self.shard.order(symbol, order_id)


class LocalBackendClient:
    def __init__(self, backend: Backend):
        self.backend = backend

    async def submit(self, orders, client=None):
        return await self.backend.submit(orders, client)


class LocalStatsClient:
    """``take_stats`` of any stage, whether the stage's own is a coroutine or not."""

    def __init__(self, stage):
        self.stage = stage

    async def take_stats(self) -> dict:
        out = self.stage.take_stats()
        return await out if inspect.isawaitable(out) else out
