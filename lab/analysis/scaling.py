"""What a scaling sweep says: USL and Amdahl fits, efficiency, retrograde, bottlenecks.

Pure functions on arrays and plain dicts, no I/O. The Universal Scalability Law

    X(N) = λN / (1 + σ(N − 1) + κN(N − 1))

models throughput X at N parallel units with per-unit throughput λ, contention σ
(the share of work that serialises) and coherency κ (pairwise crosstalk, which
makes throughput *fall* past N* = sqrt((1 − σ)/κ)). Amdahl's law is the USL with
κ = 0. ``summarize_sweep`` turns a sweep's points into one JSON-able dict, with
``None`` wherever a figure is undefined (never NaN or infinity); which stage
saturated at each point comes from :mod:`lab.analysis.bottleneck`; each point's interval
from :mod:`lab.analysis.intervals`.

A fit is only as good as it looks: one with R² below :data:`POOR_R2` is
flagged ``poor``, and one that sits on a bound (σ = 1, or a peak at or below the
smallest N measured) says in words that adding units never helped. When the
points come from several layouts, each layout is fitted on its own.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import optimize

from lab.analysis.bottleneck import bottleneck, first_saturated
from lab.analysis.intervals import has_interval, interval_dict, mean_ci

__all__ = [
    "UslFit",
    "AmdahlFit",
    "Retrograde",
    "MIN_POINTS",
    "RETROGRADE_TOLERANCE",
    "POOR_R2",
    "LAYOUT_KEY",
    "usl_throughput",
    "amdahl_throughput",
    "fit_usl",
    "fit_amdahl",
    "efficiency",
    "retrograde",
    "mean_ci",
    "summarize_sweep",
    "describe_scaling",
    "judge_fit",
    "layout_groups",
    "efficiency_label",
]

MIN_POINTS = 6  #: distinct N values a fit needs: 2-3 parameters plus room to see misfit
RETROGRADE_TOLERANCE = 0.05  #: a drop smaller than this fraction of the peak is noise
POOR_R2 = 0.8  #: a fit whose R² is below this does not describe the points
LAYOUT_KEY = "layout"  #: the pseudo-key of ``values`` that names a point's layout
_BOUND_EPS = 1e-6  #: how close to a bound a parameter counts as sitting on it


class UslFit(NamedTuple):
    """A USL fit; parameters are NaN when ``ok`` is False, and ``note`` says why."""

    lambda_: float  #: throughput of one unit (orders/s)
    sigma: float  #: contention, 0..1
    kappa: float  #: coherency, >= 0
    peak_n: float  #: N* where throughput peaks; inf when kappa == 0
    r2: float  #: coefficient of determination on the measured throughputs
    n_points: int  #: distinct N values
    ok: bool
    note: str


class AmdahlFit(NamedTuple):
    """An Amdahl fit (the USL with kappa = 0); NaN parameters when ``ok`` is False."""

    lambda_: float  #: throughput of one unit (orders/s)
    sigma: float  #: serial fraction, 0..1
    ceiling: float  #: lambda / sigma, the throughput approached as N grows; inf if sigma == 0
    r2: float
    n_points: int  #: distinct N values
    ok: bool
    note: str


class Retrograde(NamedTuple):
    """Whether throughput falls past a peak; truthy exactly when ``detected``."""

    detected: bool
    start_n: float | None  #: first N past the peak whose throughput is clearly below it
    peak_n: float | None  #: N with the highest mean throughput
    drop: float  #: fraction by which the last N's mean is below the peak mean

    def __bool__(self) -> bool:  # a non-empty tuple is always truthy; the brief asks for a bool
        return bool(self.detected)


# -- models and fits -----------------------------------------------------------


def usl_throughput(n, lambda_: float, sigma: float, kappa: float) -> np.ndarray:
    """X(N) of the Universal Scalability Law."""
    n = np.asarray(n, dtype=float)
    return lambda_ * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def amdahl_throughput(n, lambda_: float, sigma: float) -> np.ndarray:
    """X(N) of Amdahl's law (the USL with kappa = 0)."""
    return usl_throughput(n, lambda_, sigma, 0.0)


def _clean(n, x) -> tuple[np.ndarray, np.ndarray]:
    """Pairs with a positive N and a finite throughput, as float arrays."""
    n = np.asarray(n, dtype=float).ravel()
    x = np.asarray(x, dtype=float).ravel()
    if n.shape != x.shape:
        raise ValueError(f"n and x differ in length: {n.size} and {x.size}")
    keep = np.isfinite(n) & np.isfinite(x) & (n > 0)
    return n[keep], x[keep]


def _r2(x: np.ndarray, fitted: np.ndarray) -> float:
    ss_tot = float(np.sum((x - x.mean()) ** 2))
    ss_res = float(np.sum((x - fitted) ** 2))
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else math.nan  # undefined for a flat series
    return 1 - ss_res / ss_tot


def _fit(n, x, with_kappa: bool, model: str):
    """Bounded least squares of the USL (or Amdahl) on every (N, X) pair.

    Returns (params, r2, distinct N, note); params is None when no fit was made.
    """
    n, x = _clean(n, x)
    distinct = int(np.unique(n).size)
    if distinct < MIN_POINTS:
        note = f"{model} needs at least {MIN_POINTS} points, got {distinct}"
        return None, math.nan, distinct, note
    if not np.any(x > 0):
        return None, math.nan, distinct, "throughput is zero at every point"
    # λ from the smallest N (per unit); σ, κ from the linearised USL
    # N·λ/X − 1 = σ(N − 1) + κN(N − 1), solved with non-negative least squares.
    n0 = n.min()
    lam0 = max(float(x[n == n0].mean() / n0), 1e-12)
    usable = x > 0
    design = np.column_stack([n - 1, n * (n - 1)])[usable]
    if not with_kappa:
        design = design[:, :1]
    coef, _ = optimize.nnls(design, n[usable] * lam0 / x[usable] - 1)
    size = 3 if with_kappa else 2
    # Two generic starts as well, in case the linearised one sits in a poor basin.
    starts = [np.concatenate(([lam0], coef))]
    starts += [np.array([lam0, s, k])[:size] for s, k in ((0.01, 1e-4), (0.2, 1e-2))]
    lower = [1e-12, 0.0, 0.0][:size]
    upper = [np.inf, 1.0, np.inf][:size]
    scale = float(np.abs(x).max())  # residuals in units of the largest throughput

    def residuals(p):
        kappa = p[2] if with_kappa else 0.0
        return (usl_throughput(n, p[0], p[1], kappa) - x) / scale

    best = None
    for start in starts:
        start = np.clip(start, lower, upper)
        res = optimize.least_squares(residuals, start, bounds=(lower, upper), x_scale="jac")
        if res.success and (best is None or res.cost < best.cost):
            best = res
    if best is None:
        return None, math.nan, distinct, f"{model} fit did not converge"
    params = [float(v) for v in best.x]
    fitted = usl_throughput(n, params[0], params[1], params[2] if with_kappa else 0.0)
    return params, _r2(x, fitted), distinct, ""


def fit_usl(n, x) -> UslFit:
    """Fit the USL to throughputs ``x`` measured at ``n`` (repeats of an N allowed).

    Needs at least :data:`MIN_POINTS` distinct N, else ``ok`` is False and ``note``
    says so; never raises for too little or degenerate data.
    """
    params, r2, distinct, note = _fit(n, x, with_kappa=True, model="USL")
    if params is None:
        return UslFit(math.nan, math.nan, math.nan, math.nan, r2, distinct, False, note)
    lam, sigma, kappa = params
    peak = math.sqrt((1 - sigma) / kappa) if kappa > 0 else math.inf
    return UslFit(lam, sigma, kappa, peak, r2, distinct, True, note)


def fit_amdahl(n, x) -> AmdahlFit:
    """Fit Amdahl's law (USL with kappa = 0); same rules as :func:`fit_usl`."""
    params, r2, distinct, note = _fit(n, x, with_kappa=False, model="Amdahl")
    if params is None:
        return AmdahlFit(math.nan, math.nan, math.nan, r2, distinct, False, note)
    lam, sigma = params
    ceiling = lam / sigma if sigma > 0 else math.inf
    return AmdahlFit(lam, sigma, ceiling, r2, distinct, True, note)


# -- descriptive figures -------------------------------------------------------


def efficiency(n, x) -> np.ndarray:
    """Per-unit throughput relative to the smallest N: (X(N)/N) / (X(n0)/n0).

    With N = 1 measured this is the usual X(N) / (N·X(1)). Without it the
    smallest N measured stands in for one unit, so efficiency there is 1 by
    definition. Repeated N values use their mean as the reference. NaN where
    the reference throughput is zero.
    """
    n = np.asarray(n, dtype=float)
    x = np.asarray(x, dtype=float)
    if n.size == 0:
        return np.array([], dtype=float)
    n0 = np.nanmin(n)
    reference = float(np.nanmean(x[n == n0])) / n0
    if not reference > 0:
        return np.full(n.shape, np.nan)
    return x / n / reference


def _group(n, x) -> tuple[np.ndarray, list[np.ndarray]]:
    n, x = _clean(n, x)
    ns = np.unique(n)
    return ns, [x[n == value] for value in ns]


def retrograde(n, x, tolerance: float = RETROGRADE_TOLERANCE) -> Retrograde:
    """Does throughput fall as N grows past some point, beyond noise?

    Rule: take the mean throughput at each N and its 95% CI half-width. It is
    retrograde when the *last* (largest) N's mean is below the peak mean by more
    than the larger of ``tolerance`` × peak and the two CI half-widths added.
    Judging by the last point means a single noisy dip that recovers does not
    count. ``start_n`` is the first N past the peak that is below by that margin.
    """
    ns, groups = _group(n, x)
    if ns.size == 0:
        return Retrograde(False, None, None, 0.0)
    means = np.array([g.mean() for g in groups])
    halves = np.array([mean_ci(g)[2] - g.mean() for g in groups])
    peak = int(np.argmax(means))
    peak_mean = means[peak]
    drop = float((peak_mean - means[-1]) / peak_mean) if peak_mean > 0 else 0.0

    def clearly_below(i: int) -> bool:
        margin = max(tolerance * peak_mean, halves[peak] + halves[i])
        return bool(peak_mean - means[i] > margin)

    detected = peak < ns.size - 1 and clearly_below(ns.size - 1)
    start = next((float(ns[i]) for i in range(peak + 1, ns.size) if clearly_below(i)), None)
    return Retrograde(bool(detected), start if detected else None, float(ns[peak]), drop)


# -- a whole sweep -------------------------------------------------------------


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


def _row(p: dict) -> dict:
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
    rows = [_row(p) for p in sorted(points, key=lambda p: p["n"])]
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
    fit["at_bound"] = ["sigma"] if ok and (fit.get("sigma") or 0) >= 1 - _BOUND_EPS else []
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
        lower = "lower, by more than noise allows," if not single else "lower"
        text += (
            f" Retrograde: throughput tops out at N={retro['peak_n']:g} and is {lower} "
            f"from N={retro['start_n']:g} on ({retro['drop']:.0%} below the peak at the "
            "largest N)."
        )
    if single:
        text += " One run per point: no point has an interval, and no change can be tested."
    return text
