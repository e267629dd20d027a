"""``Backend``: the order gateway tier.

For each batch a client submits, a backend (1) checks that it is a batch of
orders at all, (2) applies per-account risk limits, (3) routes the messages
that pass to their engine shards, concurrently, and (4) returns every
report, risk REJECTs included, after bringing its risk state up to date.
A client that names itself (``client``, a load generator's index) also
hears, in its next reply, of its resting orders that another client's
orders filled away (``MAKER_DONE`` reports), as a participant is told of
its fills.

Submissions are settled in groups (group commit): those that arrive while
the last group is out at the shards (or in the stores) go on together, with
one pass of copies and risk checks, one call per shard and one write to the
stores for all of them. At low load every submission goes out at once; under
load many small client batches, down to one order per call, share all of it,
which is what keeps one-order-per-call traffic from being bound by per-call
costs. Only a batch that is not a batch at all fails apart: its own caller.

A plain class: shards are reached through ``ShardClient`` objects, so the
same code runs in-process in tests and over Ray (or later HTTP) for real.
"""

import asyncio
import time
from typing import NamedTuple, Protocol

import numpy as np

from actors import order_updates
from actors.partition import split
from actors.platform_stores import PlatformStores, StoresSpec
from actors.report_digest import fills_and_rejects
from actors.risk import RiskBook, RiskLimits
from actors.routing import generator_of_order, local_symbol, shard_of_symbol
from actors.stage_stats import Span, StageStats
from actors.wire import MAKER_DONE, check_batch, compress, concat_records, copy_records, to_messages
from engine.jit import WARM_UP_SIZES
from engine.messages import MESSAGE_DTYPE, REPORT_DTYPE, ReportKind

__all__ = ["Backend", "ShardClient", "ShardFailed"]


class ShardFailed(RuntimeError):
    """A shard's call failed: the submission's orders there have no known outcome."""


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
        clock=time.monotonic,
        stores: StoresSpec | None = None,
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
        self._waiting: list[_Submission] = []
        self._sending = False
        #: per client that named itself: ids of its resting orders others filled away
        self._makers_done: dict[int, list[np.ndarray]] = {}
        #: the platform's Redis cache and PostgreSQL journal, when the config has them
        self.stores = PlatformStores(stores) if stores is not None else None

    def warm_up(self) -> None:
        """Compile (or load) the risk and routing kernels, as :meth:`EngineShard.warm_up` does."""
        messages = np.zeros(2, MESSAGE_DTYPE)
        split(messages, shard_of_symbol(messages["symbol"], 1), 1)
        for size in WARM_UP_SIZES:
            fills_and_rejects(np.zeros(size, REPORT_DTYPE))
        if not self.noop:
            self.risk.warm_up(MESSAGE_DTYPE, REPORT_DTYPE)
            order_updates.warm_up()  # the cache's records, if the run has a cache

    async def submit(self, orders, client: int | None = None) -> np.ndarray:
        """Reports for a batch of orders; ``BadBatch`` if it is not a batch of orders.

        ``client``: the load generator sending it, which then also gets
        ``MAKER_DONE`` reports for its orders that others filled away.
        """
        orders = check_batch(orders)  # a bad batch fails its own caller, never a group
        if client is not None:
            self._makers_done.setdefault(client, [])
        done = asyncio.get_running_loop().create_future()
        self._waiting.append(_Submission(orders, client, done))
        self._in_flight += 1
        self.stats.note_queue(self._in_flight)
        if not self._sending:
            self._sending = True
            asyncio.ensure_future(self._send_waiting())
        try:
            return await done
        finally:
            self._in_flight -= 1

    def take_stats(self) -> dict:
        """This interval's stage figures; starts a new interval."""
        return self.stats.take()

    def _check_risk(self, messages: np.ndarray) -> np.ndarray:
        if self.noop:
            return np.zeros(len(messages), dtype=np.int8)
        return self.risk.check(messages, int(self._clock()))

    async def _send_waiting(self) -> None:
        """Settle the waiting submissions, a group at a time, until none waits."""
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    results = await self._settle_group(group)
                except Exception as exc:  # every submitter of the group hears of it
                    results = [exc] * len(group)
                for submission, result in zip(group, results, strict=True):
                    if submission.done.done():
                        continue
                    if isinstance(result, Exception):
                        submission.done.set_exception(result)
                    else:
                        submission.done.set_result(result)
        finally:
            self._sending = False

    async def _settle_group(self, group: list["_Submission"]) -> list[np.ndarray | Exception]:
        """Risk, one call per shard and the stores for several submissions; their reports.

        When a shard's call fails, the other shards' parts are still settled
        (risk brought up to date, reports kept), the failed part's orders are
        released from the risk counts (their fate is unknown; a shard that died
        took its book with it), and each submission with an order in that part
        gets a :class:`ShardFailed` instead of its reports.
        """
        span = Span()
        with span:
            batches = [s.orders for s in group]
            messages = to_messages(batches[0] if len(group) == 1 else concat_records(batches))
            # Senders' seqs may collide across submissions: number the messages
            # 0..n-1 for the trip and give the reports their own seqs back after.
            original_seq = messages["seq"].copy()
            owner = np.repeat(np.arange(len(group)), [len(b) for b in batches])
            messages["seq"] = np.arange(len(messages))
            reasons = self._check_risk(messages)
            if reasons.any():
                rejects = _risk_rejects(messages, reasons)
                passed = compress(messages, reasons == 0)
            else:  # the common case: a dozen array operations less per group
                rejects, passed = None, messages
            symbols = messages["symbol"].copy()  # global: what the risk book counts by
            parts = []
            if len(passed):  # ``passed`` is this group's own copy: its symbols become local
                n_shards = len(self.shards)
                routes = shard_of_symbol(passed["symbol"], n_shards)
                passed["symbol"] = local_symbol(passed["symbol"], n_shards)
                parts = split(passed, routes, n_shards)
        replies = await asyncio.gather(
            *(self.shards[shard].process(part, self.backend_id) for shard, part in parts),
            return_exceptions=True,
        )
        with span:
            out, failed, tops = [], {}, []
            for (shard, part), reply in zip(parts, replies, strict=True):
                if isinstance(reply, BaseException):
                    if not self.noop:
                        unanswered = copy_records(part)
                        unanswered["symbol"] = symbols[part["seq"]]
                        self.risk.release(unanswered)
                    error = ShardFailed(f"engine-{shard}: {type(reply).__name__}: {reply}")
                    failed.update(dict.fromkeys(np.unique(owner[part["seq"]]).tolist(), error))
                    continue
                reports, maker_fills, *top = reply  # a shard that publishes tops adds them
                tops += top
                if not self.noop:
                    self.risk.apply(part, reports)
                    self.risk.apply_maker_fills(maker_fills)
                out.append(reports)
            # The shards' reports joined once (a shard's own arrive read-only, over Ray).
            joined = None if not out else out[0] if len(out) == 1 else concat_records(out)
            persisted = None
            if joined is not None:
                self._note_makers_done(joined)
                if self.stores is not None:  # numbered as the group's messages are
                    persisted = (
                        _reached_shards(messages, parts, replies, symbols),
                        copy_records(joined),
                        original_seq,
                        concat_records(tops) if tops else None,
                    )
            if joined is not None or rejects is not None:
                if rejects is None:
                    reports = copy_records(joined) if len(out) == 1 else joined
                else:
                    reports = rejects if joined is None else concat_records((rejects, joined))
                self.stats.note_reports(*fills_and_rejects(reports))
                index = reports["seq"].copy()
                reports["seq"] = original_seq[index]
                results = _by_owner(reports, owner[index], len(group))
            else:
                results = [_NO_REPORTS] * len(group)
            results = [failed.get(k, result) for k, result in enumerate(results)]
            self._add_makers_done(group, results)
        self.stats.record_batch(len(messages), span)
        if persisted is not None:  # with durability sync, answered once committed
            await self.stores.persist(*persisted)
        return results

    def _add_makers_done(self, group: list["_Submission"], results: list) -> None:
        """Each client's MAKER_DONE notices, in the first answer of the group it gets."""
        for k, submission in enumerate(group):
            client = submission.client
            if client is None or isinstance(results[k], Exception):
                continue
            if self._makers_done[client]:
                results[k] = concat_records((results[k], self._take_makers_done(client)))

    async def close_stores(self) -> None:
        """Wait for every journal and cache write, then disconnect (the run's end)."""
        if self.stores is not None:
            await self.stores.close()

    def _note_makers_done(self, reports: np.ndarray) -> None:
        """Keep, for each known client, its resting orders that these fills finished.

        A fill's taker hears of it in its own reply; the maker only if someone
        tells it, and this backend, the taker's, is the one that sees the fill.
        """
        if not self._makers_done:
            return
        done = (reports["kind"] == ReportKind.FILL) & (reports["maker_leaves"] == 0)
        if not done.any():
            return
        makers = reports["maker_id"][done]
        owners = generator_of_order(makers)
        foreign = owners != generator_of_order(reports["order_id"][done])
        for client, waiting in self._makers_done.items():
            mine = foreign & (owners == client)
            if mine.any():
                waiting.append(makers[mine])

    def _take_makers_done(self, client: int) -> np.ndarray:
        ids = np.concatenate(self._makers_done[client])
        self._makers_done[client] = []
        notices = np.zeros(len(ids), dtype=REPORT_DTYPE)
        notices["seq"] = -1  # about no message of this batch
        notices["order_id"] = ids
        notices["kind"] = MAKER_DONE
        return notices


_NO_REPORTS = np.empty(0, dtype=REPORT_DTYPE)


class _Submission(NamedTuple):
    orders: np.ndarray
    client: int | None
    done: asyncio.Future


def _reached_shards(combined, parts, replies, symbols) -> np.ndarray:
    """The messages whose shard answered, with their global symbols back."""
    reached = np.zeros(len(combined), dtype=np.bool_)
    for (_, part), reply in zip(parts, replies, strict=True):
        if not isinstance(reply, BaseException):
            reached[part["seq"]] = True
    out = compress(combined, reached)
    out["symbol"] = symbols[out["seq"]]
    return out


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
