"""``lab bench transport``: the pipeline's ceiling with no-op stages, beside the real run.

Both runs use the same config, topology and batch size, one after the
other on the same Ray, so the ratio says how much of the transport's
capacity the real matching and risk work leave. The same command measures
the machine probe (:mod:`lab.bench.probe`) over one engine shard's working
set and stores it with both runs (``environment.probe``), so figures from
different days compare through it.
"""

from lab.bench.probe import measure_probe, relative_to_probe
from lab.run.capacity import engine_working_set
from lab.run.executor import runtime_for
from lab.run.experiment import Experiment
from lab.store.result_store import ResultStore

__all__ = ["run_transport_bench"]


def run_transport_bench(config: str, layout: str, overrides: list[str]) -> dict:
    real = Experiment.from_yaml(config, layout=layout, overrides=overrides)
    noop = real.with_overrides(["topology.noop=true"])
    probe = measure_probe(engine_working_set(real))
    with runtime_for(real.layout):
        transport = noop.run(kind="bench-transport")
        matched = real.run(kind="bench-real")
    with ResultStore.open(real.config.results.url) as results:
        for result in (transport, matched):
            result.environment["probe"] = probe
            results.save_run(result.to_dict())
    ratio = matched.orders_per_s / max(transport.orders_per_s, 1e-9)
    return {
        "transport_orders_per_s": transport.orders_per_s,
        "real_orders_per_s": matched.orders_per_s,
        "real_vs_transport": round(ratio, 3),
        "real_p99_ms": matched.latency_ms["p99"],
        "real_errors": matched.errors,
        "batch_size": real.config.topology.batch_size,
        "transport_run_id": transport.run_id,
        "real_run_id": matched.run_id,
        **relative_to_probe(1e9 / max(matched.orders_per_s, 1e-9), probe, per="real_order"),
        "probe": probe,
    }
