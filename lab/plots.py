"""PNG plots of a sweep summary or of one run, for the HTML report.

Each ``plot_*`` function draws one figure into ``path`` and returns it. Figures
are built with ``matplotlib.figure.Figure`` and saved as PNG, which renders
through the Agg canvas, never through pyplot: nothing needs a display, the
caller's backend is left alone and no figures pile up in global state.
``sweep_plots`` and ``run_plots`` draw the whole set and return (caption,
path) pairs in the order the report shows them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

from lab.bottleneck import SATURATION_BUSY, stage_of
from lab.scaling import amdahl_throughput, usl_throughput

__all__ = [
    "sweep_plots",
    "run_plots",
    "plot_throughput_vs_n",
    "plot_latency_vs_load",
    "plot_efficiency_vs_n",
    "plot_stage_busy_vs_n",
    "plot_throughput_over_time",
    "plot_latency_over_time",
    "plot_actor_busy",
]

_SIZE = (8, 4.8)  #: inches; at _DPI this is 960 x 576 px, legible when embedded at full width
_DPI = 120
_PERCENTILES = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max"))
_THOUSANDS = FuncFormatter(lambda v, _: f"{v:,.0f}")
#: Stages in the order orders flow through them; others follow alphabetically.
_STAGE_ORDER = ("loadgen", "backend", "engine", "collector")


def _ordered_stages(stages) -> list[str]:
    rank = {stage: i for i, stage in enumerate(_STAGE_ORDER)}
    return sorted(set(stages), key=lambda s: (rank.get(s, len(rank)), s))


def _figure(title: str, xlabel: str, ylabel: str, size=_SIZE):
    fig = Figure(figsize=size, dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _latency_scale(ax, values: np.ndarray) -> None:
    """Linear from 0 (so noise is not blown up), or log labelled 0.2, 0.5, 1, 2 … when the
    values span more than 20x."""
    if not (values.min() > 0 and values.max() / values.min() > 20):
        ax.set_ylim(bottom=0)
        return
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _save(fig, ax, path: Path, empty: str | None = None, outside: bool = False) -> Path:
    if empty:  # still draw the axes, so the report keeps its shape and says why
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", color="grey")
    elif ax.get_legend_handles_labels()[0] and outside:  # long legends would hide the data
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    elif ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def _means(points: list[dict], key: str = "orders_per_s"):
    rows = [p for p in points if p[key]["mean"] is not None]
    return rows, np.array([p["n"] for p in rows], float), np.array([p[key]["mean"] for p in rows])


# -- a sweep -------------------------------------------------------------------


def plot_throughput_vs_n(summary: dict, path, n_label: str = "N") -> Path:
    """Measured means with 95% CI bars, USL and Amdahl fits, linear ideal, peak N*."""
    fig, ax = _figure("Throughput vs N", n_label, "throughput (orders/s)")
    rows, n, x = _means(summary["points"])
    if not rows:
        return _save(fig, ax, path, empty="no throughput measured")
    low = x - np.array([p["orders_per_s"]["ci_low"] for p in rows])
    high = np.array([p["orders_per_s"]["ci_high"] for p in rows]) - x
    usl, amdahl = summary["usl"], summary["amdahl"]
    top = n.max() * 1.15
    if usl["ok"] and usl["peak_n"] is not None and usl["peak_n"] <= 2 * n.max():
        top = max(top, usl["peak_n"] * 1.1)  # show the peak when it is near the data
    grid = np.linspace(min(1.0, n.min()), top, 300)
    per_unit = usl["lambda"] if usl["ok"] else x[0] / n[0]
    ax.plot(grid, per_unit * grid, ":", color="grey", label="linear ideal (λ·N)")
    if amdahl["ok"]:
        ax.plot(
            grid,
            amdahl_throughput(grid, amdahl["lambda"], amdahl["sigma"]),
            "--",
            color="tab:green",
            label=f"Amdahl fit (σ={amdahl['sigma']:.3g})",
        )
    if usl["ok"]:
        ax.plot(
            grid,
            usl_throughput(grid, usl["lambda"], usl["sigma"], usl["kappa"]),
            color="tab:orange",
            label=f"USL fit (σ={usl['sigma']:.3g}, κ={usl['kappa']:.3g}, R²={usl['r2']:.3f})",
        )
        if usl["peak_n"] is not None and usl["peak_n"] <= top:
            ax.axvline(
                usl["peak_n"],
                color="tab:red",
                lw=1,
                alpha=0.6,
                label=f"USL peak N*≈{usl['peak_n']:.1f}",
            )
    ax.errorbar(
        n,
        x,
        yerr=[low, high],
        fmt="o",
        color="tab:blue",
        capsize=4,
        label="measured mean ± 95% CI",
        zorder=3,
    )
    unfitted = [fit["note"] for fit in (usl, amdahl) if not fit["ok"]]
    if unfitted:  # say on the plot why a curve is missing
        ax.text(
            0.98,
            0.03,
            "no fit drawn\n" + "\n".join(unfitted),
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize="small",
            color="dimgrey",
        )
    ax.set_ylim(0, max(x.max(), (x + high).max()) * 1.25)
    ax.set_xlim(0, top)
    ax.yaxis.set_major_formatter(_THOUSANDS)
    return _save(fig, ax, path)


def plot_latency_vs_load(summary: dict, path) -> Path:
    """Latency percentiles against offered rate (if every point has one) or measured throughput."""
    points = summary["points"]
    offered = all(p.get("offered_rate") is not None for p in points) and bool(points)
    xlabel = "offered load (orders/s)" if offered else "measured throughput (orders/s)"
    fig, ax = _figure("Latency vs load", xlabel, "latency (ms)")
    placed = [p for p in points if offered or p["orders_per_s"]["mean"] is not None]
    rows = [p for p in placed if p.get("latency_ms")]
    if not rows:
        return _save(fig, ax, path, empty="no latency measured")
    load = np.array([p["offered_rate"] if offered else p["orders_per_s"]["mean"] for p in rows])
    # Along offered load the curve is read left to right; along measured throughput, in
    # N order, so a retrograde sweep shows as the curve bending back on itself.
    order = np.argsort(load, kind="stable") if offered else np.arange(len(rows))
    drawn = []
    for key, label in _PERCENTILES:
        values = np.array([p["latency_ms"].get(key, np.nan) for p in rows], float)[order]
        if np.isfinite(values).any():
            ax.plot(load[order], values, "o-", ms=4, label=label)
            drawn.append(values[np.isfinite(values)])
    for i in order:  # label each point with its N, so the curve can be read back to the sweep
        known = [v for v in rows[i]["latency_ms"].values() if v is not None]
        y = rows[i]["latency_ms"].get("p99") or (known[0] if known else None)
        if y is None:
            continue
        ax.annotate(
            f"N={rows[i]['n']:g}",
            (load[i], y),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize="x-small",
            color="dimgrey",
        )
    _latency_scale(ax, np.concatenate(drawn))
    ax.xaxis.set_major_formatter(_THOUSANDS)
    return _save(fig, ax, path)


def plot_efficiency_vs_n(summary: dict, path, n_label: str = "N") -> Path:
    """Per-unit efficiency relative to the smallest N, with the ideal at 100%."""
    fig, ax = _figure("Scaling efficiency vs N", n_label, "efficiency (X(N) / (N · X(1)), %)")
    rows = [p for p in summary["points"] if p.get("efficiency") is not None]
    if not rows:
        return _save(fig, ax, path, empty="no throughput measured")
    n = np.array([p["n"] for p in rows], float)
    eff = np.array([p["efficiency"] for p in rows])
    ax.axhline(1.0, ls=":", color="grey", label="ideal (100%)")
    ax.plot(n, eff, "o-", color="tab:blue", label="measured")
    ax.set_ylim(0, max(1.1, eff.max() * 1.1))
    ax.set_xlim(0, n.max() * 1.1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    return _save(fig, ax, path)


def plot_stage_busy_vs_n(summary: dict, path, n_label: str = "N") -> Path:
    """Per stage: busiest actor's busy % (solid) and the stage mean (dashed)."""
    fig, ax = _figure("Per-stage utilisation vs N", n_label, "busy (% of wall time)")
    rows = [p for p in summary["points"] if p.get("stages")]
    stages = _ordered_stages(s for p in rows for s in p["stages"])
    if not stages:
        return _save(fig, ax, path, empty="no actor figures")
    colours = matplotlib.colormaps["tab10"]
    for i, stage in enumerate(stages):
        have = [p for p in rows if stage in p["stages"]]
        n = [p["n"] for p in have]
        ax.plot(
            n,
            [p["stages"][stage]["busy_max"] for p in have],
            "o-",
            color=colours(i),
            label=f"{stage} (max)",
        )
        means = [p["stages"][stage]["busy_mean"] for p in have]
        if means != [p["stages"][stage]["busy_max"] for p in have]:  # else it hides under max
            ax.plot(n, means, "--", color=colours(i), alpha=0.6, label=f"{stage} (mean)")
    ax.axhline(
        SATURATION_BUSY, color="tab:red", lw=1, ls=":", label=f"saturated ({SATURATION_BUSY:.0%})"
    )
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    return _save(fig, ax, path, outside=True)


def sweep_plots(summary: dict, out_dir, n_label: str = "N") -> list[tuple[str, Path]]:
    """Every sweep plot, as (caption, path) pairs."""
    out = Path(out_dir)
    return [
        ("Throughput vs N", plot_throughput_vs_n(summary, out / "throughput_vs_n.png", n_label)),
        ("Latency vs load", plot_latency_vs_load(summary, out / "latency_vs_load.png")),
        ("Efficiency vs N", plot_efficiency_vs_n(summary, out / "efficiency_vs_n.png", n_label)),
        (
            "Per-stage utilisation vs N",
            plot_stage_busy_vs_n(summary, out / "stage_busy_vs_n.png", n_label),
        ),
    ]


# -- one run -------------------------------------------------------------------


def _warmup(ax, result: dict) -> None:
    warmup = ((result.get("config") or {}).get("experiment") or {}).get("warmup_s")
    if warmup:
        ax.axvspan(0, warmup, color="grey", alpha=0.12, label=f"warm-up ({warmup:g} s)")


def plot_throughput_over_time(result: dict, path) -> Path:
    """Acknowledged (and sent) orders/s per interval, with the run's figure as a line."""
    fig, ax = _figure("Throughput over time", "time since start (s)", "throughput (orders/s)")
    series = [p for p in result.get("series") or [] if "t_s" in p]
    if not series:
        return _save(fig, ax, path, empty="no time series recorded")
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
    ax.yaxis.set_major_formatter(_THOUSANDS)
    return _save(fig, ax, path)


def plot_latency_over_time(result: dict, path) -> Path:
    """Latency percentiles per interval (p50, p99, p99.9 where recorded)."""
    fig, ax = _figure("Latency over time", "time since start (s)", "latency (ms)")
    series = [p for p in result.get("series") or [] if isinstance(p.get("latency_ms"), dict)]
    if not series:
        return _save(fig, ax, path, empty="no latency series recorded")
    t = np.array([p["t_s"] for p in series], float)
    _warmup(ax, result)
    drawn = []
    for key, label in _PERCENTILES[:4]:
        values = np.array([p["latency_ms"].get(key, np.nan) for p in series], float)
        values[values <= 0] = np.nan  # an interval with no acks has no latency, not zero
        if np.isfinite(values).any():
            ax.plot(t, values, lw=1.5 if key == "p99" else 1, label=label)
            drawn.append(values[np.isfinite(values)])
    if drawn:
        _latency_scale(ax, np.concatenate(drawn))
    return _save(fig, ax, path, empty=None if drawn else "no latency recorded")


def plot_actor_busy(result: dict, path) -> Path:
    """One horizontal bar per actor: busy %, coloured by stage, queue depth written beside it."""
    actors = {
        k: v
        for k, v in (result.get("actors") or {}).items()
        if isinstance(v, dict) and v.get("busy") is not None
    }
    height = max(3.0, 0.35 * len(actors) + 1.5)
    fig, ax = _figure(
        "Per-actor utilisation", "busy (% of wall time)", "actor", size=(_SIZE[0], height)
    )
    if not actors:
        return _save(fig, ax, path, empty="no actor figures")
    stages = _ordered_stages(stage_of(k) for k in actors)
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
    return _save(fig, ax, path, outside=True)


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
