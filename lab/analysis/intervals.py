"""Confidence intervals of a sweep point's repeated runs, and whether two points differ.

Throughput and latency are positive, and their run-to-run spread is roughly a
factor rather than an amount, so their interval is a Student-t interval on the
logarithm: the centre is the *geometric* mean and the bounds are the same factor
below and above it, never below zero. A point needs two runs for an interval;
with one it has none and says so (``"n=1, no interval"``), rather than showing
a zero-width one. A point whose figure is the result of a capacity search comes
instead with the bracket the search ended in (``interval: "search"``).

Two points differ only when a test at :data:`CONFIDENCE` says so: Welch's
t-test on log throughput when both have two or more positive runs, and bracket
overlap when either figure is a search result. Everything returned is JSON-safe
(None, never NaN or infinity).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats

__all__ = [
    "CONFIDENCE",
    "Interval",
    "Comparison",
    "mean_ci",
    "log_interval",
    "search_interval",
    "interval_dict",
    "has_interval",
    "runs_of",
    "format_interval",
    "interval_words",
    "describe_figure",
    "compare",
]

CONFIDENCE = 0.95  #: of every interval and test in a sweep summary


class Interval(NamedTuple):
    """A point's figure and its interval; ``low``/``high`` are None when there is none."""

    mean: float | None  #: geometric mean of the runs, or arithmetic where ``mean_kind`` says so
    low: float | None
    high: float | None
    n: int  #: runs the figure is made of
    kind: str | None  #: "t-log", "search", or None when there is no interval
    mean_kind: str | None  #: "geometric" or "arithmetic"; None without runs
    note: str  #: why there is no interval (or what the bracket is); "" for a t-log interval


class Comparison(NamedTuple):
    """Whether the figure of one point differs from another's, at :data:`CONFIDENCE`."""

    change: float | None  #: (after − before) / before of the means; None if before is 0
    verdict: str  #: "higher", "lower", "no significant change" or "untestable"
    p: float | None  #: Welch's p-value; None for bracket overlap or no test
    method: str | None  #: how it was judged, in words; None when untestable
    note: str  #: why no test was possible; "" otherwise

    @property
    def significant(self) -> bool:
        return self.verdict in ("higher", "lower")


def mean_ci(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Arithmetic mean and Student-t interval as (mean, low, high).

    The plain interval, which can reach below zero; throughput takes
    :func:`log_interval` instead.
    One value gives a zero-width interval; no values is a ValueError.
    """
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(v.mean())
    if v.size == 1:
        return mean, mean, mean
    half = float(stats.t.ppf((1 + confidence) / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - half, mean + half


def _finite(values) -> np.ndarray:
    return np.array([float(v) for v in values if v is not None and math.isfinite(float(v))])


def log_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Geometric mean and Student-t interval on log(values).

    One value: the value and no interval. A value at or below zero (a run that
    measured nothing) has no logarithm, so the figure falls back to the
    arithmetic mean of all runs, without an interval, and ``note`` says why;
    dropping the run instead would overstate the point.
    """
    v = _finite(values)
    n = int(v.size)
    if n == 0:
        return Interval(None, None, None, 0, None, None, "no runs")
    if np.any(v <= 0):
        bad = int(np.sum(v <= 0))
        note = f"n={n}, no interval: {bad} of {n} runs measured nothing (≤ 0)"
        return Interval(float(v.mean()), None, None, n, None, "arithmetic", note)
    logs = np.log(v)
    centre = float(logs.mean())
    if n == 1:  # the value itself, not exp(log(value)) with its rounding
        return Interval(float(v[0]), None, None, 1, None, "geometric", "n=1, no interval")
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * logs.std(ddof=1) / math.sqrt(n))
    low, high = math.exp(centre - half), math.exp(centre + half)
    return Interval(math.exp(centre), low, high, n, "t-log", "geometric", "")


def search_interval(values, bounds) -> Interval:
    """A capacity-search result: the values found and the bracket ``[lo, hi]`` it ended in."""
    lo, hi = (float(b) for b in bounds)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
        raise ValueError(f"a search bracket needs 0 <= lo <= hi, got {list(bounds)}")
    found = log_interval(values)
    return found._replace(low=lo, high=hi, kind="search", note="search bracket")


def interval_dict(values, bounds=None) -> dict:
    """A point's figure as the summary stores it.

    Keys: ``mean`` (geometric unless ``mean_kind`` says otherwise), ``ci_low``,
    ``ci_high`` (None without an interval), ``runs``, ``n``, ``interval``
    ("t-log", "search" or None), ``mean_kind`` and ``note``.
    """
    runs = [float(v) for v in _finite(values or [])]
    found = search_interval(runs, bounds) if bounds is not None else log_interval(runs)
    return {
        "mean": found.mean,
        "ci_low": found.low,
        "ci_high": found.high,
        "runs": runs,
        "n": found.n,
        "interval": found.kind,
        "mean_kind": found.mean_kind,
        "note": found.note,
    }


def runs_of(fig: dict) -> int:
    """How many runs a stored figure is made of."""
    return int(fig.get("n", len(fig.get("runs") or [])))


def has_interval(fig: dict) -> bool:
    """Whether a stored figure has an interval (a t-log one or a search bracket)."""
    if fig.get("ci_low") is None or fig.get("ci_high") is None:
        return False
    # Summaries stored before intervals carried their kind gave one run a zero-width one.
    return "interval" in fig or runs_of(fig) >= 2


def format_interval(fig: dict, spec: str = ",.0f") -> str:
    """The interval part of a figure: "2,600 – 2,780 (n=3)", "n=1, no interval", …"""
    n = runs_of(fig)
    if fig.get("mean") is None:
        return "no runs"
    if not has_interval(fig):
        return fig.get("note") or f"n={n}, no interval"
    text = f"{fig['ci_low']:{spec}} – {fig['ci_high']:{spec}}"
    kind = "search bracket, " if fig.get("interval") == "search" else ""
    return f"{text} ({kind}n={n})"


def interval_words(fig: dict, spec: str = ",.0f") -> str:
    """The interval in words: "95% CI 2,600 – 2,780, n=3", "n=1, no interval", …"""
    if fig.get("mean") is None or not has_interval(fig):
        return format_interval(fig, spec)
    kind = "search bracket" if fig.get("interval") == "search" else f"{CONFIDENCE:.0%} CI"
    return f"{kind} {fig['ci_low']:{spec}} – {fig['ci_high']:{spec}}, n={runs_of(fig)}"


def describe_figure(fig: dict, spec: str = ",.0f", unit: str = "") -> str:
    """A figure with its interval in words: "2,689 orders/s (95% CI 2,600 – 2,780, n=3)"."""
    if fig.get("mean") is None:
        return "nothing measured"
    return f"{fig['mean']:{spec}}{unit} ({interval_words(fig, spec)})"


def _positive_logs(fig: dict) -> np.ndarray | None:
    runs = _finite(fig.get("runs") or [])
    return np.log(runs) if runs.size >= 2 and np.all(runs > 0) else None


def _why_untestable(before: dict, after: dict) -> str:
    for fig in (before, after):
        runs = _finite(fig.get("runs") or [])
        if runs.size and np.any(runs <= 0):
            return "a run measured nothing, so no test is possible"
    if runs_of(before) < 2 and runs_of(after) < 2:
        return "one run per point, so no test is possible"
    return "one of the two has a single run, so no test is possible"


def compare(before: dict, after: dict, confidence: float = CONFIDENCE) -> Comparison:
    """Does ``after``'s figure differ from ``before``'s (two figure dicts as stored)?

    Either a search result: significant when the two intervals (brackets) do not
    overlap. Otherwise Welch's t-test on the log runs when both have at least
    two positive runs, significant when p < 1 − ``confidence``. Anything else
    (one run, a run that measured nothing, runs with no spread) is "untestable",
    and ``note`` says why; nothing is then called higher or lower.
    """
    a, b = before.get("mean"), after.get("mean")
    if a is None or b is None:
        return Comparison(None, "untestable", None, None, "a point measured nothing")
    change = (b - a) / a if a else None
    direction = "higher" if b > a else "lower"
    if "search" in (before.get("interval"), after.get("interval")):
        if not (has_interval(before) and has_interval(after)):
            return Comparison(change, "untestable", None, None, _why_untestable(before, after))
        apart = before["ci_high"] < after["ci_low"] or after["ci_high"] < before["ci_low"]
        verdict = direction if apart else "no significant change"
        return Comparison(change, verdict, None, "search brackets compared", "")
    la, lb = _positive_logs(before), _positive_logs(after)
    if la is None or lb is None:
        return Comparison(change, "untestable", None, None, _why_untestable(before, after))
    p = float(stats.ttest_ind(la, lb, equal_var=False).pvalue)
    if not math.isfinite(p):  # both sets of runs identical within themselves
        return Comparison(change, "untestable", None, None, "the runs have no spread to test")
    verdict = direction if p < 1 - confidence else "no significant change"
    return Comparison(change, verdict, p, "Welch's t-test on log throughput", "")
