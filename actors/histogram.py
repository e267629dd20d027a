"""A mergeable, serialisable histogram of latencies in nanoseconds.

Buckets grow geometrically by :data:`GROWTH` from :data:`FLOOR_NS` (1 µs) up to
:data:`CEILING_NS` (1 hour). Every value below 1 µs shares bucket 0 and every
value above an hour shares the last bucket. A bucket is represented by its
geometric midpoint, so for values of at least 1 µs a percentile is within
``sqrt(GROWTH) - 1`` (0.5%) of the exact one; ``min`` and ``max`` are exact.

Actors record into their own histogram, ship ``to_dict()`` (only the non-zero
buckets) and the collector ``merge``\\ s them.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np

from engine.jit import njit, read_only

__all__ = ["LatencyHistogram", "FLOOR_NS", "CEILING_NS", "GROWTH"]

FLOOR_NS = 1_000  #: values below this share bucket 0
CEILING_NS = 3_600 * 10**9  #: values above this share the last bucket
GROWTH = 1.01  #: ratio of consecutive bucket boundaries

# _BOUNDS[i] is the lower edge of bucket i + 1; bucket 0 is [0, FLOOR_NS).
_BOUNDS = FLOOR_NS * GROWTH ** np.arange(math.ceil(math.log(CEILING_NS / FLOOR_NS, GROWTH)) + 1)
_BOUNDS_LIST = _BOUNDS.tolist()
_BOUNDS_READ_ONLY = read_only(_BOUNDS)
_NBUCKETS = len(_BOUNDS) + 1
# The value reported for a bucket: the geometric midpoint of its edges.
_MIDPOINTS = np.concatenate(([FLOOR_NS / 2], np.sqrt(_BOUNDS[:-1] * _BOUNDS[1:]), [_BOUNDS[-1]]))
_LAYOUT = [FLOOR_NS, GROWTH, _NBUCKETS]  # serialised so incompatible versions are refused

_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
_INV_LOG_GROWTH = 1.0 / math.log(GROWTH)


@njit
def _count_buckets(values, bounds, inv_log_growth, counts):
    """``counts[np.searchsorted(bounds, v, "right")] += 1`` for each value, in one pass.

    The bucket comes from the value's logarithm, then is nudged to the exact
    edges (rounding can put it one off): several times cheaper than a binary
    search over the thousands of edges.
    """
    last = bounds.shape[0] - 1
    for i in range(values.shape[0]):
        v = values[i]
        if v < bounds[0]:
            counts[0] += 1
            continue
        if v >= bounds[last]:
            counts[last + 1] += 1
            continue
        j = min(max(np.int64(np.log(v / bounds[0]) * inv_log_growth), 0), last)
        while bounds[j] > v:
            j -= 1
        while bounds[j + 1] <= v:
            j += 1
        counts[j + 1] += 1


class LatencyHistogram:
    """Counts of latencies (ns) in log-spaced buckets, plus exact count, min, max and sum."""

    __slots__ = ("counts", "count", "min", "max", "total")

    def __init__(self) -> None:
        self.counts = np.zeros(_NBUCKETS, dtype=np.int64)  #: samples per bucket
        self.count = 0  #: number of samples
        self.min: int | float = 0  #: smallest sample (0 when empty)
        self.max: int | float = 0  #: largest sample (0 when empty)
        self.total: float = 0.0  #: sum of the samples, for the mean

    # -- recording -----------------------------------------------------------

    def record(self, value_ns: int | float) -> None:
        """Add one latency; ValueError if it is negative or not a number."""
        value = value_ns.item() if isinstance(value_ns, np.generic) else value_ns
        if isinstance(value, bool) or not value >= 0:  # `not >=` also catches NaN
            raise ValueError(f"latency must be a non-negative number of ns, got {value_ns!r}")
        index = min(bisect.bisect_right(_BOUNDS_LIST, value), _NBUCKETS - 1)
        self.counts[index] += 1
        self._extend(1, value, value, float(value))

    @classmethod
    def of(cls, values_ns: np.ndarray) -> LatencyHistogram:
        """A histogram of these latencies (to :meth:`merge` into several others)."""
        histogram = cls()
        histogram.record_many(values_ns)
        return histogram

    def record_many(self, values_ns: np.ndarray) -> None:
        """Add an array of latencies at once; ValueError if any is negative or NaN."""
        values = np.asarray(values_ns).ravel()
        if values.size == 0:
            return
        if values.dtype.kind not in "iuf":
            raise ValueError(f"latencies must be numbers, got an array of {values.dtype}")
        low, high = values.min(), values.max()
        if not low >= 0 or (values.dtype.kind == "f" and np.isnan(values).any()):
            raise ValueError("latencies must be non-negative numbers of ns")
        floats = read_only(np.ascontiguousarray(values, dtype=np.float64))
        _count_buckets(floats, _BOUNDS_READ_ONLY, _INV_LOG_GROWTH, self.counts)
        self._extend(values.size, low.item(), high.item(), float(values.sum(dtype=np.float64)))

    def _extend(self, count: int, low: int | float, high: int | float, total: float) -> None:
        if self.count == 0:
            self.min, self.max = low, high
        else:
            self.min, self.max = min(self.min, low), max(self.max, high)
        self.count += count
        self.total += total

    def merge(self, other: LatencyHistogram) -> LatencyHistogram:
        """Add ``other``'s samples to this histogram; returns self."""
        if other.count:
            self.counts += other.counts
            self._extend(other.count, other.min, other.max, other.total)
        return self

    def reset(self) -> None:
        """Forget every sample."""
        self.counts[:] = 0
        self.count, self.min, self.max, self.total = 0, 0, 0, 0.0

    # -- reading -------------------------------------------------------------

    @property
    def mean(self) -> float:
        """Mean of the samples in ns (0.0 when empty)."""
        return self.total / self.count if self.count else 0.0

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile in ns, as ``np.percentile`` (linear) would give it.

        Within 0.5% of the exact value for samples of at least 1 µs; 0.0 when empty.
        """
        if not 0 <= p <= 100:
            raise ValueError(f"percentile must be in [0, 100], got {p!r}")
        if self.count == 0:
            return 0.0
        # Interpolate between the two samples around rank p/100 * (n - 1), as numpy does,
        # each estimated by its bucket's midpoint clamped to the exact min and max.
        rank = p / 100 * (self.count - 1)
        below = math.floor(rank)
        fraction = rank - below
        cumulative = np.cumsum(self.counts)
        lower = self._value_at(cumulative, below)
        if fraction == 0:
            return lower
        return lower + fraction * (self._value_at(cumulative, below + 1) - lower)

    def _value_at(self, cumulative: np.ndarray, rank: int) -> float:
        """Estimate of the sample of 0-based ``rank`` in sorted order."""
        if rank <= 0:
            return float(self.min)
        if rank >= self.count - 1:
            return float(self.max)
        bucket = int(np.searchsorted(cumulative, rank, side="right"))
        return float(min(max(_MIDPOINTS[bucket], self.min), self.max))

    def percentiles_ms(self) -> dict[str, float]:
        """p50, p90, p99, p999 and max, in milliseconds."""
        result = {name: self.percentile(p) / 1e6 for name, p in _PERCENTILES.items()}
        result["max"] = float(self.max) / 1e6
        return result

    # -- shipping ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form holding only the non-zero buckets."""
        (nonzero,) = np.nonzero(self.counts)
        return {
            "layout": list(_LAYOUT),
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "total": self.total,
            "buckets": nonzero.tolist(),
            "counts": self.counts[nonzero].tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyHistogram:
        """Rebuild a histogram from ``to_dict()``; ValueError if it does not fit this layout."""
        if list(data.get("layout", ())) != _LAYOUT:
            raise ValueError(f"histogram layout {data.get('layout')!r} is not {_LAYOUT!r}")
        histogram = cls()
        buckets = np.asarray(data["buckets"], dtype=np.int64)
        counts = np.asarray(data["counts"], dtype=np.int64)
        if buckets.shape != counts.shape or (buckets.size and not 0 <= buckets.min()):
            raise ValueError("histogram buckets and counts do not match")
        if buckets.size and buckets.max() >= _NBUCKETS:
            raise ValueError("histogram bucket index out of range")
        histogram.counts[buckets] = counts
        if int(counts.sum()) != data["count"]:
            raise ValueError("histogram counts do not add up to its count")
        histogram.count = int(data["count"])
        histogram.min, histogram.max = data["min"], data["max"]
        histogram.total = float(data["total"])
        return histogram

    def __repr__(self) -> str:
        if not self.count:
            return "LatencyHistogram(empty)"
        ms = self.percentiles_ms()
        return f"LatencyHistogram(count={self.count}, p50={ms['p50']:.3f}ms, p99={ms['p99']:.3f}ms)"
