"""``lab bench transport``: the pipeline's ceiling with no-op stages, beside the real run.

Both runs use the same config, topology and batch size, one after the
other on the same Ray, so the ratio says how much of the transport's
capacity the real matching and risk work leave.
"""

from lab.experiment import Experiment
from lab.runtime import RayRuntime

__all__ = ["run_transport_bench"]


def run_transport_bench(config: str, layout: str, overrides: list[str]) -> dict:
    real = Experiment.from_yaml(config, layout=layout, overrides=overrides)
    noop = real.with_overrides(["topology.noop=true"])
    with RayRuntime(real.layout):
        transport = noop.run(kind="bench-transport")
        matched = real.run(kind="bench-real")
    return {
        "transport_orders_per_s": transport.orders_per_s,
        "real_orders_per_s": matched.orders_per_s,
        "real_vs_transport": round(matched.orders_per_s / max(transport.orders_per_s, 1e-9), 3),
        "real_p99_ms": matched.latency_ms["p99"],
        "real_errors": matched.errors,
        "batch_size": real.config.topology.batch_size,
        "transport_run_id": transport.run_id,
        "real_run_id": matched.run_id,
    }
