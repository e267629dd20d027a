"""Scaling sweeps: the same experiment at several points, each repeated.

    from lab import sweep
    summary = sweep("configs/bench-single-host.yaml",
                    {"topology.backends": [1, 2, 4, 8, 12, 16]}, repeat=3)

Points run in sequence on one Ray cluster (started once for the sweep).
The summary holds, per point, the mean throughput with a confidence
interval and the p99, plus the USL and Amdahl fits over the first varied key
and the stage that saturated first (:mod:`lab.scaling`).
"""

import itertools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone

from lab.config import ExperimentConfig, load_config
from lab.environment import describe_environment
from lab.errors import ConfigError
from lab.experiment import DEFAULT_LAYOUT, Experiment
from lab.result import Result
from lab.results import ResultStore, new_run_id
from lab.runtime import RayRuntime

__all__ = ["sweep", "parse_vary"]


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
    vary: Mapping[str, Sequence],
    repeat: int = 1,
    layout: str = DEFAULT_LAYOUT,
    overrides: Sequence[str] = (),
    on_run: Callable[[dict, Result], None] | None = None,
    store: bool = True,
) -> dict:
    """Run every combination of ``vary`` ``repeat`` times; returns the sweep summary."""
    from lab.scaling import summarize_sweep

    if repeat < 1:
        raise ConfigError(f"--repeat must be at least 1, got {repeat}")
    if not vary:
        raise ConfigError("a sweep needs at least one --vary KEY=V1,V2,...")
    base = load_config(config, overrides) if isinstance(config, str) else config
    keys = list(vary)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*vary.values())]
    # Every point's config is checked before anything runs.
    experiments = [
        Experiment(base.with_overrides([f"{k}={v}" for k, v in combo.items()]), layout)
        for combo in combos
    ]
    sweep_id = new_run_id("sweep")
    points = []
    with RayRuntime(experiments[0].layout):
        for combo, experiment in zip(combos, experiments, strict=True):
            runs = []
            for _ in range(repeat):
                result = experiment.run(store=store, kind="sweep-point", sweep_id=sweep_id)
                runs.append(result)
                if on_run is not None:
                    on_run(combo, result)
            points.append(_point(combo, keys[0], runs, experiment.config))
    summary = summarize_sweep(points)
    summary.update(
        sweep_id=sweep_id,
        name=base.experiment.name,
        layout=layout,
        vary={k: list(v) for k, v in vary.items()},
        repeat=repeat,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=base.to_dict(),
        environment=describe_environment(),
    )
    if store:
        with ResultStore.open(base.results.url) as results:
            results.save_sweep(summary)
    return summary


def _point(combo: dict, n_key: str, runs: list[Result], config: ExperimentConfig) -> dict:
    rate = config.workload.rate
    return {
        "values": {k: _number(v) for k, v in combo.items()},
        "n": _number(combo[n_key]),
        "orders_per_s_runs": [r.orders_per_s for r in runs],
        "p99_ms_runs": [r.latency_ms["p99"] for r in runs],
        "latency_ms_runs": [r.latency_ms for r in runs],
        "actors": runs[0].actors,
        "offered_rate": None if rate == "max" else float(rate),
        "run_ids": [r.run_id for r in runs],
    }


def _number(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else number
