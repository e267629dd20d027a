"""``LoadGenerator``: sends a seeded order flow to the backends and measures it.

Open loop: orders arrive as a Poisson process at the target rate, each with
an *intended* send time on the generator's own monotonic clock. A batch
closes when it is full or when its first order has waited ``batch_wait_s``.
Latency is the time the reports reached the generator minus the intended
send time, so a stall anywhere, the generator included, is counted for every
order that should have been sent during it (as wrk2 does). At most
``max_in_flight`` batches are outstanding: past saturation the generator falls
behind its schedule and sends full batches as fast as the system answers,
instead of queueing without bound. At the window's end it stops sending; the
orders intended in the window that it never sent are counted as ``unsent``.

Closed loop (``rate=None``): ``max_in_flight`` full batches are kept
outstanding, each order stamped when its batch is built, so latency is the
service time under that fixed concurrency, not the latency at a given load.

Throughput is counted by completion: an order counts in the period in which
its final reply reached the generator. After the window the generator waits
at most ``drain_s`` for the replies still out and reports the rest as
unanswered instead of waiting for them.
"""

import asyncio
import time
from typing import Protocol

import numpy as np

from actors.histogram import LatencyHistogram
from actors.order_flow import OrderFlow
from actors.partition import split
from actors.reply_tally import Reply, Tally, count_replies
from actors.report_digest import digest_reports
from actors.routing import backend_of_account
from actors.stage_stats import Span, StageStats
from actors.wire import ORDER_DTYPE
from engine.jit import WARM_UP_SIZES
from engine.messages import REPORT_DTYPE

__all__ = ["LoadGenerator", "BackendClient", "RunWindow", "now_ns", "KEPT_UP", "HELD_SHARE"]

#: The clock of every figure a generator measures: monotonic, within one process.
now_ns = time.monotonic_ns

#: A generator (or the system) kept up when it managed at least this share of its schedule.
KEPT_UP = 0.95
#: A generator that did not keep up is to blame itself when it spent less than this share
#: of the window waiting for an in-flight slot: the system was not holding it back.
HELD_SHARE = 0.5


#: How late a batch due by the window's end may still go out after it.
_END_GRACE_NS = 50_000_000


class BackendClient(Protocol):
    async def submit(self, orders: np.ndarray, client: int) -> np.ndarray: ...


class RunWindow:
    """A run's marks on this generator's clock (:data:`now_ns`), from one start signal.

    Each generator takes the signal on its own clock, so clock skew between
    hosts cannot shift its window.
    """

    def __init__(self, start_ns: int, warmup_s: float, duration_s: float, drain_s: float = 5.0):
        self.start_ns = start_ns
        self.measure_from_ns = start_ns + int(warmup_s * 1e9)
        self.end_ns = start_ns + int(duration_s * 1e9)
        self.drain_until_ns = self.end_ns + int(drain_s * 1e9)

    @classmethod
    def starting_in(cls, lead_s: float, warmup_s: float, duration_s: float, drain_s: float = 5.0):
        """The window that starts ``lead_s`` from now."""
        return cls(now_ns() + int(lead_s * 1e9), warmup_s, duration_s, drain_s)

    @property
    def measured_s(self) -> float:
        return (self.end_ns - self.measure_from_ns) / 1e9


class LoadGenerator:
    def __init__(
        self,
        gen_id: int,
        backends: list[BackendClient],
        flow: OrderFlow,
        rate: float | None,
        batch_size: int,
        batch_wait_s: float,
        max_in_flight: int = 4,
        seed: int = 1,
    ):
        self.gen_id = gen_id
        self.backends = backends
        self.flow = flow
        self.rate = rate
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self.max_in_flight = max_in_flight
        self._rng = np.random.default_rng([seed, gen_id, 7])
        self.stats = StageStats()
        self.total = Tally()  #: the measured window
        self.interval = Tally()  #: since the collector last asked
        self._in_flight: dict[asyncio.Task, int] = {}  #: call -> its number of orders
        self._in_flight_orders = 0
        self._answered_late = 0  #: orders whose reply came after the window's end
        #: one future per batch out, done when all its calls (one per backend) are
        self._batches: set[asyncio.Future] = set()
        self._window: RunWindow | None = None
        self._arrivals: _Arrivals | None = None
        self._replies: list[Reply] = []  #: heard this turn of the loop, not yet counted

    def warm_up(self) -> None:
        """Compile (or load from Numba's cache) every kernel the generator runs in its window.

        That is the flow's builder and forget pass, the report digest, the split
        by backend and the latency histogram's bucketing, each called once on
        scratch data with the array types of the run, so that no compile lands
        inside the measured window.
        """
        scratch = OrderFlow(self.flow.params._replace(mix=(1.0, 0, 0, 0, 0)), seed=0)
        n = max(len(self.backends), 1)
        for size in WARM_UP_SIZES:  # a one-order batch has a layout of its own
            orders = scratch.next_batch(size, ORDER_DTYPE, now_ns=size)
            split(orders, backend_of_account(orders["account"], n), n)
            digest_reports(np.zeros(size, REPORT_DTYPE), scratch.mids)
            LatencyHistogram.of(np.zeros(size, np.int64))
        scratch.forget(orders["order_id"][:1])
        scratch.forget_now()

    def take_stats(self) -> dict:
        """This interval's counts, latencies and stage figures; starts a new interval."""
        out = self.interval.to_dict()
        out["samples_ms"] = self.interval.samples
        out["stage"] = self.stats.take()
        out["in_flight"] = len(self._in_flight)
        out["in_flight_orders"] = self._in_flight_orders
        behind_ns = self._behind_ns()
        out["schedule_lag_ms"] = behind_ns / 1e6
        # Orders due but not yet sent, estimated from how far behind the schedule is.
        unsent = int(behind_ns * self.rate / 1e9) if self.rate else 0
        out["backlog"] = self._in_flight_orders + unsent
        self.interval = Tally()
        return out

    def _behind_ns(self) -> int:
        if self._arrivals is None or self._window is None:
            return 0
        now = min(now_ns(), self._window.end_ns)
        return max(0, now - self._arrivals.next_ns())

    async def run(self, window: RunWindow) -> dict:
        """Send through the window, drain, and return the measured tally."""
        self._window = window
        await _sleep_until(window.start_ns)
        if self.rate is None:
            await self._closed_loop(window)
        else:
            await self._open_loop(window)
        # Every wait of the loops ends with the window, and so do they (the last batch
        # goes out at its very end). The backlog the window left is what was answered
        # after its end, or never: counted from the replies' own times, since this loop
        # may wake past the end, after some of those replies were taken in.
        await _sleep_until(window.end_ns)
        overrun_ns, unanswered = await self._drain(window)
        self._count_replies()  # the last turn's, if its count has not run yet
        in_flight_at_end = self._answered_late + unanswered
        out = self.total.to_dict()
        measure_from, end = window.measure_from_ns, window.end_ns
        offered = unsent = None
        if self._arrivals is not None:
            before_from, before_end = self._arrivals.count_before(measure_from, end)
            offered = self._arrivals.taken_in_window + before_end - before_from
            unsent = before_end
        out.update(
            loop="closed" if self.rate is None else "open",
            measured_s=window.measured_s,
            offered=offered,
            unsent=unsent or 0,
            in_flight_at_end=in_flight_at_end,
            unanswered=unanswered,
            overrun_s=overrun_ns / 1e9,
            in_flight_cap=self.max_in_flight * self.batch_size,
            generator_limited=self._fell_behind(window, offered),
        )
        return out

    def tally_so_far(self) -> dict:
        """The measured tally as far as the run has got, in :meth:`run`'s form."""
        if self._window is not None:
            self._count_replies()
        out = self.total.to_dict()
        window = self._window
        measured_s = 0.0
        if window is not None:
            measured_s = max(0, min(now_ns(), window.end_ns) - window.measure_from_ns) / 1e9
        out.update(
            loop="closed" if self.rate is None else "open",
            measured_s=measured_s,
            offered=None if self._arrivals is None else self._arrivals.taken_in_window,
            unsent=0,
            in_flight_at_end=self._in_flight_orders,
            unanswered=self._in_flight_orders,
            overrun_s=0.0,
            in_flight_cap=self.max_in_flight * self.batch_size,
            generator_limited=None,
        )
        return out

    def _fell_behind(self, window: RunWindow, offered: int | None) -> bool | None:
        """Did this generator fail to send its schedule by its own doing? (open loop only)"""
        if offered is None:
            return None
        behind = self.total.sent < KEPT_UP * offered
        measured_ns = window.end_ns - window.measure_from_ns
        return bool(behind and self.total.held_ns < HELD_SHARE * measured_ns)

    async def _drain(self, window: RunWindow) -> tuple[int, int]:
        """Wait for the calls still out, until the drain ends; (overrun ns, orders unanswered)."""
        last_reply_ns = window.end_ns
        while self._in_flight:
            timeout = (window.drain_until_ns - now_ns()) / 1e9
            if timeout <= 0:
                break
            await asyncio.wait(list(self._in_flight), timeout=timeout)
            last_reply_ns = max(last_reply_ns, now_ns())
        unanswered = sum(self._in_flight.values())
        if self._in_flight:  # given up on: not waited for
            for task in list(self._in_flight):
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            last_reply_ns = max(last_reply_ns, window.drain_until_ns)
        return last_reply_ns - window.end_ns, unanswered

    async def _wait_for_room(self, deadline_ns: int) -> bool:
        """Wait until fewer than ``max_in_flight`` batches are out; True if it had to wait."""
        started, waited = now_ns(), False
        while len(self._batches) >= self.max_in_flight:
            timeout = (deadline_ns - now_ns()) / 1e9
            if timeout <= 0:
                break
            waited = True
            await asyncio.wait(
                list(self._batches), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        if not waited:
            return False
        held_ns = now_ns() - started
        self.interval.held_ns += held_ns
        if started >= self._window.measure_from_ns:
            self.total.held_ns += held_ns
        return True

    async def _closed_loop(self, window: RunWindow) -> None:
        while now_ns() < window.end_ns:
            await self._wait_for_room(window.end_ns)
            now = now_ns()
            if now >= window.end_ns:
                return
            # Every free slot at once: one build for all of them (one order each, say).
            room = max(1, self.max_in_flight - len(self._batches))
            self._send(np.full(room * self.batch_size, now, dtype=np.int64), window)
            await asyncio.sleep(0)

    async def _open_loop(self, window: RunWindow) -> None:
        arrivals = self._arrivals = _Arrivals(self._rng, self.rate, window)
        wait_ns = int(self.batch_wait_s * 1e9)
        while True:
            first = arrivals.next_ns()
            if first >= window.end_ns:
                return
            # The batch closes when full or when its first order has waited long enough.
            upcoming = arrivals.peek(self.batch_size)
            close = min(int(upcoming[-1]), first + wait_ns, window.end_ns)
            await _sleep_until(close)
            held = await self._wait_for_room(window.end_ns)
            now = now_ns()
            # A batch due by the end goes out even if the loop woke a little late, but
            # not if the system held it back or the schedule is far behind: the window
            # is over, and what it closed on stays unsent.
            if now >= window.end_ns and (held or now - close > _END_GRACE_NS):
                return
            # Behind the schedule, every batch due that has a free slot goes at once.
            room = max(1, self.max_in_flight - len(self._batches))
            due = arrivals.take_until(max(close, now), room * self.batch_size)
            if len(due):
                self._send(due, window)

    def _send(self, send_ns: np.ndarray, window: RunWindow) -> None:
        span = Span()
        with span:
            orders = self._build_and_send(send_ns)
            self._count_sent(send_ns, window)
        self.stats.record_batch(len(orders), span)

    def _count_sent(self, send_ns: np.ndarray, window: RunWindow) -> None:
        sent_at = now_ns()
        n = len(send_ns)
        lag = np.maximum(sent_at - send_ns, 0)  # a timer may wake a little early
        # Nothing is sent after the window but its last batch, at its very end.
        tallies = (
            (self.interval, self.total) if sent_at >= window.measure_from_ns else (self.interval,)
        )
        lags = LatencyHistogram.of(lag)  # bucketed once, added to each period
        for tally in tallies:
            tally.sent += n
            tally.lag.merge(lags)

    def _build_and_send(self, send_ns: np.ndarray) -> np.ndarray:
        """Build the orders of ``send_ns`` at once and send them in batches of ``batch_size``."""
        # The hazard runs on the real clock: behind its schedule the flow still cancels
        # per real second, so the book stays what it would be at the rate achieved.
        orders = self.flow.next_batch(len(send_ns), ORDER_DTYPE, now_ns=now_ns())
        orders["send_ns"] = send_ns
        n = len(self.backends)
        routes = backend_of_account(orders["account"], n)
        size = self.batch_size
        for lo in range(0, len(orders), size):
            batch, batch_routes = orders[lo : lo + size], routes[lo : lo + size]
            if len(batch) == 1:  # one order, one backend: no split to make
                parts = [(int(batch_routes[0]), batch)]
            else:
                parts = split(batch, batch_routes, n)
            calls = []
            for backend, part in parts:
                task = asyncio.ensure_future(self._submit(backend, part))
                self._in_flight[task] = len(part)
                self._in_flight_orders += len(part)
                task.add_done_callback(self._call_done)
                calls.append(task)
            gathered = asyncio.gather(*calls, return_exceptions=True)
            self._batches.add(gathered)
            gathered.add_done_callback(self._batches.discard)
        self.stats.note_queue(len(self._in_flight))
        return orders

    def _call_done(self, task: asyncio.Task) -> None:
        self._in_flight_orders -= self._in_flight.pop(task, 0)

    async def _submit(self, backend: int, orders: np.ndarray) -> None:
        try:
            reports = await self.backends[backend].submit(orders, self.gen_id)
            error = None
        except Exception as exc:  # a failed call loses its orders: count them, keep going
            reports, error = None, f"{type(exc).__name__}: {exc}"[:2000]
        received = now_ns()
        if received >= self._window.end_ns:
            self._answered_late += len(orders)
        # Counted with the other replies of this turn of the loop, all at once.
        self._replies.append(Reply(orders, reports, error, received))
        if len(self._replies) == 1:
            asyncio.get_running_loop().call_soon(self._count_replies)

    def _count_replies(self) -> None:
        """Count the replies heard so far, in order; the flow forgets the orders gone."""
        replies, self._replies = self._replies, []
        window = self._window
        gone = []
        start = 0
        while start < len(replies):  # runs of replies counted in the same periods
            measured = window.measure_from_ns <= replies[start].received_ns < window.end_ns
            end = start + 1
            while end < len(replies) and measured == (
                window.measure_from_ns <= replies[end].received_ns < window.end_ns
            ):
                end += 1
            tallies = (self.interval, self.total) if measured else (self.interval,)
            gone.append(count_replies(replies[start:end], tallies, self.flow.mids))
            start = end
        if gone:  # filled, cancelled, expired or rejected
            self.flow.forget(gone[0] if len(gone) == 1 else np.concatenate(gone))


class _Arrivals:
    """Poisson arrival times of one window, integer ns on the generator's clock.

    Gaps are drawn in chunks and summed as float offsets from the window's
    start (exact to well under a ns for any run length), so the times do not
    lose precision to a large clock origin.
    """

    def __init__(self, rng: np.random.Generator, rate: float, window: RunWindow):
        self._rng = rng
        self._gap_ns = 1e9 / rate
        self._start = window.start_ns
        self._measure_from = window.measure_from_ns
        self._end = window.end_ns
        self._offset = 0.0  #: float ns from the start of the last arrival drawn
        self._times = np.empty(0, dtype=np.int64)
        self.taken_in_window = 0  #: arrivals taken that were intended in the measured window

    def _draw(self, n: int) -> np.ndarray:
        offsets = self._offset + np.cumsum(self._rng.exponential(self._gap_ns, n))
        self._offset = float(offsets[-1])
        return self._start + offsets.astype(np.int64)

    def _ensure(self, n: int) -> None:
        while len(self._times) < n:
            self._times = np.concatenate((self._times, self._draw(max(n, 4096))))

    def next_ns(self) -> int:
        """The intended time of the next arrival not yet taken."""
        self._ensure(1)
        return int(self._times[0])

    def peek(self, n: int) -> np.ndarray:
        self._ensure(n)
        return self._times[:n]

    def take_until(self, until_ns: int, limit: int) -> np.ndarray:
        """Up to ``limit`` arrivals intended at or before ``until_ns`` and before the end."""
        self._ensure(limit)
        last = min(until_ns, self._end - 1)
        k = int(np.searchsorted(self._times[:limit], last, side="right"))
        out, self._times = self._times[:k], self._times[k:]
        self.taken_in_window += int(np.count_nonzero(out >= self._measure_from))
        return out

    def count_before(self, *limits_ns: int) -> list[int]:
        """How many arrivals not taken fall before each limit; drawn in chunks, not kept."""
        counts = [int(np.searchsorted(self._times, t)) for t in limits_ns]
        if len(self._times) and self._times[-1] >= max(limits_ns):
            return counts
        while self._start + self._offset < max(limits_ns):
            # Past saturation this may be millions of arrivals: counted, never stored.
            chunk = self._draw(1 << 20)
            more = [int(np.searchsorted(chunk, t)) for t in limits_ns]
            counts = [c + m for c, m in zip(counts, more, strict=True)]
        return counts


async def _sleep_until(t_ns: int) -> None:
    # Loop timers may fire early (uvloop's tick is a millisecond): sleep again until it is time.
    while (delay := (t_ns - now_ns()) / 1e9) > 0:
        await asyncio.sleep(delay)
