"""PNG plots of a sweep summary, for the HTML report (one run's: :mod:`.run_plots`).

Each ``plot_*`` function draws one figure into ``path`` and returns it; for a
sweep, the ``*_figure`` function beside it builds that figure and returns it
unsaved, so its series can be read back (:mod:`.figures` says how figures are
made). ``sweep_plots`` draws the whole set and returns (caption, path) pairs in
the order the report shows them.

A sweep that varies the layout is drawn as one labelled series per layout,
with each layout's own USL fit; a point with one run is drawn without an
error bar and labelled so.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from lab.analysis.bottleneck import SATURATION_BUSY
from lab.analysis.intervals import format_interval, has_interval, runs_of
from lab.analysis.scaling import POOR_R2, amdahl_throughput, usl_throughput
from lab.analysis.sweep_summary import efficiency_label, judge_fit, layout_groups
from lab.report.figures import (
    PERCENTILES,
    THOUSANDS,
    finish,
    latency_scale,
    new_figure,
    ordered_stages,
    write_png,
)

__all__ = [
    "sweep_plots",
    "plot_throughput_vs_n",
    "plot_latency_vs_load",
    "plot_efficiency_vs_n",
    "plot_stage_busy_vs_n",
    "throughput_vs_n_figure",
    "latency_vs_load_figure",
    "efficiency_vs_n_figure",
    "stage_busy_vs_n_figure",
]

_LAYOUT_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"))  #: line, marker per layout


def _means(points: list[dict], key: str = "orders_per_s"):
    rows = [p for p in points if p[key]["mean"] is not None]
    n = np.array([p["n"] for p in rows], float)
    return rows, n, np.array([p[key]["mean"] for p in rows], float)


# -- a sweep -------------------------------------------------------------------


def _series(summary: dict) -> list[tuple[str | None, list[dict]]]:
    """(layout, points) per series: one per layout when the sweep varies it, else (None, all)."""
    groups = layout_groups(summary["points"])
    return list(groups.items()) if len(groups) > 1 else [(None, summary["points"])]


def _fits_of(summary: dict, layout: str | None) -> dict:
    """The judged usl and amdahl fits a series is drawn with; {} when there are none for it."""
    n_key = summary.get("n_key")
    if layout is None:
        return {k: judge_fit(summary[k], summary["points"], n_key) for k in ("usl", "amdahl")}
    fits = (summary.get("fits") or {}).get(layout) or {}
    points = layout_groups(summary["points"]).get(layout, [])
    return {k: judge_fit(fits[k], points, n_key) for k in ("usl", "amdahl") if k in fits}


def _layout_style(i: int) -> dict:
    line, marker = _LAYOUT_STYLES[i % len(_LAYOUT_STYLES)]
    return {"color": matplotlib.colormaps["tab10"](i), "ls": line, "marker": marker}


def _peak_shown(usl: dict) -> bool:
    """A USL peak worth a line: fitted, finite, and not a fit sitting on a bound."""
    return bool(
        usl.get("ok")
        and usl.get("peak_n") is not None
        and not usl.get("at_bound")
        and not usl.get("peak_below_range")
    )


def _fit_words(layout: str | None, fits: dict) -> list[str]:
    """What a fit found that its curve does not show: a bound, a poor R²."""
    words = []
    for name, fit in (("USL", fits.get("usl") or {}), ("Amdahl", fits.get("amdahl") or {})):
        prefix = f"{layout} {name}" if layout else name
        if fit.get("bound_note") and name == "USL":  # Amdahl's says the same, once is enough
            words.append(f"{prefix}: {fit['bound_note']}")
        if fit.get("poor"):
            r2 = "undefined" if fit.get("r2") is None else f"{fit['r2']:.2f}"
            words.append(f"{prefix} fit poor (R² = {r2} < {POOR_R2:g})")
    return words


def _r2(fit: dict) -> str:
    return "–" if fit.get("r2") is None else f"{fit['r2']:.3f}"


def _draw_fits(ax, grid, fits: dict, x, n, peak_top: float) -> None:
    """The linear ideal, Amdahl and USL curves and the peak, for a sweep of one layout."""
    usl, amdahl = fits.get("usl") or {}, fits.get("amdahl") or {}
    per_unit = usl["lambda"] if usl.get("ok") else x[0] / n[0]
    ax.plot(grid, per_unit * grid, ":", color="grey", label="linear ideal (λ·N)")
    if amdahl.get("ok"):
        poor = ", poor" if amdahl.get("poor") else ""
        ax.plot(
            grid,
            amdahl_throughput(grid, amdahl["lambda"], amdahl["sigma"]),
            "--",
            color="tab:green",
            label=f"Amdahl fit (σ={amdahl['sigma']:.3g}, R²={_r2(amdahl)}{poor})",
        )
    if usl.get("ok"):
        poor = ", poor" if usl.get("poor") else ""
        ax.plot(
            grid,
            usl_throughput(grid, usl["lambda"], usl["sigma"], usl["kappa"]),
            color="tab:orange",
            label=f"USL fit (σ={usl['sigma']:.3g}, κ={usl['kappa']:.3g}, R²={_r2(usl)}{poor})",
        )
        if _peak_shown(usl) and usl["peak_n"] <= peak_top:
            ax.axvline(
                usl["peak_n"],
                color="tab:red",
                lw=1,
                alpha=0.6,
                label=f"USL peak N*≈{usl['peak_n']:.1f}",
            )


def _n_text(figs: list[dict]) -> str:
    ns = sorted({runs_of(f) for f in figs})
    return f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}–{ns[-1]}"


def _draw_measured(ax, rows, n, x, label: str, style: dict) -> float:
    """Points with their interval as error bars; those without, hollow and labelled so.

    Returns the highest y drawn."""
    figs = [p["orders_per_s"] for p in rows]
    has = np.array([has_interval(f) for f in figs], bool)
    marker = {"color": style["color"], "marker": style["marker"], "ls": "none", "zorder": 3}
    top = float(x.max())
    if has.any():
        with_ci = [f for f, h in zip(figs, has, strict=True) if h]
        # Clipped at 0: a search value may sit on (or, rounded, just past) its bracket's edge,
        # and matplotlib refuses negative error bars.
        low = np.clip(x[has] - np.array([f["ci_low"] for f in with_ci]), 0, None)
        high = np.clip(np.array([f["ci_high"] for f in with_ci]) - x[has], 0, None)
        what = "search bracket" if all(f.get("interval") == "search" for f in with_ci) else "95% CI"
        ax.errorbar(
            n[has],
            x[has],
            yerr=[low, high],
            capsize=4,
            label=f"{label} ({what}, {_n_text(with_ci)})",
            **marker,
        )
        top = max(top, float((x[has] + high).max()))
    if (~has).any():
        notes = sorted({format_interval(f) for f, h in zip(figs, has, strict=True) if not h})
        ax.plot(n[~has], x[~has], mfc="none", label=f"{label} ({'; '.join(notes)})", **marker)
    return top


def throughput_vs_n_figure(summary: dict, n_label: str = "N") -> Figure:
    """Measured geometric means with 95% CI bars (none for one run), the USL and Amdahl
    fits, linear ideal and peak N*; per layout (with its USL fit) when the sweep varies it."""
    fig, ax = new_figure("Throughput vs N", n_label, "throughput (orders/s, geometric mean)")
    series = [(layout, *_means(points)) for layout, points in _series(summary)]
    series = [s for s in series if s[1]]
    if not series:
        return finish(fig, ax, empty="no throughput measured")
    layered = len(_series(summary)) > 1
    fits = {layout: _fits_of(summary, layout) for layout, *_ in series}
    n_max = max(s[2].max() for s in series)
    top = n_max * 1.15
    for f in fits.values():
        if _peak_shown(f.get("usl") or {}) and f["usl"]["peak_n"] <= 2 * n_max:
            top = max(top, f["usl"]["peak_n"] * 1.1)  # show the peak when it is near the data
    grid = np.linspace(min(1.0, min(s[2].min() for s in series)), top, 300)
    y_top, words, unfitted = 0.0, [], []
    for i, (layout, rows, n, x) in enumerate(series):
        usl = fits[layout].get("usl") or {}
        if not layered:
            _draw_fits(ax, grid, fits[layout], x, n, top)
            style = {"color": "tab:blue", "marker": "o"}
            label = "measured geometric mean"
            unfitted += [f["note"] for f in fits[layout].values() if not f.get("ok")]
        else:  # USL only: with an ideal and Amdahl per layout the plot would be unreadable
            style = _layout_style(i)
            label = layout
            if usl.get("ok"):
                poor = ", poor" if usl.get("poor") else ""
                ax.plot(
                    grid,
                    usl_throughput(grid, usl["lambda"], usl["sigma"], usl["kappa"]),
                    color=style["color"],
                    ls=style["ls"],
                    lw=1,
                    label=f"{layout}: USL fit (R²={_r2(usl)}{poor})",
                )
            else:
                unfitted.append(f"{layout}: {usl.get('note') or 'no fit for this layout'}")
        y_top = max(y_top, _draw_measured(ax, rows, n, x, label, style))
        words += _fit_words(layout, fits[layout])
    if words:  # in words, since the curve alone would not say it
        ax.set_title("Throughput vs N\n" + "\n".join(textwrap.fill(w, 90) for w in words))
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
    ax.set_ylim(0, y_top * 1.25)
    ax.set_xlim(0, top)
    ax.yaxis.set_major_formatter(THOUSANDS)
    return finish(fig, ax)


def plot_throughput_vs_n(summary: dict, path, n_label: str = "N") -> Path:
    """:func:`throughput_vs_n_figure`, saved as PNG to ``path``."""
    return write_png(throughput_vs_n_figure(summary, n_label), path)


def latency_vs_load_figure(summary: dict) -> Figure:
    """Latency percentiles against offered rate (if every point has one) or measured
    throughput; p50 and p99 per layout when the sweep varies it."""
    points = summary["points"]
    offered = all(p.get("offered_rate") is not None for p in points) and bool(points)
    xlabel = "offered load (orders/s)" if offered else "measured throughput (orders/s)"
    fig, ax = new_figure("Latency vs load", xlabel, "latency (ms)")
    series = _series(summary)
    percentiles = PERCENTILES if len(series) == 1 else (("p50", "p50"), ("p99", "p99"))
    drawn = []
    for i, (layout, group) in enumerate(series):
        placed = [p for p in group if offered or p["orders_per_s"]["mean"] is not None]
        rows = [p for p in placed if p.get("latency_ms")]
        if not rows:
            continue
        load = np.array([p["offered_rate"] if offered else p["orders_per_s"]["mean"] for p in rows])
        # Along offered load the curve is read left to right; along measured throughput, in
        # N order, so a retrograde sweep shows as the curve bending back on itself.
        order = np.argsort(load, kind="stable") if offered else np.arange(len(rows))
        for key, label in percentiles:
            values = np.array([p["latency_ms"].get(key, np.nan) for p in rows], float)[order]
            if not np.isfinite(values).any():
                continue
            if layout is None:
                ax.plot(load[order], values, "o-", ms=4, label=label)
            else:
                style = _layout_style(i) | {"ls": "-" if key == "p99" else "--"}
                ax.plot(load[order], values, ms=4, label=f"{layout} {label}", **style)
            drawn.append(values[np.isfinite(values)])
        for j in order:  # label each point with its N, so the curve can be read back to the sweep
            known = [v for v in rows[j]["latency_ms"].values() if v is not None]
            y = rows[j]["latency_ms"].get("p99") or (known[0] if known else None)
            if y is None:
                continue
            ax.annotate(
                f"N={rows[j]['n']:g}",
                (load[j], y),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize="x-small",
                color="dimgrey",
            )
    if not drawn:
        return finish(fig, ax, empty="no latency measured")
    latency_scale(ax, np.concatenate(drawn))
    ax.xaxis.set_major_formatter(THOUSANDS)
    return finish(fig, ax)


def plot_latency_vs_load(summary: dict, path) -> Path:
    """:func:`latency_vs_load_figure`, saved as PNG to ``path``."""
    return write_png(latency_vs_load_figure(summary), path)


def efficiency_vs_n_figure(summary: dict, n_label: str = "N") -> Figure:
    """Per-unit efficiency relative to the smallest N measured (the axis says which), with
    the ideal at 100%; one series per layout when the sweep varies it."""
    ylabel = f"{efficiency_label(summary)} (per-unit throughput, %)"
    fig, ax = new_figure("Scaling efficiency vs N", n_label, ylabel)
    series = [
        (layout, [p for p in group if p.get("efficiency") is not None])
        for layout, group in _series(summary)
    ]
    series = [(layout, rows) for layout, rows in series if rows]
    if not series:
        return finish(fig, ax, empty="no throughput measured")
    ax.axhline(1.0, ls=":", color="grey", label="ideal (100%)")
    n_max, eff_max = 0.0, 1.0
    for i, (layout, rows) in enumerate(series):
        n = np.array([p["n"] for p in rows], float)
        eff = np.array([p["efficiency"] for p in rows], float)
        style = (
            {"color": "tab:blue", "ls": "-", "marker": "o"} if layout is None else _layout_style(i)
        )
        ax.plot(n, eff, label="measured" if layout is None else layout, **style)
        n_max, eff_max = max(n_max, n.max()), max(eff_max, eff.max())
    ax.set_ylim(0, max(1.1, eff_max * 1.1))
    ax.set_xlim(0, n_max * 1.1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    return finish(fig, ax)


def plot_efficiency_vs_n(summary: dict, path, n_label: str = "N") -> Path:
    """:func:`efficiency_vs_n_figure`, saved as PNG to ``path``."""
    return write_png(efficiency_vs_n_figure(summary, n_label), path)


def stage_busy_vs_n_figure(summary: dict, n_label: str = "N") -> Figure:
    """Per stage: busiest actor's busy % (solid) and the stage mean (dashed); with layouts
    varied, the busiest actor's only, one line style per layout."""
    fig, ax = new_figure("Per-stage utilisation vs N", n_label, "busy (% of wall time)")
    series = _series(summary)
    rows = [p for p in summary["points"] if p.get("stages")]
    stages = ordered_stages(s for p in rows for s in p["stages"])
    if not stages:
        return finish(fig, ax, empty="no actor figures")
    colours = matplotlib.colormaps["tab10"]
    for j, (layout, group) in enumerate(series):
        for i, stage in enumerate(stages):
            have = [p for p in group if stage in (p.get("stages") or {})]
            if not have:
                continue
            n = [p["n"] for p in have]
            busy = [p["stages"][stage]["busy_max"] for p in have]
            if layout is not None:
                style = _layout_style(j) | {"color": colours(i)}
                ax.plot(n, busy, label=f"{layout}: {stage} (max)", **style)
                continue
            ax.plot(n, busy, "o-", color=colours(i), label=f"{stage} (max)")
            means = [p["stages"][stage]["busy_mean"] for p in have]
            if means != busy:  # else it hides under max
                ax.plot(n, means, "--", color=colours(i), alpha=0.6, label=f"{stage} (mean)")
    ax.axhline(
        SATURATION_BUSY, color="tab:red", lw=1, ls=":", label=f"saturated ({SATURATION_BUSY:.0%})"
    )
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    return finish(fig, ax, outside=True)


def plot_stage_busy_vs_n(summary: dict, path, n_label: str = "N") -> Path:
    """:func:`stage_busy_vs_n_figure`, saved as PNG to ``path``."""
    return write_png(stage_busy_vs_n_figure(summary, n_label), path)


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
