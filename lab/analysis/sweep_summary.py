"""A sweep's summary: per point its figure and interval, the fits per layout, and what
they say in words.

Pure functions on plain dicts, no I/O. ``summarize_sweep`` turns a sweep's
points into one JSON-able dict, with ``None`` wherever a figure is undefined
(never NaN or infinity); the fits come from :mod:`lab.analysis.scaling`, which
stage saturated at each point from :mod:`lab.analysis.bottleneck`, each
point's interval from :mod:`lab.analysis.intervals`.

A fit is only as good as it looks: one with R² below ``POOR_R2`` is flagged
``poor``, and one that sits on a bound (σ = 1, or a peak at or below the
smallest N measured) says in words that adding units never helped. When the
points come from several layouts, each layout is fitted on its own.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from lab.analysis.bottleneck import bottleneck, first_saturated
from lab.analysis.intervals import has_interval, interval_dict
from lab.analysis.scaling import (
    BOUND_EPS,
    POOR_R2,
    RETROGRADE_TOLERANCE,
    AmdahlFit,
    UslFit,
    efficiency,
    fit_amdahl,
    fit_usl,
    retrograde,
    usl_throughput,
)

__all__ = [
    "LAYOUT_KEY",
    "summarize_sweep",
    "describe_scaling",
    "judge_fit",
    "layout_groups",
    "efficiency_label",
    "point_row",
    "point_label",
    "sweep_value",
    "untested_drop",
]

LAYOUT_KEY = "layout"  #: the pseudo-key of ``values`` that names a point's layout


# -- a whole sweep -------------------------------------------------------------


def sweep_value(value):
    """A point's value as the number it names (``4``, ``4.0`` and ``"4"`` are ``4``), or as is."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else number


def _num(value) -> float | None:
    """A JSON-safe float: None for NaN, infinity or missing."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _finite(values) -> list[float]:
    return [float(v) for v in values or [] if v is not None and math.isfinite(float(v))]


def _layout_of(point: dict) -> str:
    layout = (point.get("values") or {}).get(LAYOUT_KEY)
    return "unnamed" if layout is None else str(layout)


def layout_groups(points: list[dict]) -> dict[str, list[dict]]:
    """Points by the layout named in their ``values`` (``"unnamed"`` if none), first seen first."""
    groups: dict[str, list[dict]] = {}
    for p in points:
        groups.setdefault(_layout_of(p), []).append(p)
    return groups


def _infer_n_key(points: list[dict]) -> str | None:
    """The first varied key (not the layout) whose value is N at every point, if any."""
    first = points[0].get("values") or {} if points else {}
    for key in first:
        if key != LAYOUT_KEY and all(
            _same((p.get("values") or {}).get(key), p["n"]) for p in points
        ):
            return key
    return None


def _same(value, n) -> bool:
    try:
        return float(value) == float(n)
    except (TypeError, ValueError):
        return False


def _noun(n_key: str | None) -> str:
    """What N counts, for a sentence: "topology.backends" -> "backends"."""
    return n_key.rsplit(".", 1)[-1].replace("_", " ") if n_key else "units"


def point_label(values: dict) -> str:
    """A point's values for a sentence: "persistence=redis, transport=http"."""
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in values.items())


def point_row(p: dict) -> dict:
    """One input point as the summary stores it."""
    latency_runs = [r for r in p.get("latency_ms_runs") or [] if isinstance(r, dict)]
    # Geometric means, like p99's: they keep each run's p50 <= p90 <= p99 ordering.
    latency = {
        key: interval_dict(vals)["mean"]
        for key in ("p50", "p90", "p99", "p999", "max")
        if (vals := _finite(r.get(key) for r in latency_runs))
    }
    p99_runs = _finite(p.get("p99_ms_runs")) or _finite(r.get("p99") for r in latency_runs)
    p99 = interval_dict(p99_runs)
    if p99["mean"] is not None:
        latency["p99"] = p99["mean"]
    found = bottleneck(p.get("actors") or {})
    return {
        "values": dict(p.get("values") or {}),
        "n": p["n"],
        "orders_per_s": interval_dict(p.get("orders_per_s_runs"), p.get("orders_per_s_bounds")),
        "p99_ms": p99,
        "latency_ms": latency,
        "offered_rate": _num(p.get("offered_rate")),
        "efficiency": None,
        "efficiency_reference_n": None,
        "stages": found["stages"],
        "bottleneck": {"stage": found["stage"], "busy": found["busy"]},
        "actors": p.get("actors") or {},
        "run_ids": list(p.get("run_ids") or []),  # the stored runs behind the figure
        **({"capacity": p["capacity"]} if "capacity" in p else {}),  # a search's own summary
    }


def summarize_sweep(points: list[dict], n_key: str | None = None) -> dict:
    """Fits, efficiency, retrograde and bottleneck of a sweep, as one JSON-able dict.

    Each input point: {"values": {dotted key: value}, "n": N, "orders_per_s_runs":
    [...], "p99_ms_runs": [...], "actors": {per-actor summary}, "offered_rate":
    float or None}, optionally "latency_ms_runs": [{p50, p90, p99, ...}, ...] and
    "orders_per_s_bounds": [lo, hi], the bracket a capacity search ended in,
    which is then the point's interval. ``n_key`` names the varied key that N
    stands for (inferred from ``values`` if not given); it only shapes the words.

    Each point's ``orders_per_s`` and ``p99_ms`` are :func:`lab.analysis.intervals.interval_dict`
    figures: ``mean`` is the geometric mean. Efficiency is relative to the
    smallest N measured (``efficiency_reference_n``). Fits use every run. With
    several layouts, ``fits`` holds each layout's usl, amdahl and retrograde, and
    the top-level ``usl`` and ``amdahl`` are not fitted (a fit across layouts
    would mix two systems); else the top level holds the one layout's fits.
    """
    rows = [point_row(p) for p in sorted(points, key=lambda p: p["n"])]
    n_key = n_key or _infer_n_key(rows)
    groups = layout_groups(rows)
    fits = {layout: _fit_group(group, n_key) for layout, group in groups.items()}
    summary: dict = {
        "points": rows,
        "n_key": n_key,
        "layouts": list(groups) if any(LAYOUT_KEY in r["values"] for r in rows) else [],
    }
    if len(fits) > 1:
        summary |= _across_layouts(fits, rows) | {"fits": fits}
    else:
        summary |= next(iter(fits.values()), None) or _fit_group([], n_key)
    summary["bottleneck"] = first_saturated(rows)
    summary["interpretation"] = describe_scaling(summary)
    return summary


def _fit_group(rows: list[dict], n_key: str | None) -> dict:
    """Efficiency (set on the rows), fits and retrograde of one layout's points."""
    measured = [r for r in rows if r["orders_per_s"]["mean"] is not None]
    ns = [r["n"] for r in measured]
    reference = min(ns, default=None)
    effs = efficiency(ns, [r["orders_per_s"]["mean"] for r in measured])
    for row, eff in zip(measured, effs, strict=True):
        row["efficiency"], row["efficiency_reference_n"] = _num(eff), reference
    all_n = [r["n"] for r in rows for _ in r["orders_per_s"]["runs"]]
    all_x = [x for r in rows for x in r["orders_per_s"]["runs"]]
    usl = fit_usl(all_n, all_x)
    return {
        "usl": judge_fit(_json(usl) | {"peak_orders_per_s": _num(_usl_peak(usl))}, rows, n_key),
        "amdahl": judge_fit(_json(fit_amdahl(all_n, all_x)), rows, n_key),
        "retrograde": _json(retrograde(all_n, all_x)),
        "efficiency_reference_n": reference,
    }


def _across_layouts(fits: dict[str, dict], rows: list[dict]) -> dict:
    """Top-level usl, amdahl and retrograde when each layout was fitted on its own."""
    note = f"the points come from {len(fits)} layouts ({', '.join(fits)}); each is fitted alone"
    distinct = len({r["n"] for r in rows})
    nan = math.nan
    usl = _json(UslFit(nan, nan, nan, nan, nan, distinct, False, note))
    amdahl = _json(AmdahlFit(nan, nan, nan, nan, distinct, False, note))
    detected = [layout for layout, f in fits.items() if f["retrograde"]["detected"]]
    refs = {f["efficiency_reference_n"] for f in fits.values()} - {None}
    return {
        "usl": judge_fit(usl | {"peak_orders_per_s": None}, rows),
        "amdahl": judge_fit(amdahl, rows),
        # Which layouts fell past a peak; their N are in fits[layout]["retrograde"].
        "retrograde": {"detected": bool(detected), "start_n": None, "peak_n": None, "drop": None}
        | {"layouts": detected},
        "efficiency_reference_n": refs.pop() if len(refs) == 1 else None,
    }


def _json(fit: NamedTuple) -> dict:
    """A fit as a JSON-safe dict: ``lambda_`` becomes ``lambda``, NaN and inf become None."""
    return {k.rstrip("_"): _num(v) if isinstance(v, float) else v for k, v in fit._asdict().items()}


def _usl_peak(fit: UslFit) -> float:
    if not fit.ok or not math.isfinite(fit.peak_n):
        return math.nan
    return float(usl_throughput(fit.peak_n, fit.lambda_, fit.sigma, fit.kappa))


def judge_fit(fit: dict, points: list[dict], n_key: str | None = None) -> dict:
    """A copy of a fit dict with what it found added, in keys and in words.

    Adds ``poor`` (R² below :data:`POOR_R2`), ``at_bound`` (["sigma"] when σ sits
    at 1), ``peak_below_range`` (USL: N* at or below the smallest N measured; then
    ``peak_orders_per_s`` is None), ``bound_note`` (on a bound: "adding backends
    never helped; …", else None) and ``caveats``, whole sentences saying so. Works
    as well on fits stored before these keys existed.
    """
    fit = dict(fit)
    model = "USL" if "kappa" in fit else "Amdahl"
    measured = [p for p in points if p["orders_per_s"]["mean"] is not None]
    n0 = min((p["n"] for p in measured), default=None)
    ok = bool(fit.get("ok")) and n0 is not None
    fit["poor"] = bool(ok and (fit.get("r2") is None or fit["r2"] < POOR_R2))
    fit["at_bound"] = ["sigma"] if ok and (fit.get("sigma") or 0) >= 1 - BOUND_EPS else []
    if "kappa" in fit:
        peak = fit.get("peak_n")
        fit["peak_below_range"] = bool(ok and peak is not None and peak <= n0)
        if fit["peak_below_range"]:
            fit["peak_orders_per_s"] = None
    fit["caveats"], fit["bound_note"] = [], None
    key = n_key or "N"
    if fit["at_bound"] or fit.get("peak_below_range"):
        best = max(measured, key=lambda p: p["orders_per_s"]["mean"])
        why = ["contention σ sits at its bound of 1"] if fit["at_bound"] else []
        if fit.get("peak_below_range"):
            why.append(f"its peak is at or below the smallest {key} measured ({n0:g})")
        fit["bound_note"] = (
            f"adding {_noun(n_key)} never helped; the best point is {key} = {best['n']:g}"
        )
        fit["caveats"].append(
            f"The {model} fit sits on a bound ({' and '.join(why)}): by the fit, "
            f"{fit['bound_note']}."
        )
    if fit["poor"]:
        r2 = "undefined" if fit.get("r2") is None else f"{fit['r2']:.2f}"
        fit["caveats"].append(
            f"The {model} fit is poor (R² = {r2}, below {POOR_R2:g}): it does not describe "
            "these points, so read its parameters as a rough guide at best."
        )
    return fit


def efficiency_label(summary: dict) -> str:
    """What a summary's efficiencies are relative to, e.g. "efficiency vs N=2"."""
    points = [p for p in summary.get("points", []) if p.get("efficiency") is not None]
    reference = summary.get("efficiency_reference_n")
    if reference is None:
        refs = {p.get("efficiency_reference_n") for p in points} - {None}
        if len(refs) > 1:
            return "efficiency vs each layout's smallest N"
        # Summaries stored before the key: relative to the smallest N measured.
        reference = refs.pop() if refs else min((p["n"] for p in points), default=None)
    return "efficiency" if reference is None else f"efficiency vs N={reference:g}"


def describe_scaling(summary: dict, n_key: str | None = None) -> str:
    """A few sentences reading the USL fit and retrograde of a sweep summary.

    Per layout when the summary has ``fits``; ``n_key`` (else the summary's)
    names what N counts.
    """
    n_key = n_key or summary.get("n_key")
    points = summary.get("points", [])
    if summary.get("fits"):
        groups = layout_groups(points)
        return " ".join(
            f"{layout}: {_describe(f['usl'], f['retrograde'], groups.get(layout, []), n_key)}"
            for layout, f in summary["fits"].items()
        )
    return _describe(summary["usl"], summary["retrograde"], points, n_key)


def _describe(usl: dict, retro: dict, points: list[dict], n_key: str | None) -> str:
    usl = judge_fit(usl, points, n_key)
    measured = [p for p in points if p["orders_per_s"]["mean"] is not None]
    single = bool(measured) and not any(has_interval(p["orders_per_s"]) for p in measured)
    if not usl["ok"]:
        text = f"No USL fit: {usl['note']}."
    else:
        text = (
            f"Per-unit throughput λ≈{usl['lambda']:,.0f} orders/s, contention "
            f"σ={usl['sigma']:.3g} ({usl['sigma']:.1%} of the work serialises), coherency "
            f"κ={usl['kappa']:.3g}"
        )
        largest = max((p["n"] for p in points), default=None)
        if usl["at_bound"] or usl.get("peak_below_range"):
            pass  # the caveat below says it in words; a peak at N*≈0 would mislead
        elif usl["peak_n"] is not None:
            text += (
                f" → throughput peaks at N*≈{usl['peak_n']:.1f} "
                f"(≈{usl['peak_orders_per_s']:,.0f} orders/s)"
            )
            if largest and usl["peak_n"] > 2 * largest:  # κ is barely resolved here
                text += f", far beyond the largest N measured ({largest:g}), so a guess"
        elif usl["sigma"] and usl["sigma"] > 0:
            ceiling = usl["lambda"] / usl["sigma"]
            text += f" → no peak; throughput approaches λ/σ≈{ceiling:,.0f} orders/s"
        else:
            text += " → linear scaling over the measured range"
        text += f"; R²={usl['r2']:.3f}." if usl["r2"] is not None else "."
        text += "".join(f" {c}" for c in usl["caveats"])
    if retro["detected"]:
        text += (
            f" Retrograde: throughput tops out at N={retro['peak_n']:g} and is lower, by "
            f"more than noise allows, from N={retro['start_n']:g} on ({retro['drop']:.0%} "
            "below the peak at the largest N)."
        )
    elif untested_drop(retro):
        text += (
            f" The largest N is {retro['drop']:.0%} below the peak at N={retro['peak_n']:g}, "
            "but too few runs to tell that from noise (not called retrograde)."
        )
    if single:
        text += " One run per point: no point has an interval, and no change can be tested."
    return text


def untested_drop(retro: dict) -> bool:
    """A fall past the peak that the runs could not test (so it is not called retrograde)."""
    return retro.get("tested") is False and (retro.get("drop") or 0) > RETROGRADE_TOLERANCE
