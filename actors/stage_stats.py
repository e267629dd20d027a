"""Per-stage service-time statistics that actors keep and ship to the collector.

Each pipeline stage (generator, backend, engine shard) records, per batch,
how many messages it handled, the wall time it spent on the batch (the
service time a calibrated simulation needs) and the CPU time its thread
used (busy time: on a shared host, wall time also counts the waits for a
core, which would make every actor look busy). Beside it goes the CPU time of
the whole process between polls: the HTTP parsing, JSON, event loop and Ray
threads that no span covers, and how busy the host's CPUs were, all its
processes counted (Ray's own too): on a host with every core taken, that is
where the time went while no stage looked busy.
"""

import os
import time

from actors.histogram import LatencyHistogram

__all__ = ["StageStats", "Span", "host_cpus", "host_cpu_ticks"]


def host_cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole host since boot, from /proc/stat; None elsewhere."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = sum(ticks[3:5])  # idle and iowait
    return sum(ticks) - idle, sum(ticks)


def host_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container's cpuset sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
        self._reset()
        self._process_cpu_mark = time.process_time_ns()
        self._host_mark = host_cpu_ticks()

    def _reset(self) -> None:
        self.batches = 0
        self.messages = 0
        self.fills = 0  #: FILL reports among the stage's answers
        self.rejects = 0  #: REJECT reports among them
        self.busy_ns = 0  #: thread CPU time
        self.max_queue = 0  #: most calls seen waiting or running at once
        self.service = LatencyHistogram()  #: per-batch service (wall) time, ns

    def record_batch(self, messages: int, span: Span) -> None:
        self.batches += 1
        self.messages += messages
        self.busy_ns += span.cpu_ns
        self.service.record(span.wall_ns)

    def note_reports(self, fills: int, rejects: int) -> None:
        self.fills += int(fills)
        self.rejects += int(rejects)

    def note_queue(self, depth: int) -> None:
        self.max_queue = max(self.max_queue, depth)

    def take(self) -> dict:
        """This interval's figures as a plain dict; starts a new interval."""
        process_cpu, self._process_cpu_mark = self._process_cpu_mark, time.process_time_ns()
        host, self._host_mark = self._host_mark, host_cpu_ticks()
        host_busy = None
        if host and self._host_mark and self._host_mark[1] > host[1]:
            host_busy = (self._host_mark[0] - host[0]) / (self._host_mark[1] - host[1])
        out = {
            "batches": self.batches,
            "messages": self.messages,
            "fills": self.fills,
            "rejects": self.rejects,
            "busy_ns": self.busy_ns,
            "process_cpu_ns": self._process_cpu_mark - process_cpu,
            "host_busy": host_busy,  #: share of the host's CPU time that was not idle
            "max_queue": self.max_queue,
            "service": self.service.to_dict(),
        }
        self._reset()
        return out
