"""``Backend``: the order gateway tier.

For each batch a client submits, a backend (1) checks that it is a batch of
orders at all, (2) applies per-account risk limits, (3) routes the messages
that pass to their engine shards, concurrently, and (4) returns every
report, risk REJECTs included, after bringing its risk state up to date.

Submissions that arrive while the shards are busy with earlier ones are
sent on together (group commit): at low load every submission goes out at
once, and under load many small client batches, down to one order per call,
share one call per shard, which is what keeps one-order-per-call traffic
from being bound by the number of shard calls.

A plain class: shards are reached through ``ShardClient`` objects, so the
same code runs in-process in tests and over Ray (or later HTTP) for real.
"""

import asyncio
import time
from typing import Protocol

import numpy as np

from actors.partition import split
from actors.risk import RiskBook, RiskLimits
from actors.routing import local_symbol, shard_of_symbol
from actors.stage_stats import Span, StageStats
from actors.wire import check_batch, compress, to_messages
from engine.messages import MESSAGE_DTYPE, REPORT_DTYPE, ReportKind

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
            owner=(backend_id, n_backends),
        )
        self.stats = StageStats()
        self._clock = clock
        self._in_flight = 0
        self._waiting: list[tuple[np.ndarray, asyncio.Future]] = []
        self._sending = False

    def warm_up(self) -> None:
        """Compile (or load) the risk kernels, as :meth:`EngineShard.warm_up` does."""
        if self.noop:
            return
        messages = np.zeros(1, MESSAGE_DTYPE)
        reports = np.zeros(1, REPORT_DTYPE)
        reports.flags.writeable = False  # as shards' reports arrive
        self.risk.check(messages[:0], 0)
        self.risk.apply(messages[:0], reports[:0])
        self.risk.apply_maker_fills(reports)  # kind 0: not a fill, changes nothing

    async def submit(self, orders) -> np.ndarray:
        """Reports for a batch of orders; ``BadBatch`` if it is not a batch of orders."""
        self._in_flight += 1
        self.stats.note_queue(self._in_flight)
        try:
            span = Span()
            with span:
                messages = to_messages(check_batch(orders))
                reasons = self._check_risk(messages)
                rejects = _risk_rejects(messages, reasons)
                passed = compress(messages, reasons == 0) if reasons.any() else messages
            reports = await self._send(passed) if len(passed) else _NO_REPORTS
            with span:
                reports = np.concatenate((rejects, reports)) if len(rejects) else reports
            self.stats.record_batch(len(messages), span)
            return reports
        finally:
            self._in_flight -= 1

    def _check_risk(self, messages: np.ndarray) -> np.ndarray:
        if self.noop:
            return np.zeros(len(messages), dtype=np.int8)
        return self.risk.check(messages, int(self._clock()))

    async def _send(self, messages: np.ndarray) -> np.ndarray:
        """The shards' reports for ``messages``, sent with whatever else is waiting."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((messages, done))
        if not self._sending:
            self._sending = True
            asyncio.ensure_future(self._send_waiting())
        return await done

    async def _send_waiting(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    results = await self._send_group([m for m, _ in group])
                except Exception as exc:  # every submitter of the group hears of it
                    for _, done in group:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for (_, done), reports in zip(group, results, strict=True):
                    if not done.done():
                        done.set_result(reports)
        finally:
            self._sending = False

    async def _send_group(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """One call per shard for several submissions; their reports, split back."""
        span = Span()
        with span:
            combined = np.concatenate(batches) if len(batches) > 1 else batches[0].copy()
            # Senders' seqs may collide across submissions: number the messages
            # 0..n-1 for the trip and give the reports their own seqs back after.
            original_seq = combined["seq"].copy()
            owner = np.repeat(np.arange(len(batches)), [len(b) for b in batches])
            combined["seq"] = np.arange(len(combined))
            n_shards = len(self.shards)
            routes = shard_of_symbol(combined["symbol"], n_shards)
            combined["symbol"] = local_symbol(combined["symbol"], n_shards)
            parts = split(combined, routes, n_shards)
        replies = await asyncio.gather(
            *(self.shards[shard].process(part, self.backend_id) for shard, part in parts)
        )
        with span:
            out = []
            for (_, part), (reports, maker_fills) in zip(parts, replies, strict=True):
                if not self.noop:
                    self.risk.apply(part, reports)
                    self.risk.apply_maker_fills(maker_fills)
                out.append(reports)
            reports = np.concatenate(out) if len(out) > 1 else out[0].copy()
            index = reports["seq"].copy()
            reports["seq"] = original_seq[index]
            results = _by_owner(reports, owner[index], len(batches))
        self.stats.busy_ns += span.cpu_ns
        return results


_NO_REPORTS = np.empty(0, dtype=REPORT_DTYPE)


def _by_owner(reports: np.ndarray, owner: np.ndarray, n: int) -> list[np.ndarray]:
    """``reports`` split by the submission (``owner``) each belongs to, in order."""
    if n == 1:
        return [reports]
    found = dict(split(reports, owner, n))
    return [found.get(k, _NO_REPORTS) for k in range(n)]


def _risk_rejects(messages: np.ndarray, reasons: np.ndarray) -> np.ndarray:
    rejected = compress(messages, reasons != 0)
    reports = np.zeros(len(rejected), dtype=REPORT_DTYPE)
    for name in ("seq", "order_id", "account", "price", "qty", "symbol", "side"):
        reports[name] = rejected[name]
    reports["kind"] = ReportKind.REJECT
    reports["reason"] = reasons[reasons != 0]
    return reports
