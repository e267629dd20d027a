"""``Experiment``: one config plus a layout name; ``run()`` gives a ``Result``.

from lab import Experiment
result = Experiment.from_yaml("configs/quickstart.yaml").run()
print(result.orders_per_s, result.latency_ms["p99"])
"""

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone

from lab.config import ExperimentConfig, load_config
from lab.environment import describe_environment
from lab.result import Result, summarize_actors, summarize_book
from lab.results import ResultStore, new_run_id
from lab.workload import expected_depth

__all__ = ["Experiment", "DEFAULT_LAYOUT"]

DEFAULT_LAYOUT = "single-host"


class Experiment:
    def __init__(self, config: ExperimentConfig, layout: str = DEFAULT_LAYOUT):
        self.layout = config.layout(layout)  # ConfigError naming the choices if unknown
        self.layout_name = layout
        self.config = config.for_layout(layout)

    @classmethod
    def from_yaml(
        cls,
        path,
        layout: str = DEFAULT_LAYOUT,
        overrides: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> "Experiment":
        return cls(load_config(path, overrides, env), layout)

    def with_overrides(self, overrides: Iterable[str]) -> "Experiment":
        return Experiment(self.config.with_overrides(list(overrides)), self.layout_name)

    def run(
        self,
        on_progress: Callable[[dict], None] | None = None,
        store: bool = True,
        kind: str = "run",
        sweep_id: str | None = None,
    ) -> Result:
        """Run on the layout, store the result (unless ``store=False``) and return it."""
        from lab.pipeline import Pipeline, flow_params
        from lab.runtime import RayRuntime

        run_id = new_run_id()
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with RayRuntime(self.layout):
            pipeline = Pipeline(self.config, self.layout, run_id)
            try:
                pipeline.wait_ready()
                nodes = pipeline.nodes()
                raw = pipeline.run(on_progress)
            finally:
                pipeline.shutdown()
        exp = self.config.experiment
        result = Result.from_tallies(
            raw["tallies"],
            exp.measured_s,
            run_id=run_id,
            name=exp.name,
            layout=self.layout_name,
            actors=summarize_actors(raw["actors"], nodes, exp.warmup_s),
            book=summarize_book(raw["series"], raw["resting"], exp.warmup_s, exp.duration_s),
            series=raw["series"],
            failed_polls=raw["failed_polls"],
            journals=raw["journals"],
            config=self.config.to_dict(),
            environment=describe_environment(),
            created_at=created,
            kind=kind,
            sweep_id=sweep_id,
        )
        expected = expected_depth(flow_params(self.config), result.answered_per_s)
        result.book["expected_resting"] = None if expected is None else round(expected)
        result.thresholds_missed = missed_thresholds(self.config, result)
        if store:
            with ResultStore.open(self.config.results.url) as results:
                results.save_run(result.to_dict())
        return result


def missed_thresholds(config: ExperimentConfig, result: Result) -> list[str]:
    """Each configured threshold the result misses, described."""
    t = config.thresholds
    missed = []
    if t.p99_ms is not None and result.latency_ms["p99"] > t.p99_ms:
        missed.append(f"p99 {result.latency_ms['p99']:.3f} ms > {t.p99_ms:g} ms")
    if t.min_orders_per_s is not None and result.orders_per_s < t.min_orders_per_s:
        missed.append(f"{result.orders_per_s:,.0f} orders/s < {t.min_orders_per_s:,.0f}")
    if t.max_errors is not None and result.errors > t.max_errors:
        missed.append(f"{result.errors} errors > {t.max_errors}")
    if t.overloaded is False and result.overloaded is not False:
        missed.append(
            f"overloaded: offered {result.offered_per_s or 0:,.0f} orders/s, answered "
            f"{result.answered_per_s:,.0f}/s"
        )
    return missed
