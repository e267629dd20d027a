"""The plot of a comparison sweep: each choice's figure and p99, grouped by the last key."""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_comparison"]


def plot_comparison(summary: dict, path) -> Path:
    """Bars of throughput (with intervals) and p99 per point, one colour per last-key value."""
    points, keys = summary["points"], summary["compare_keys"]
    last = keys[-1]
    groups = list(dict.fromkeys(str(p["values"].get(last)) for p in points))
    labels = list(dict.fromkeys(_others(p, last) for p in points))
    fig = Figure(figsize=(8.5, 4.2), dpi=110, layout="constrained")
    tput, latency = fig.subplots(1, 2)
    width = 0.8 / max(len(groups), 1)
    x = np.arange(len(labels))
    for i, group in enumerate(groups):
        mine = {_others(p, last): p for p in points if str(p["values"].get(last)) == group}
        chosen = [mine.get(label) for label in labels]
        mean = [np.nan if p is None else p["orders_per_s"]["mean"] or np.nan for p in chosen]
        low = [_gap(p, m, "ci_low") for p, m in zip(chosen, mean, strict=True)]
        high = [_gap(p, m, "ci_high") for p, m in zip(chosen, mean, strict=True)]
        p99 = [np.nan if p is None else p["p99_ms"]["mean"] or np.nan for p in chosen]
        name = f"{last.rsplit('.', 1)[-1]}={group}"
        tput.bar(x + i * width, mean, width, yerr=[low, high], capsize=3, label=name)
        latency.bar(x + i * width, p99, width, label=name)
    figure = "capacity" if summary.get("figure") == "capacity" else "throughput"
    tput.set_title(f"{figure} (orders/s, 95% interval)")
    latency.set_title("p99 (ms)")
    for ax in (tput, latency):
        ax.set_xticks(x + width * (len(groups) - 1) / 2, labels, rotation=20, ha="right")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize="small")
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def _others(point: dict, last: str) -> str:
    """A bar group's label: the point's values but the last key's ("all" if none)."""
    return ", ".join(f"{v}" for k, v in point["values"].items() if k != last) or "all"


def _gap(point, mean, bound) -> float:
    value = None if point is None else point["orders_per_s"].get(bound)
    return 0.0 if value is None or not np.isfinite(mean) else abs(mean - value)
