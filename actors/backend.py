"""``Backend``: the order gateway tier.

For each batch a client submits, a backend (1) checks that it is a batch of
orders at all, (2) applies per-account risk limits, (3) routes the messages
that pass to their engine shards, concurrently, and (4) returns every
report, risk REJECTs included, after bringing its risk state up to date.
A plain class: shards are reached through ``ShardClient`` objects, so the
same code runs in-process in tests and over Ray (or later HTTP) for real.
"""

import asyncio
import time
from typing import Protocol

import numpy as np

from actors.partition import split
from actors.risk import RiskBook, RiskLimits
from actors.routing import backend_of_account, local_symbol, shard_of_symbol
from actors.stage_stats import Span, StageStats
from actors.wire import check_batch, compress, to_messages
from engine.messages import REPORT_DTYPE, ReportKind

__all__ = ["Backend", "ShardClient"]


class ShardClient(Protocol):
    async def process(self, messages: np.ndarray, backend_id: int) -> tuple: ...


class Backend:
    def __init__(
        self,
        backend_id: int,
        n_backends: int,
        shards: list[ShardClient],
        n_symbols: int,
        n_accounts: int,
        limits: RiskLimits = RiskLimits(),
        noop: bool = False,
        clock=time.time,
    ):
        self.backend_id = backend_id
        self.n_backends = n_backends
        self.shards = shards
        self.noop = noop
        self.risk = RiskBook(
            limits,
            n_accounts,
            n_symbols,
            owns=lambda accounts: backend_of_account(accounts, n_backends) == backend_id,
        )
        self.stats = StageStats()
        self._clock = clock
        self._in_flight = 0

    async def submit(self, orders) -> np.ndarray:
        """Reports for a batch of orders; ``BadBatch`` if it is not a batch of orders."""
        self._in_flight += 1
        self.stats.note_queue(self._in_flight)
        try:
            return await self._submit(orders)
        finally:
            self._in_flight -= 1

    async def _submit(self, orders) -> np.ndarray:
        span = Span()
        with span:
            messages, parts, reasons = self._route(orders)
        replies = await asyncio.gather(
            *(self.shards[shard].process(part, self.backend_id) for shard, part in parts)
        )
        with span:
            out = [_risk_rejects(messages, reasons)]
            for (_, part), (reports, maker_fills) in zip(parts, replies, strict=True):
                if not self.noop:
                    self.risk.apply(part, reports)
                    self.risk.apply_maker_fills(maker_fills)
                out.append(reports)
            reports = np.concatenate(out)
        self.stats.record_batch(len(messages), span)
        return reports

    def _route(self, orders):
        """Check the batch and the risk limits; split what passes by shard."""
        messages = to_messages(check_batch(orders))
        if self.noop:
            reasons = np.zeros(len(messages), dtype=np.int8)
        else:
            reasons = self.risk.check(messages, int(self._clock()))
        passed = compress(messages, reasons == 0) if reasons.any() else messages
        n_shards = len(self.shards)
        routes = shard_of_symbol(passed["symbol"], n_shards)
        passed["symbol"] = local_symbol(passed["symbol"], n_shards)
        parts = split(passed, routes, n_shards)
        return messages, parts, reasons


def _risk_rejects(messages: np.ndarray, reasons: np.ndarray) -> np.ndarray:
    rejected = compress(messages, reasons != 0)
    reports = np.zeros(len(rejected), dtype=REPORT_DTYPE)
    for name in ("seq", "order_id", "account", "price", "qty", "symbol", "side"):
        reports[name] = rejected[name]
    reports["kind"] = ReportKind.REJECT
    reports["reason"] = reasons[reasons != 0]
    return reports
