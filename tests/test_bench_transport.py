"""lab bench transport: no-op and real runs of one topology, and the machine probe beside them."""

from pathlib import Path

from lab.bench.transport import run_transport_bench
from lab.store.result_store import ResultStore

ROOT = Path(__file__).resolve().parents[1]


def test_transport_bench_compares_no_op_with_real_stages_and_stores_the_probe(
    ray_session, tmp_path
):
    url = f"sqlite:///{tmp_path}/r.sqlite"
    sets = ["experiment.duration_s=2", "experiment.warmup_s=0.5", f"results.url={url}"]
    found = run_transport_bench(str(ROOT / "configs" / "quickstart.yaml"), "single-host", sets)
    assert found["transport_orders_per_s"] > 0 and found["real_orders_per_s"] > 0
    ratio = found["real_orders_per_s"] / found["transport_orders_per_s"]
    assert abs(found["real_vs_transport"] - ratio) < 1e-3
    probe = found["probe"]
    assert probe["chase_ns_per_load"] > 0 and probe["compute_ns_per_op"] > 0
    expected = 1e9 / found["real_orders_per_s"] / probe["chase_ns_per_load"]
    assert abs(found["loads_per_real_order"] - expected) < 1e-2 * expected
    with ResultStore.open(url) as store:
        for run_id in (found["transport_run_id"], found["real_run_id"]):
            assert store.get_run(run_id)["environment"]["probe"] == probe
