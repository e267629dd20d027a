"""Figures measured elsewhere, set beside a sweep's own (``sweep.reference``).

The seed platform measured 3,163 orders/s with 4 backends and 2,689 with 8
on Docker Compose; ``configs/seed-platform.yaml`` gives those figures by
``topology.backends``, and each of its points then carries the reference
figure for its backend count and its own figure's ratio to it. A ratio is
given with the point's interval, so a reader sees whether "below the
original" is more than noise.
"""

from __future__ import annotations

from lab.analysis.intervals import describe_figure, has_interval
from lab.analysis.sweep_summary import point_label, sweep_value

__all__ = ["set_beside"]


def set_beside(summary: dict, reference: dict) -> None:
    """Add ``reference`` to ``summary``, and to each of its points its figure and ratio.

    ``reference``: {"source": words, "key": a varied key, "orders_per_s":
    {value of key: figure}}. Points whose value has no figure get none. One
    sentence per point with a figure joins ``summary["findings"]``.
    """
    key, figures = reference["key"], {_norm(k): v for k, v in reference["orders_per_s"].items()}
    summary["reference"] = reference
    sentences = []
    for point in summary.get("points", []):
        figure = figures.get(_norm((point.get("values") or {}).get(key)))
        mine = point["orders_per_s"]
        if figure is None:
            continue
        ratio = None if mine["mean"] is None else mine["mean"] / figure
        interval = None
        if has_interval(mine):
            interval = [mine["ci_low"] / figure, mine["ci_high"] / figure]
        point["reference"] = {"orders_per_s": figure, "ratio": ratio, "ratio_interval": interval}
        if ratio is None:
            continue
        spread = "" if interval is None else f" ({interval[0]:.2f}–{interval[1]:.2f}×)"
        sentences.append(
            f"{point_label(point['values'])}: {describe_figure(mine, unit=' orders/s')}, "
            f"{ratio:.2f}× the "
            f"{figure:,.0f} orders/s of {reference['source']}{spread}."
        )
    summary["findings"] = [*(summary.get("findings") or []), *sentences]


def _norm(value) -> str:
    """``4``, ``4.0`` and ``"4"`` name the same point."""
    return str(sweep_value(value))
