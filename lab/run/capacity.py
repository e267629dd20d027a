"""``lab capacity``: the highest open-loop rate the system keeps up with inside a p99 SLO.

A rate *passes* when most of its runs were not overloaded (they answered what
they were offered, with no growing backlog) and the median of their p99
latencies is at most the SLO. The search, on one Ray cluster:

1. starts from ``capacity.start_per_s``, or from half the answered rate of one
   closed-loop run of the same topology (the closed loop finds the ceiling
   at a fixed concurrency; an open loop with a latency bound sits below it);
2. brackets: doubles the rate until one fails, or halves it until one passes;
3. bisects the bracket (geometric midpoints) until its bounds are within
   ``capacity.tolerance`` of each other, or ``capacity.max_points`` rates
   have been tried.

The capacity is the highest rate that passed, with the bracket it ended in
(the search's resolution) and the p99 measured there. A rate at which the
generators could not keep their own schedule fails too, and the summary says
so: such a point measures the generators, not the system.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from datetime import datetime, timezone

from lab.bench.probe import measure_probe, relative_to_probe
from lab.errors import LabError
from lab.run.environment import describe_environment
from lab.run.experiment import Experiment
from lab.run.result import Result
from lab.store.result_store import ResultStore, new_run_id

__all__ = ["capacity_search", "judge_rate", "engine_working_set"]

#: Halvings tried at most when even the first rate fails.
_MAX_HALVINGS = 10


def judge_rate(runs: list[Result], slo_p99_ms: float) -> dict:
    """One rate's runs: medians, whether most kept up, and whether the rate passed."""
    p99 = statistics.median(r.latency_ms["p99"] for r in runs)
    kept_up = sum(1 for r in runs if r.overloaded is False)
    limited = sum(1 for r in runs if r.generator_limited)
    overloaded = kept_up * 2 <= len(runs)  # a tie counts against the rate
    return {
        "offered_per_s": statistics.median(r.offered_per_s or 0.0 for r in runs),
        "orders_per_s": statistics.median(r.orders_per_s for r in runs),
        "answered_per_s": statistics.median(r.answered_per_s for r in runs),
        "p99_ms": p99,
        "overloaded": overloaded,
        "generator_limited": limited * 2 > len(runs),
        "passed": not overloaded and not limited * 2 > len(runs) and p99 <= slo_p99_ms,
        "actors": runs[0].actors,  # where the time went at this rate (its first run)
        "runs": [
            {
                "run_id": r.run_id,
                "orders_per_s": r.orders_per_s,
                "answered_per_s": r.answered_per_s,
                "p99_ms": r.latency_ms["p99"],
                "overloaded": r.overloaded,
                "generator_limited": r.generator_limited,
            }
            for r in runs
        ],
    }


def engine_working_set(experiment: Experiment) -> int:
    """Bytes of one engine shard sized as the topology sizes it: the probe's working set."""
    from engine import MatchingEngine

    t, w = experiment.config.topology, experiment.config.workload
    symbols = max(1, w.symbols // t.engines)
    return MatchingEngine(symbols, orders=t.engine_orders).memory_bytes()


def capacity_search(
    experiment: Experiment,
    slo_p99_ms: float | None = None,
    repeat: int | None = None,
    on_point: Callable[[dict], None] | None = None,
    store: bool = True,
    capacity_id: str | None = None,
    sweep_id: str | None = None,
) -> dict:
    """Search the experiment's capacity on the Ray that is running (or one it starts).

    ``slo_p99_ms`` and ``repeat`` default to the config's ``capacity`` section.
    ``on_point`` hears each rate's summary as it is judged. Runs are stored
    (unless ``store=False``) as ``capacity-point`` runs under the search's id.
    """
    from lab.run.executor import runtime_for

    settings = experiment.config.capacity
    slo = float(slo_p99_ms if slo_p99_ms is not None else settings.slo_p99_ms)
    repeat = settings.repeat if repeat is None else repeat
    if not slo > 0:
        raise LabError(f"--p99-ms must be positive, got {slo:g}")
    if repeat < 1:
        raise LabError(f"--repeat must be at least 1, got {repeat}")
    capacity_id = capacity_id or new_run_id("capacity")
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    probe = measure_probe(engine_working_set(experiment))
    run_kw = {"store": store, "kind": "capacity-point", "sweep_id": sweep_id or capacity_id}
    search = _Search(experiment, slo, repeat, run_kw, on_point, settings.max_points)
    with runtime_for(experiment.layout):
        start = _start_rate(experiment, settings.start_per_s, run_kw)
        lo, hi = search.bracket(start["rate_per_s"])
        lo, hi = search.bisect(lo, hi, settings.tolerance)
    summary = _summary(experiment, search.points, lo, hi, slo, repeat, start, probe)
    summary.update(capacity_id=capacity_id, created_at=created, kind="capacity")
    if store and sweep_id is None:
        with ResultStore.open(experiment.config.results.url) as results:
            results.save_sweep({**summary, "sweep_id": capacity_id})
    return summary


class _Search:
    """The rates tried so far, and the two phases that choose the next one."""

    def __init__(self, experiment, slo, repeat, run_kw, on_point, max_points):
        self.experiment, self.slo, self.repeat = experiment, slo, repeat
        self.run_kw, self.on_point, self.max_points = run_kw, on_point, max_points
        self.points: list[dict] = []

    @property
    def exhausted(self) -> bool:
        return len(self.points) >= self.max_points

    def measure(self, rate: float) -> dict:
        rated = self.experiment.with_overrides([f"workload.rate={rate:.6g}"])
        runs = [rated.run(**self.run_kw) for _ in range(self.repeat)]
        point = {"rate_per_s": float(f"{rate:.6g}"), **judge_rate(runs, self.slo)}
        self.points.append(point)
        if self.on_point is not None:
            self.on_point(point)
        return point

    def bracket(self, rate: float) -> tuple[dict | None, dict | None]:
        """(highest rate that passed, lowest that failed) around ``rate``; either may be None."""
        first = self.measure(rate)
        if first["passed"]:
            lo = first
            while not self.exhausted:
                point = self.measure(lo["rate_per_s"] * 2)
                if not point["passed"]:
                    return lo, point
                lo = point
            return lo, None
        hi = first
        for _ in range(_MAX_HALVINGS):
            if self.exhausted:
                break
            point = self.measure(hi["rate_per_s"] / 2)
            if point["passed"]:
                return point, hi
            hi = point
        return None, hi

    def bisect(self, lo: dict | None, hi: dict | None, tolerance: float):
        """Narrow a bracket by geometric midpoints until it is within ``tolerance``."""
        while lo is not None and hi is not None and not self.exhausted:
            if hi["rate_per_s"] <= lo["rate_per_s"] * (1 + tolerance):
                break
            point = self.measure(math.sqrt(lo["rate_per_s"] * hi["rate_per_s"]))
            lo, hi = (point, hi) if point["passed"] else (lo, point)
        return lo, hi


def _start_rate(experiment: Experiment, start_per_s: float | None, run_kw: dict) -> dict:
    if start_per_s is not None:
        return {"rate_per_s": float(start_per_s), "from": "capacity.start_per_s"}
    closed = experiment.with_overrides(["workload.rate=max", "thresholds.overloaded=null"])
    result = closed.run(**run_kw)
    if not result.answered_per_s > 0:
        raise LabError(
            f"the closed-loop run that sizes the search answered nothing "
            f"({result.first_error or 'no error reported'})"
        )
    return {
        "rate_per_s": result.answered_per_s / 2,
        "from": "half the closed-loop run's answered rate",
        "closed_loop_run_id": result.run_id,
        "closed_loop_answered_per_s": result.answered_per_s,
        "closed_loop_orders_per_s": result.orders_per_s,
    }


def _summary(experiment, points, lo, hi, slo, repeat, start, probe) -> dict:
    points = sorted(points, key=lambda p: p["rate_per_s"])
    capacity = lo["rate_per_s"] if lo else None
    out = {
        "name": experiment.config.experiment.name,
        "layout": experiment.layout_name,
        "slo_p99_ms": slo,
        "capacity_orders_per_s": capacity,
        "bracket": [capacity, hi["rate_per_s"] if hi else None],
        "orders_per_s": lo["orders_per_s"] if lo else None,
        "p99_ms": lo["p99_ms"] if lo else None,
        "repeat": repeat,
        "start": start,
        "points": points,
        "probe": probe,
        "config": experiment.config.to_public_dict(),
        "environment": describe_environment(),
    }
    if capacity:
        out.update(relative_to_probe(1e9 / capacity, probe, per="order"))
    out["verdict"] = _verdict(out, lo, hi)
    return out


def _verdict(out: dict, lo: dict | None, hi: dict | None) -> str:
    slo = out["slo_p99_ms"]
    if lo is None:
        lowest = hi["rate_per_s"] if hi else 0
        return (
            f"No rate passed, down to {lowest:,.0f} orders/s: either the p99 SLO of {slo:g} ms "
            "is below what this topology gives at any load, or every run was overloaded."
        )
    text = (
        f"Capacity {lo['rate_per_s']:,.0f} orders/s offered ({lo['orders_per_s']:,.0f} "
        f"acknowledged) with p99 {lo['p99_ms']:,.1f} ms ≤ {slo:g} ms"
    )
    if hi is None:
        return text + "; no failing rate was found within the points allowed, so it may be higher."
    why = (
        "the generators could not keep their own schedule (add generators)"
        if hi["generator_limited"]
        else "the system did not keep up"
        if hi["overloaded"]
        else f"p99 {hi['p99_ms']:,.1f} ms exceeded the SLO"
    )
    return text + f"; at {hi['rate_per_s']:,.0f} orders/s {why}."
