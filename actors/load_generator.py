"""``LoadGenerator``: sends a seeded order flow to the backends and measures it.

Open loop: orders arrive as a Poisson process at the target rate, and each
carries its *intended* send time. A batch closes when it is full or when its
first order has waited ``batch_wait_s``. Latency is the time the reports
reached the generator minus the intended send time, so when the system (or
the generator itself) stalls, the stall is counted, as wrk2 does.

Closed loop (``rate=None``): ``max_in_flight`` full batches are kept
outstanding, each order stamped when its batch is built.
"""

import asyncio
import time
from typing import Protocol

import numpy as np

from actors.partition import split
from actors.report_digest import digest_reports
from actors.routing import backend_of_account
from actors.stage_stats import Span, StageStats
from actors.wire import ORDER_DTYPE, compress
from engine.messages import ReportKind
from lab.histogram import LatencyHistogram
from lab.workload import OrderFlow

__all__ = ["LoadGenerator", "BackendClient", "RunWindow"]

_SAMPLES_PER_INTERVAL = 256


class BackendClient(Protocol):
    async def submit(self, orders: np.ndarray) -> np.ndarray: ...


class RunWindow:
    """The run's clock marks, in ns of ``time.time_ns`` (shared by the actors on a host)."""

    def __init__(self, start_ns: int, warmup_s: float, duration_s: float):
        self.start_ns = start_ns
        self.measure_from_ns = start_ns + int(warmup_s * 1e9)
        self.end_ns = start_ns + int(duration_s * 1e9)


class _Tally:
    """Counts and latencies of one period."""

    def __init__(self) -> None:
        self.sent = self.acked = self.rejects = self.fills = self.errors = 0
        self.first_error = ""  #: what the first failed call raised
        self.latency = LatencyHistogram()
        self.samples: list[float] = []  #: a few latencies (ms) for Ray's metrics

    def to_dict(self) -> dict:
        return {
            "sent": self.sent,
            "acked": self.acked,
            "rejects": self.rejects,
            "fills": self.fills,
            "errors": self.errors,
            "first_error": self.first_error,
            "latency": self.latency.to_dict(),
        }


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
        self.total = _Tally()  #: the measured window
        self.interval = _Tally()  #: since the collector last asked
        self._in_flight: set[asyncio.Task] = set()

    def take_stats(self) -> dict:
        """This interval's counts, latencies and stage figures; starts a new interval."""
        out = self.interval.to_dict()
        out["samples_ms"] = self.interval.samples
        out["stage"] = self.stats.take()
        out["in_flight"] = len(self._in_flight)
        self.interval = _Tally()
        return out

    async def run(self, window: RunWindow) -> dict:
        """Send until the window ends, wait for the replies, return the measured tally."""
        await _sleep_until(window.start_ns)
        if self.rate is None:
            await self._closed_loop(window)
        else:
            await self._open_loop(window)
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        return self.total.to_dict()

    async def _closed_loop(self, window: RunWindow) -> None:
        while time.time_ns() < window.end_ns:
            while len(self._in_flight) >= self.max_in_flight:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            now = time.time_ns()
            self._send(np.full(self.batch_size, now, dtype=np.int64), window)
            await asyncio.sleep(0)

    async def _open_loop(self, window: RunWindow) -> None:
        arrivals = _Arrivals(self._rng, self.rate, window.start_ns)
        wait_ns = int(self.batch_wait_s * 1e9)
        while True:
            first = arrivals.peek(1)[0]
            if first >= window.end_ns:
                return
            # The batch closes when full or when its first order has waited long enough.
            upcoming = arrivals.peek(self.batch_size)
            close = min(int(upcoming[-1]), first + wait_ns, window.end_ns)
            await _sleep_until(close)
            while len(self._in_flight) >= self.max_in_flight:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            due = arrivals.take_until(max(close, time.time_ns()), self.batch_size, window.end_ns)
            if len(due):
                self._send(due, window)

    def _send(self, send_ns: np.ndarray, window: RunWindow) -> None:
        span = Span()
        with span:
            orders = self._build_and_send(send_ns, window)
        self.stats.record_batch(len(orders), span)

    def _build_and_send(self, send_ns: np.ndarray, window: RunWindow) -> np.ndarray:
        orders = self.flow.next_batch(len(send_ns), ORDER_DTYPE)
        orders["send_ns"] = send_ns
        routes = backend_of_account(orders["account"], len(self.backends))
        for backend, part in split(orders, routes, len(self.backends)):
            task = asyncio.ensure_future(self._submit(backend, part, window))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        self.stats.note_queue(len(self._in_flight))
        return orders

    async def _submit(self, backend: int, orders: np.ndarray, window: RunWindow) -> None:
        try:
            reports = await self.backends[backend].submit(orders)
            error = None
        except Exception as exc:  # a failed call loses its orders: count them, keep going
            reports, error = None, f"{type(exc).__name__}: {exc}"[:2000]
        received = time.time_ns()
        # Also follows the market: moves the flow's mids to the last trades.
        digest = None if reports is None else digest_reports(reports, self.flow.mids)
        measured = orders["send_ns"] >= window.measure_from_ns
        self._count(self.interval, orders, reports, digest, received, error, slice(None))
        if measured.all():
            self._count(self.total, orders, reports, digest, received, error, slice(None))
        elif measured.any():
            picked = compress(orders, measured)
            self._count(self.total, picked, reports, digest, received, error, measured)
        if digest is not None:
            self.flow.forget(digest.gone)  # filled, cancelled, expired or rejected

    @staticmethod
    def _count(tally, orders, reports, digest, received, error, mask) -> None:
        n = len(orders)
        if not n:
            return
        tally.sent += n
        if error:
            tally.errors += n
            tally.first_error = tally.first_error or error
            return
        if isinstance(mask, slice):  # every order of the call
            rejects, fills = digest.rejects, digest.fills
        else:  # the orders selected by ``mask`` (seqs rise within a batch)
            kinds = reports["kind"]
            selected = orders["seq"]
            rejects = _count_seqs(selected, reports["seq"][kinds == ReportKind.REJECT])
            fills = _count_seqs(selected, reports["seq"][kinds == ReportKind.FILL])
        tally.rejects += rejects
        tally.acked += n - rejects
        tally.fills += fills
        latency = np.maximum(received - orders["send_ns"], 0)
        tally.latency.record_many(latency)
        if len(tally.samples) < _SAMPLES_PER_INTERVAL:
            tally.samples.extend((latency[:: max(1, n // 4)] / 1e6).tolist())


def _count_seqs(selected: np.ndarray, seqs: np.ndarray) -> int:
    """How many of ``seqs`` are in the sorted array ``selected``."""
    if not len(selected) or not len(seqs):
        return 0
    at = np.minimum(np.searchsorted(selected, seqs), len(selected) - 1)
    return int(np.count_nonzero(selected[at] == seqs))


class _Arrivals:
    """Poisson arrival times (ns), drawn in chunks."""

    def __init__(self, rng: np.random.Generator, rate: float, start_ns: int):
        self._rng = rng
        self._gap_ns = 1e9 / rate
        self._times = np.empty(0, dtype=np.int64)
        self._last = float(start_ns)

    def _ensure(self, n: int) -> None:
        while len(self._times) < n:
            gaps = self._rng.exponential(self._gap_ns, max(n, 4096))
            times = self._last + np.cumsum(gaps)
            self._last = float(times[-1])
            self._times = np.concatenate((self._times, times.astype(np.int64)))

    def peek(self, n: int) -> np.ndarray:
        self._ensure(n)
        return self._times[:n]

    def take_until(self, until_ns: int, limit: int, end_ns: int) -> np.ndarray:
        self._ensure(limit)
        k = int(np.searchsorted(self._times[:limit], min(until_ns, end_ns - 1), side="right"))
        out, self._times = self._times[:k], self._times[k:]
        return out


async def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.time_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)
