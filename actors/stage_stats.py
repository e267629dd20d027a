"""Per-stage service-time statistics that actors keep and ship to the collector.

Each pipeline stage (generator, backend, engine shard) records, per batch,
how many messages it handled and how long it was busy. These are the
service times that a calibrated simulation of bigger layouts needs, and they
give each actor's busy fraction for bottleneck attribution.
"""

from lab.histogram import LatencyHistogram

__all__ = ["StageStats"]


class StageStats:
    """Counts, busy time and a histogram of per-batch service times of one stage."""

    def __init__(self) -> None:
        self.batches = 0
        self.messages = 0
        self.busy_ns = 0
        self.max_queue = 0  #: most calls seen waiting or running at once
        self.service = LatencyHistogram()  #: per-batch service time, ns

    def record_batch(self, messages: int, busy_ns: int) -> None:
        self.batches += 1
        self.messages += messages
        self.busy_ns += busy_ns
        self.service.record(busy_ns)

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
