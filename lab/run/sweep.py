"""Scaling sweeps: the same experiment at several points, each repeated.

    from lab import sweep
    summary = sweep("configs/bench-single-host.yaml",
                    {"topology.backends": [1, 2, 4, 8, 12, 16]}, repeat=3)

Points run in sequence on one Ray cluster per layout (started once). The
pseudo-key ``layout`` may be varied too, to compare layouts point by point.
The summary holds, per point, the mean throughput with a confidence interval
and the p99, the USL and Amdahl fits over the first numeric varied key, the
stage that saturated first (:mod:`lab.analysis.scaling`) and plain-language findings
(:mod:`lab.analysis.findings`). A sweep with no numeric key (``sweep.variants``
names sets of settings varied as one) is a comparison instead: what each choice
costs against the first (:mod:`lab.analysis.comparison`). ``sweep.reference``
sets figures measured elsewhere beside the sweep's (:mod:`lab.analysis.reference`).
"""

import itertools
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone

from lab.analysis.findings import findings
from lab.analysis.reference import set_beside
from lab.analysis.sweep_summary import sweep_value
from lab.config import ExperimentConfig, load_config, with_overrides
from lab.errors import ConfigError, LabError, RunFailed
from lab.run.environment import describe_environment
from lab.run.executor import runtime_for
from lab.run.experiment import DEFAULT_LAYOUT, Experiment
from lab.run.result import Result
from lab.store.result_store import ResultStore, new_run_id

__all__ = ["sweep", "parse_vary", "LAYOUT_KEY"]

#: The pseudo-key that varies the layout instead of a config value.
LAYOUT_KEY = "layout"


def parse_vary(items: Sequence[str]) -> dict[str, list[str]]:
    """``["topology.backends=1,2,4"]`` -> ``{"topology.backends": ["1", "2", "4"]}``."""
    vary: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ConfigError(f"--vary {item!r}: expected KEY=V1,V2,...")
        vary[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return vary


def sweep(
    config: str | ExperimentConfig,
    vary: Mapping[str, Sequence] | None = None,
    repeat: int | None = None,
    layout: str = DEFAULT_LAYOUT,
    overrides: Sequence[str] = (),
    on_run: Callable[[dict, Result], None] | None = None,
    store: bool = True,
    capacity: bool = False,
    slo_p99_ms: float | None = None,
    on_capacity_point: Callable[[dict, dict], None] | None = None,
    progress: bool = True,
) -> dict:
    """Run every combination of ``vary`` ``repeat`` times; returns the sweep summary.

    ``vary`` and ``repeat`` default to the config's ``sweep`` section. With
    ``capacity=True`` each point is a capacity search (:mod:`lab.run.capacity`)
    instead, its figure the capacity found with the search's bracket as its
    interval; ``repeat`` is then the runs per rate tried (default: the
    config's ``capacity.repeat``) and ``slo_p99_ms`` the SLO (default: its
    ``capacity.slo_p99_ms``).

    Each run's figures go to stderr as it ends (``progress=False`` for quiet;
    ``on_run`` to hear them instead). When a point fails, the points done
    before it are stored in the summary, with ``status: failed`` and
    ``failed_point``, and :class:`RunFailed` says which point failed.
    """
    from lab.analysis.comparison import summarize_comparison
    from lab.analysis.sweep_summary import summarize_sweep

    base = load_config(config, overrides) if isinstance(config, str) else config
    vary = dict(vary or base.sweep.vary)
    if repeat is None:
        repeat = base.capacity.repeat if capacity else base.sweep.repeat
    if repeat < 1:
        raise ConfigError(f"--repeat must be at least 1, got {repeat}")
    if not vary:
        raise ConfigError(
            f"{base.source}: nothing to sweep: give --vary KEY=V1,V2,... or a sweep.vary section"
        )
    keys = list(vary)
    # N is the first key varied over numbers; with none, the sweep is a comparison.
    n_key = next((k for k in keys if k != LAYOUT_KEY and _numeric(vary[k])), None)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*vary.values())]
    # Every point's config is checked before anything runs.
    plan = []
    for combo in combos:
        point_layout = str(combo.get(LAYOUT_KEY, layout))
        point = with_overrides(base, _settings(combo, base.sweep.variants))
        plan.append((combo, Experiment(point, point_layout)))

    sweep_id = new_run_id("sweep")
    if on_run is None and progress:
        on_run = _print_run
    if on_capacity_point is None and progress:
        on_capacity_point = _print_rate
    points, failure = [], None
    # One cluster per layout, points in the order given within it.
    for layout_name in dict.fromkeys(exp.layout_name for _, exp in plan):
        group = [(c, e) for c, e in plan if e.layout_name == layout_name]
        try:
            with runtime_for(group[0][1].layout):
                for combo, experiment in group:
                    failure = combo  # until the point is done
                    points.append(
                        _capacity_point(
                            combo,
                            n_key,
                            experiment,
                            slo_p99_ms,
                            repeat,
                            store,
                            sweep_id,
                            on_capacity_point,
                        )
                        if capacity
                        else _run_point(combo, n_key, experiment, repeat, store, sweep_id, on_run)
                    )
                    failure = None
        except LabError as exc:  # keep the points done; say which one failed
            failure = {
                "values": {k: sweep_value(v) for k, v in (failure or {}).items()},
                "error": str(exc),
            }
            break
    order = {id(c): i for i, (c, _) in enumerate(plan)}
    points.sort(key=lambda p: order[p.pop("_combo_id")])
    if n_key is None:
        summary = summarize_comparison(points, keys)
    else:
        summary = summarize_sweep(points, n_key) if points else {"points": []}
    summary.update(
        figure="capacity" if capacity else "throughput",
        sweep_id=sweep_id,
        name=base.experiment.name,
        layout=", ".join(dict.fromkeys(exp.layout_name for _, exp in plan)),
        n_key=n_key,
        vary={k: list(v) for k, v in vary.items()},
        repeat=repeat,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=base.to_public_dict(),
        environment=describe_environment(),
        status="failed" if failure else "ok",
        failed_point=failure,
    )
    if n_key is not None:
        summary["findings"] = findings(summary["points"], n_key) if points else []
    if base.sweep.reference is not None:
        set_beside(summary, base.sweep.reference.model_dump())
    if store:
        with ResultStore.open(base.results.url) as results:
            results.save_sweep(summary)
    if failure:
        kept = f"the {len(points)} point(s) before it are stored" if store else "nothing stored"
        raise RunFailed(
            f"sweep {sweep_id}: point {failure['values']} failed: {failure['error']} ({kept})",
            summary,
        )
    return summary


def _numeric(values: Sequence) -> bool:
    return all(isinstance(sweep_value(v), int | float) for v in values)


def _settings(combo: dict, variants: Mapping[str, Mapping[str, Mapping]]) -> list[str]:
    """The ``--set`` overrides of one point: its keys' values, or the settings they name."""
    sets = []
    for key, value in combo.items():
        if key in variants:
            if str(value) not in variants[key]:
                raise ConfigError(
                    f"--vary {key}: {value!r} is not one of sweep.variants.{key} "
                    f"({', '.join(variants[key])})"
                )
            sets += [f"{k}={v}" for k, v in variants[key][str(value)].items()]
        elif key != LAYOUT_KEY:
            sets.append(f"{key}={value}")
    return sets


def _run_point(combo, n_key, experiment, repeat, store, sweep_id, on_run) -> dict:
    runs = []
    for _ in range(repeat):
        result = experiment.run(store=store, kind="sweep-point", sweep_id=sweep_id)
        runs.append(result)
        if on_run is not None:
            on_run(combo, result)
    return _point(combo, n_key, runs, experiment.config)


def _print_rate(values: dict, point: dict) -> None:
    """The default progress of a capacity sweep: one line per rate tried, on stderr."""
    verdict = "passed" if point["passed"] else "failed"
    print(
        f"  {values}: {point['rate_per_s']:,.0f} orders/s offered, p99 "
        f"{point['p99_ms']:.3f} ms: {verdict}",
        file=sys.stderr,
        flush=True,
    )


def _print_run(values: dict, result: Result) -> None:
    """The default progress of a sweep: one line per run, on stderr."""
    print(
        f"  {values}: {result.orders_per_s:,.0f} orders/s, p99 {result.latency_ms['p99']:.3f} ms",
        file=sys.stderr,
        flush=True,
    )


def _point(combo: dict, n_key: str, runs: list[Result], config: ExperimentConfig) -> dict:
    rate = config.workload.rate
    return {
        "_combo_id": id(combo),
        "values": {k: sweep_value(v) for k, v in combo.items()},
        "n": None if n_key is None else sweep_value(combo[n_key]),
        "orders_per_s_runs": [r.orders_per_s for r in runs],
        "p99_ms_runs": [r.latency_ms["p99"] for r in runs],
        "latency_ms_runs": [r.latency_ms for r in runs],
        "actors": runs[0].actors,
        "offered_rate": None if rate == "max" else float(rate),
        "run_ids": [r.run_id for r in runs],
    }


def _capacity_point(combo, n_key, experiment, slo_p99_ms, repeat, store, sweep_id, on_point):
    """A sweep point whose figure is the capacity a search found, its bracket the interval."""
    from lab.run.capacity import capacity_search

    found = capacity_search(
        experiment,
        slo_p99_ms=slo_p99_ms,
        repeat=repeat,
        store=store,
        sweep_id=sweep_id,
        on_point=None if on_point is None else (lambda point: on_point(combo, point)),
    )
    lo, hi = found["bracket"]
    best = next((p for p in found["points"] if p["rate_per_s"] == lo), None)
    return {
        "_combo_id": id(combo),
        "values": {k: sweep_value(v) for k, v in combo.items()},
        "n": None if n_key is None else sweep_value(combo[n_key]),
        "orders_per_s_runs": [lo] if lo is not None else [],
        # The search's resolution; with no failing rate found, the top is unknown.
        "orders_per_s_bounds": [lo, hi] if lo is not None and hi is not None else None,
        "p99_ms_runs": [found["p99_ms"]] if found["p99_ms"] is not None else [],
        "latency_ms_runs": [],
        "actors": best["actors"] if best else {},
        "offered_rate": lo,
        "run_ids": [r["run_id"] for p in found["points"] for r in p["runs"]],
        "capacity": {k: found[k] for k in ("capacity_orders_per_s", "bracket", "verdict")},
    }
