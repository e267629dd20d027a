"""What a backend keeps outside itself: order state in Redis, orders and fills in PostgreSQL.

A backend hands every group of messages that reached the shards, with their
reports, to :meth:`PlatformStores.persist`. The journal gets the messages the
engine accepted (no REJECT) and the FILL reports, each fill once, from the
taker's backend, which is the one whose client is told of it. With
``durability: sync`` the reports wait for the commit (the backend answers no
order the journal does not hold); with ``async`` they wait only for the queue.
The cache is kept off the answer's path: its updates go out one after another
in the background (a batch of 4,096 takes Redis tens of ms), each with the
top of book of the symbols it touched (from the shards' replies), and
:meth:`close` waits for the last of them.

Connections open on first use, on the loop of the stage that uses them.
"""

import asyncio
from typing import NamedTuple

import numpy as np

from actors.order_cache import OrderCache
from actors.trade_journal import TradeJournal
from engine.messages import ReportKind

__all__ = ["StoresSpec", "PlatformStores"]


class StoresSpec(NamedTuple):
    run_id: str
    cache: str | None = None  #: redis://…
    journal: str | None = None  #: postgresql://…
    durability: str = "sync"
    journal_schema: str = "lab_journal"


class PlatformStores:
    def __init__(self, spec: StoresSpec):
        self.spec = spec
        self.journal: TradeJournal | None = None
        self.cache: OrderCache | None = None
        self._opening = asyncio.Lock()
        self._opened = False
        self._cache_tail: asyncio.Future | None = None

    async def open(self) -> None:
        """Connect (once; every later call returns at once)."""
        async with self._opening:
            if self._opened:
                return
            spec = self.spec
            if spec.journal:
                self.journal = await TradeJournal.open(
                    spec.journal, spec.durability, spec.journal_schema
                )
            if spec.cache:
                self.cache = OrderCache(spec.cache, f"lab:{spec.run_id}:")
            self._opened = True

    async def persist(
        self,
        messages: np.ndarray,
        reports: np.ndarray,
        original_seq: np.ndarray,
        tops: np.ndarray | None = None,
    ) -> None:
        """Journal (and cache) one group.

        ``messages`` and ``reports`` are numbered alike (``seq``: the group's own
        0..n-1); the journal stores each message's and fill's ``original_seq`` instead.
        ``tops`` (``TOP_DTYPE``, the shards' books as the group left them) are
        published with the group's order states.
        """
        if not self._opened:
            await self.open()
        if self.cache is not None:
            self._cache_tail = asyncio.ensure_future(
                _after(self._cache_tail, self.cache.record(messages, reports, tops))
            )
        if self.journal is not None:
            kinds = reports["kind"]
            rejected = reports["seq"][kinds == ReportKind.REJECT]
            accepted = messages[~np.isin(messages["seq"], rejected)]
            fills = reports[kinds == ReportKind.FILL]
            accepted["seq"] = original_seq[accepted["seq"]]
            fills["seq"] = original_seq[fills["seq"]]
            await self.journal.write(self.spec.run_id, accepted, fills)

    async def close(self) -> None:
        """Wait for every write; then close the connections."""
        if self._cache_tail is not None:
            await self._cache_tail
        if self.journal is not None:
            await self.journal.close()
        if self.cache is not None:
            await self.cache.close()


async def _after(previous: asyncio.Future | None, step) -> None:
    if previous is not None:
        await previous
    await step
