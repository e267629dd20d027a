"""PNG plots of one run, for the HTML report: throughput and p99 over time, per-actor busy.

``run_plots`` draws the set and returns (caption, path) pairs in the order the
report shows them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.ticker import PercentFormatter

from lab.analysis.bottleneck import SATURATION_BUSY, stage_of
from lab.report.figures import (
    PERCENTILES,
    SIZE,
    THOUSANDS,
    latency_scale,
    new_figure,
    ordered_stages,
    save,
)

__all__ = ["run_plots", "plot_throughput_over_time", "plot_latency_over_time", "plot_actor_busy"]

# -- one run -------------------------------------------------------------------


def _warmup(ax, result: dict) -> None:
    warmup = ((result.get("config") or {}).get("experiment") or {}).get("warmup_s")
    if warmup:
        ax.axvspan(0, warmup, color="grey", alpha=0.12, label=f"warm-up ({warmup:g} s)")


def plot_throughput_over_time(result: dict, path) -> Path:
    """Acknowledged (and sent) orders/s per interval, with the run's figure as a line."""
    fig, ax = new_figure("Throughput over time", "time since start (s)", "throughput (orders/s)")
    series = [p for p in result.get("series") or [] if "t_s" in p]
    if not series:
        return save(fig, ax, path, empty="no time series recorded")
    t = np.array([p["t_s"] for p in series], float)
    _warmup(ax, result)
    acked = np.array([p.get("orders_per_s", np.nan) for p in series], float)
    lines = [acked]
    if all("sent" in p for p in series):  # the offered side: orders sent per interval / its span
        spans = np.diff(np.concatenate(([0.0], t)))
        sent = np.array(
            [p["sent"] / s if s > 0 else np.nan for p, s in zip(series, spans, strict=True)]
        )
        ax.plot(t, sent, color="tab:grey", lw=1, alpha=0.8, label="sent")
        lines.append(sent)
    ax.plot(t, acked, color="tab:blue", label="acknowledged")
    if result.get("orders_per_s") is not None:
        ax.axhline(
            result["orders_per_s"],
            color="tab:orange",
            ls="--",
            lw=1,
            label=f"measured mean {result['orders_per_s']:,.0f}/s",
        )
        lines.append(np.array([result["orders_per_s"]], float))
    top = np.nanmax(np.concatenate(lines)) if np.isfinite(np.concatenate(lines)).any() else 0
    ax.set_ylim(0, top * 1.15 if top > 0 else 1)  # headroom so lines do not touch the frame
    ax.yaxis.set_major_formatter(THOUSANDS)
    return save(fig, ax, path)


def plot_latency_over_time(result: dict, path) -> Path:
    """Latency percentiles per interval (p50, p99, p99.9 where recorded)."""
    fig, ax = new_figure("Latency over time", "time since start (s)", "latency (ms)")
    series = [p for p in result.get("series") or [] if isinstance(p.get("latency_ms"), dict)]
    if not series:
        return save(fig, ax, path, empty="no latency series recorded")
    t = np.array([p["t_s"] for p in series], float)
    _warmup(ax, result)
    drawn = []
    for key, label in PERCENTILES[:4]:
        values = np.array([p["latency_ms"].get(key, np.nan) for p in series], float)
        values[values <= 0] = np.nan  # an interval with no acks has no latency, not zero
        if np.isfinite(values).any():
            ax.plot(t, values, lw=1.5 if key == "p99" else 1, label=label)
            drawn.append(values[np.isfinite(values)])
    if drawn:
        latency_scale(ax, np.concatenate(drawn))
    return save(fig, ax, path, empty=None if drawn else "no latency recorded")


def plot_actor_busy(result: dict, path) -> Path:
    """One horizontal bar per actor: busy %, coloured by stage, queue depth written beside it."""
    actors = {
        k: v
        for k, v in (result.get("actors") or {}).items()
        if isinstance(v, dict) and v.get("busy") is not None
    }
    height = max(3.0, 0.35 * len(actors) + 1.5)
    fig, ax = new_figure(
        "Per-actor utilisation", "busy (% of wall time)", "actor", size=(SIZE[0], height)
    )
    if not actors:
        return save(fig, ax, path, empty="no actor figures")
    stages = ordered_stages(stage_of(k) for k in actors)
    names = sorted(actors, key=lambda k: (stages.index(stage_of(k)), len(k), k))
    colours = matplotlib.colormaps["tab10"]
    y = np.arange(len(names))
    for i, stage in enumerate(stages):  # one call per stage, so the legend has one entry each
        rows = [j for j, k in enumerate(names) if stage_of(k) == stage]
        ax.barh(y[rows], [actors[names[j]]["busy"] for j in rows], color=colours(i), label=stage)
    for yi, k in zip(y, names, strict=True):
        label = f"max queue {actors[k].get('max_queue', 0):,}"
        ax.text(min(actors[k]["busy"], 1.0) + 0.01, yi, label, va="center", fontsize="x-small")
    ax.axvline(
        SATURATION_BUSY, color="tab:red", lw=1, ls=":", label=f"saturated ({SATURATION_BUSY:.0%})"
    )
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.3)  # room for the queue labels right of a full bar
    ax.set_xticks(np.linspace(0, 1, 6))  # no ticks past 100%: busy cannot exceed it
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")
    return save(fig, ax, path, outside=True)


def run_plots(result: dict, out_dir) -> list[tuple[str, Path]]:
    """Every run plot, as (caption, path) pairs."""
    out = Path(out_dir)
    return [
        (
            "Throughput over time",
            plot_throughput_over_time(result, out / "throughput_over_time.png"),
        ),
        ("Latency over time", plot_latency_over_time(result, out / "latency_over_time.png")),
        ("Per-actor utilisation", plot_actor_busy(result, out / "actor_busy.png")),
    ]
