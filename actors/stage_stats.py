"""Per-stage service-time statistics that actors keep and ship to the collector.

Each pipeline stage (generator, backend, engine shard) records, per batch,
how many messages it handled, the wall time it spent on the batch (the
service time a calibrated simulation needs) and the CPU time its thread
used (busy time: on a shared host, wall time also counts the waits for a
core, which would make every actor look busy).
"""

import time

from actors.histogram import LatencyHistogram

__all__ = ["StageStats", "Span"]


class Span:
    """Wall and thread-CPU time of the ``with`` blocks it timed, added up."""

    def __init__(self) -> None:
        self.wall_ns = 0
        self.cpu_ns = 0

    def __enter__(self) -> "Span":
        self._wall = time.perf_counter_ns()
        self._cpu = time.thread_time_ns()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_ns += time.perf_counter_ns() - self._wall
        self.cpu_ns += time.thread_time_ns() - self._cpu


class StageStats:
    """Counts, busy time and a histogram of per-batch service times of one stage."""

    def __init__(self) -> None:
        self.batches = 0
        self.messages = 0
        self.busy_ns = 0  #: thread CPU time
        self.max_queue = 0  #: most calls seen waiting or running at once
        self.service = LatencyHistogram()  #: per-batch service (wall) time, ns

    def record_batch(self, messages: int, span: Span) -> None:
        self.batches += 1
        self.messages += messages
        self.busy_ns += span.cpu_ns
        self.service.record(span.wall_ns)

    def note_queue(self, depth: int) -> None:
        self.max_queue = max(self.max_queue, depth)

    def take(self) -> dict:
        """This interval's figures as a plain dict; starts a new interval."""
        out = {
            "batches": self.batches,
            "messages": self.messages,
            "busy_ns": self.busy_ns,
            "max_queue": self.max_queue,
            "service": self.service.to_dict(),
        }
        self.__init__()
        return out
