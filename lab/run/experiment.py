"""``Experiment``: one config plus a layout name; ``run()`` gives a ``Result``.

from lab import Experiment
result = Experiment.from_yaml("configs/quickstart.yaml").run()
print(result.orders_per_s, result.latency_ms["p99"])
"""

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone

from actors.order_flow import expected_depth
from lab.config import ExperimentConfig, for_layout, load_config, with_overrides
from lab.errors import RunFailed
from lab.run.environment import describe_environment
from lab.run.executor import open_executor
from lab.run.result import Result, summarize_actors, summarize_book
from lab.run.stages import flow_params
from lab.store.result_store import ResultStore, new_run_id

__all__ = ["Experiment", "DEFAULT_LAYOUT"]

DEFAULT_LAYOUT = "single-host"


class Experiment:
    def __init__(self, config: ExperimentConfig, layout: str = DEFAULT_LAYOUT):
        self.layout = config.layout(layout)  # ConfigError naming the choices if unknown
        self.layout_name = layout
        self.config = for_layout(config, layout)

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
        return Experiment(with_overrides(self.config, list(overrides)), self.layout_name)

    def run(
        self,
        on_progress: Callable[[dict], None] | None = None,
        store: bool = True,
        kind: str = "run",
        sweep_id: str | None = None,
    ) -> Result:
        """Run on the layout, store the result (unless ``store=False``) and return it.

        A run that fails once running (an actor died, a deadline passed) is
        stored too, with ``status: failed`` and what it measured until then;
        the :class:`RunFailed` raised then carries that result as ``partial``.
        """
        run_id = new_run_id()
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        labels = {"run_id": run_id, "created_at": created, "kind": kind, "sweep_id": sweep_id}
        nodes: dict = {}
        try:
            with open_executor(self.config, self.layout, run_id) as executor:
                executor.wait_ready(on_progress)
                nodes = executor.nodes()
                raw = executor.run(on_progress)
        except RunFailed as failed:
            result = self._result(failed.partial, nodes, labels, error=str(failed))
            where = ""
            if store:
                self._store(result)
                where = f"; what it measured is stored as {run_id} (status: failed)"
            raise RunFailed(f"{failed}{where}", result.to_dict()) from None
        result = self._result(raw, nodes, labels)
        if store:
            self._store(result)
        return result

    def _result(self, raw: dict, nodes: dict, labels: dict, error: str = "") -> Result:
        exp = self.config.experiment
        tallies = raw.get("tallies") or []
        measured_s = max((t["measured_s"] for t in tallies), default=0.0) if error else None
        series = raw.get("series") or []
        result = Result.from_tallies(
            tallies,
            exp.measured_s if measured_s is None else measured_s,
            name=exp.name,
            layout=self.layout_name,
            actors=summarize_actors(raw.get("actors") or {}, nodes, exp.warmup_s),
            book=summarize_book(series, raw.get("resting") or {}, exp.warmup_s, exp.duration_s),
            series=series,
            failed_polls=raw.get("failed_polls", 0),
            journals=raw.get("journals") or [],
            config=self.config.to_public_dict(),
            environment=describe_environment(),
            status="failed" if error else "ok",
            error=error,
            **labels,
        )
        expected = expected_depth(flow_params(self.config), result.answered_per_s)
        result.book["expected_resting"] = None if expected is None else round(expected)
        result.thresholds_missed = [] if error else missed_thresholds(self.config, result)
        return result

    def _store(self, result: Result) -> None:
        with ResultStore.open(self.config.results.url) as results:
            results.save_run(result.to_dict())


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
