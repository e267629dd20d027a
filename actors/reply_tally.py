"""What a load generator counts: per period, and from its replies, several at a time.

A generator with many small calls out (down to one order per call) hears
back from several in each turn of its event loop. Digesting each reply on
its own cost a dozen array operations per order; :func:`count_replies`
takes all the replies of a turn together: one report digest, one latency
histogram, and the flow told once of the orders that are gone.
"""

from typing import NamedTuple

import numpy as np

from actors.histogram import LatencyHistogram
from actors.report_digest import digest_reports
from actors.wire import concat_records

__all__ = ["Tally", "Reply", "count_replies"]

_SAMPLES_PER_INTERVAL = 256


class Tally:
    """Counts and latencies of one period.

    Everything is counted when it happened: ``sent``, ``lag`` and ``held_ns``
    when the orders were sent; ``answered`` (``acked``, ``rejects`` or
    ``errors``), ``fills`` and ``latency`` when their reply reached the
    generator (throughput by completion). Latency runs from each order's
    intended send time, so it includes every wait the order had.
    """

    def __init__(self) -> None:
        self.sent = self.answered = self.acked = self.rejects = self.fills = self.errors = 0
        self.first_error = ""  #: what the first failed call raised
        self.latency = LatencyHistogram()
        self.lag = LatencyHistogram()  #: actual send time minus intended send time, ns
        self.held_ns = 0  #: time spent waiting for an in-flight slot
        self.samples: list[float] = []  #: a few latencies (ms) for Ray's metrics

    def to_dict(self) -> dict:
        return {
            "sent": self.sent,
            "answered": self.answered,
            "acked": self.acked,
            "rejects": self.rejects,
            "fills": self.fills,
            "errors": self.errors,
            "first_error": self.first_error,
            "latency": self.latency.to_dict(),
            "lag": self.lag.to_dict(),
            "held_ns": self.held_ns,
        }


class Reply(NamedTuple):
    """One call's outcome: its orders, and their reports or the error instead."""

    orders: np.ndarray
    reports: np.ndarray | None
    error: str | None
    received_ns: int  #: when it reached the generator


def count_replies(replies: list[Reply], tallies: tuple[Tally, ...], mids: np.ndarray) -> np.ndarray:
    """Count ``replies`` in each of ``tallies``; returns the ids of the orders now gone.

    Also moves ``mids`` to the last trade prices, as the replies give them in order.
    """
    answered = sum(len(r.orders) for r in replies)
    failed = [r for r in replies if r.error is not None]
    for tally in tallies:
        tally.answered += answered
        if failed:
            tally.errors += sum(len(r.orders) for r in failed)
            tally.first_error = tally.first_error or failed[0].error
    heard = [r for r in replies if r.error is None]
    if not heard:
        return np.empty(0, np.int64)
    reports = heard[0].reports if len(heard) == 1 else concat_records([r.reports for r in heard])
    digest = digest_reports(reports, mids)
    latency = np.concatenate([np.maximum(r.received_ns - r.orders["send_ns"], 0) for r in heard])
    latencies = LatencyHistogram.of(latency)  # bucketed once, added to each tally
    for tally in tallies:
        tally.rejects += digest.rejects
        tally.acked += len(latency) - digest.rejects
        tally.fills += digest.fills
        tally.latency.merge(latencies)
        if len(tally.samples) < _SAMPLES_PER_INTERVAL:
            tally.samples.extend((latency[:: max(1, len(latency) // 4)] / 1e6).tolist())
    return digest.gone
