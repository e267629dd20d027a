"""What a scaling sweep says: USL and Amdahl fits, efficiency, retrograde, bottlenecks.

Pure functions on arrays and plain dicts, no I/O. The Universal Scalability Law

    X(N) = λN / (1 + σ(N − 1) + κN(N − 1))

models throughput X at N parallel units with per-unit throughput λ, contention σ
(the share of work that serialises) and coherency κ (pairwise crosstalk, which
makes throughput *fall* past N* = sqrt((1 − σ)/κ)). Amdahl's law is the USL with
κ = 0. A fit never raises for too little or degenerate data: it says so.
:mod:`lab.analysis.sweep_summary` turns a sweep's points into one summary
with these fits, read in words.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import optimize

from lab.analysis.intervals import compare

__all__ = [
    "UslFit",
    "AmdahlFit",
    "Retrograde",
    "MIN_POINTS",
    "RETROGRADE_TOLERANCE",
    "POOR_R2",
    "BOUND_EPS",
    "usl_throughput",
    "amdahl_throughput",
    "fit_usl",
    "fit_amdahl",
    "efficiency",
    "retrograde",
]

MIN_POINTS = 6  #: distinct N values a fit needs: 2-3 parameters plus room to see misfit
RETROGRADE_TOLERANCE = 0.05  #: a drop smaller than this fraction of the peak is noise
POOR_R2 = 0.8  #: a fit whose R² is below this does not describe the points
#: How close to a bound a parameter counts as sitting on it.
BOUND_EPS = 1e-6


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
    #: whether the runs could tell (two or more at the peak and the last N)
    tested: bool = True

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

    Rule: it is retrograde when the *last* (largest) N's mean is more than
    ``tolerance`` below the peak mean *and* a test at 95% says it is lower (the
    findings' test: Welch's t on log throughput). Judging by the last point
    means a single noisy dip that recovers does not count. ``start_n`` is the
    first N past the peak that passes the same rule. With fewer than two runs
    at the peak or the last N nothing can be tested: ``tested`` is False, and
    ``detected`` too, whatever ``drop`` says.
    """
    ns, groups = _group(n, x)
    if ns.size == 0:
        return Retrograde(False, None, None, 0.0, False)
    means = np.array([g.mean() for g in groups])
    peak = int(np.argmax(means))
    peak_mean = means[peak]
    drop = float((peak_mean - means[-1]) / peak_mean) if peak_mean > 0 else 0.0

    def figure(i: int) -> dict:
        return {"mean": float(means[i]), "runs": groups[i].tolist()}

    def lower(i: int) -> bool | None:
        """Clearly below the peak; None when the runs cannot tell."""
        verdict = compare(figure(peak), figure(i)).verdict
        if verdict == "untestable":
            return None
        return verdict == "lower" and peak_mean - means[i] > tolerance * peak_mean

    last = ns.size - 1
    verdict = lower(last) if peak < last else False
    start = next((float(ns[i]) for i in range(peak + 1, ns.size) if lower(i)), None)
    detected = bool(verdict)
    return Retrograde(
        detected, start if detected else None, float(ns[peak]), drop, verdict is not None
    )
