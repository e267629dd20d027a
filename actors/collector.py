"""``Collector``: merges per-interval figures from every actor into time series.

Every ``interval_s`` it asks each actor for the figures of the interval just
ended (``take_stats``) and merges them: orders sent, answered (acknowledged,
rejected or failed: throughput by completion), the generators' backlog and
schedule lag, the shards' resting orders, latency histograms per second, and
per actor its busy fraction, its process's CPU, its host's CPU, batches and
queue depth. A source that fails to answer a poll is counted (``failed_polls``)
and named in its actor's series.
``progress()`` is what the live display shows. Times are on the collector's
own monotonic clock, from its start signal.
"""

import asyncio
import time
from typing import Protocol

from actors.histogram import LatencyHistogram

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
        self._start_ns = time.monotonic_ns()
        self._stopped = asyncio.Event()
        self._last_ns = self._start_ns
        self.failed_polls = 0  #: polls a source did not answer

    async def run(self, lead_s: float = 0.0) -> None:
        """Collect every interval, from ``lead_s`` from now, until :meth:`stop` is called."""
        self._start_ns = self._last_ns = time.monotonic_ns() + int(lead_s * 1e9)
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
        now = time.monotonic_ns()
        span_ns = max(now - self._last_ns, 1)
        self._last_ns = now
        point = dict.fromkeys(_SUMMED, 0)
        point["t_s"] = round((now - self._start_ns) / 1e9, 3)
        point["schedule_lag_ms"] = 0.0
        point["failed_polls"] = 0
        latency = LatencyHistogram()
        for name, reply in zip(names, replies, strict=True):
            if isinstance(reply, BaseException):
                self.failed_polls += 1
                point["failed_polls"] += 1
                self.actors[name].append({"t_s": point["t_s"], "error": repr(reply)})
                continue
            stage = reply.get("stage", reply)
            self.actors[name].append(
                {
                    "t_s": point["t_s"],
                    "busy": round(stage["busy_ns"] / span_ns, 4),
                    "cpu": round(stage.get("process_cpu_ns", 0) / span_ns, 4),
                    "host_busy": stage.get("host_busy"),
                    "batches": stage["batches"],
                    "messages": stage["messages"],
                    "max_queue": stage["max_queue"],
                    "service": stage["service"],
                }
            )
            if "resting" in reply:  # an engine shard
                point["resting_orders"] += reply["resting"]
            if "latency" in reply:  # a load generator
                for key in _SUMMED:
                    point[key] += reply.get(key, 0)
                point["schedule_lag_ms"] = max(point["schedule_lag_ms"], reply["schedule_lag_ms"])
                latency.merge(LatencyHistogram.from_dict(reply["latency"]))
        point["orders_per_s"] = round(point["acked"] * 1e9 / span_ns, 1)
        point["latency_ms"] = latency.percentiles_ms()
        self.series.append(point)

    def progress(self) -> dict:
        """The latest point, for a live display."""
        return self.series[-1] if self.series else {}

    def summary(self) -> dict:
        return {"series": self.series, "actors": self.actors, "failed_polls": self.failed_polls}


# Per-interval figures summed over the generators (and ``resting_orders`` over the shards).
_SUMMED = (
    "sent",
    "answered",
    "acked",
    "rejects",
    "fills",
    "errors",
    "in_flight_orders",
    "backlog",
    "resting_orders",
)
