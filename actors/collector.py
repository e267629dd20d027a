"""``Collector``: merges per-interval figures from every actor into time series.

Every ``interval_s`` it asks each actor for the figures of the interval just
ended (``take_stats``) and merges them: orders sent, acknowledged, rejected,
latency histograms per second, and per actor its busy fraction, batches and
queue depth. ``progress()`` is what the live display shows.
"""

import asyncio
import time
from typing import Protocol

from lab.histogram import LatencyHistogram

__all__ = ["Collector", "StatsSource", "REPORT_INTERVAL_S"]

#: Seconds between two collections; tests may shorten it.
REPORT_INTERVAL_S = 1.0


class StatsSource(Protocol):
    async def take_stats(self) -> dict: ...


class Collector:
    def __init__(self, sources: dict[str, StatsSource], interval_s: float = REPORT_INTERVAL_S):
        self.sources = sources
        self.interval_s = interval_s
        self.series: list[dict] = []  #: one point per interval
        self.actors: dict[str, list[dict]] = {name: [] for name in sources}
        self._start_ns = time.time_ns()
        self._stopped = asyncio.Event()
        self._last_ns = self._start_ns

    async def run(self, start_ns: int) -> None:
        """Collect every interval until :meth:`stop` is called."""
        self._start_ns = self._last_ns = start_ns
        while not self._stopped.is_set():
            try:
                await asyncio.wait_for(self._stopped.wait(), self.interval_s)
            except asyncio.TimeoutError:
                pass
            await self.collect()

    async def stop(self) -> None:
        self._stopped.set()

    async def collect(self) -> None:
        """Take one interval's figures from every source."""
        names = list(self.sources)
        replies = await asyncio.gather(
            *(self.sources[name].take_stats() for name in names), return_exceptions=True
        )
        now = time.time_ns()
        span_ns = max(now - self._last_ns, 1)
        self._last_ns = now
        point = {
            "t_s": round((now - self._start_ns) / 1e9, 3),
            "sent": 0,
            "acked": 0,
            "rejects": 0,
            "fills": 0,
            "errors": 0,
        }
        latency = LatencyHistogram()
        for name, reply in zip(names, replies, strict=True):
            if isinstance(reply, BaseException):
                self.actors[name].append({"t_s": point["t_s"], "error": repr(reply)})
                continue
            stage = reply.get("stage", reply)
            self.actors[name].append(
                {
                    "t_s": point["t_s"],
                    "busy": round(stage["busy_ns"] / span_ns, 4),
                    "batches": stage["batches"],
                    "messages": stage["messages"],
                    "max_queue": stage["max_queue"],
                    "service": stage["service"],
                }
            )
            if "latency" in reply:
                for key in ("sent", "acked", "rejects", "fills", "errors"):
                    point[key] += reply[key]
                latency.merge(LatencyHistogram.from_dict(reply["latency"]))
        point["orders_per_s"] = round(point["acked"] * 1e9 / span_ns, 1)
        point["latency_ms"] = latency.percentiles_ms()
        self.series.append(point)

    def progress(self) -> dict:
        """The latest point, for a live display."""
        return self.series[-1] if self.series else {}

    def summary(self) -> dict:
        return {"series": self.series, "actors": self.actors}
