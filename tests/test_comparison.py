"""Sweeps of named settings (``sweep.variants``): what each choice costs, tested; and
figures measured elsewhere set beside a sweep's (``sweep.reference``)."""

from pathlib import Path

import pytest
import yaml

from lab.analysis.comparison import summarize_comparison
from lab.analysis.reference import set_beside
from lab.config import load_config
from lab.errors import ConfigError
from lab.report.console import print_sweep
from lab.report.html import write_report
from lab.run.sweep import sweep
from lab.store.result_store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
VARIANTS = {
    "batching": {"large": {"topology.batch_size": 1024}, "small": {"topology.batch_size": 16}},
}


def _config(tmp_path, extra=()):
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump({"include": [str(QUICKSTART)], "sweep": {"variants": VARIANTS}}))
    url = f"sqlite:///{tmp_path}/r.sqlite"
    sets = ["experiment.duration_s=1", "experiment.warmup_s=0.3", f"results.url={url}", *extra]
    return load_config(path, sets), url


def test_a_sweep_of_variants_sets_each_choice_against_each_key_s_first(tmp_path):
    config, url = _config(tmp_path)
    vary = {"batching": ["large", "small"], "topology.transport": ["ray", "http"]}
    summary = sweep(config, vary, repeat=2, layout="in-process", progress=False)
    assert summary["compare_keys"] == ["batching", "topology.transport"]
    assert summary["status"] == "ok" and summary["n_key"] is None
    points = {tuple(p["values"].values()): p for p in summary["points"]}
    order = [("large", "ray"), ("large", "http"), ("small", "ray"), ("small", "http")]
    assert list(points) == order
    assert points[("large", "ray")]["costs"] == {}  # the reference of both keys
    assert set(points[("large", "http")]["costs"]) == {"topology.transport"}
    both = points[("small", "http")]["costs"]
    assert both["batching"]["vs"] == "large" and both["topology.transport"]["vs"] == "ray"
    # The change is the figures', and the verdict comes from a test on the runs.
    small, large = points[("small", "ray")], points[("large", "ray")]
    cost = small["costs"]["batching"]
    ratio = small["orders_per_s"]["mean"] / large["orders_per_s"]["mean"]
    assert cost["change"] == pytest.approx(ratio - 1)
    assert cost["verdict"] in ("higher", "lower", "no significant change")
    assert cost["method"] and cost["p"] is not None
    assert len(summary["findings"]) == 4  # one per point and key it differs in
    assert all("against" in f for f in summary["findings"])
    # Each variant's settings reached its runs.
    with ResultStore.open(url) as store:
        run = store.get_run(small["run_ids"][0])
        stored = store.get_sweep(summary["sweep_id"])
    assert run["config"]["topology"]["batch_size"] == 16
    assert stored["compare_keys"] == summary["compare_keys"]
    page = write_report(summary, tmp_path / "report").read_text()
    assert "Comparison: quickstart" in page and "vs first batching (large)" in page
    assert (tmp_path / "report" / "comparison.png").stat().st_size > 0


def test_the_console_shows_each_cost_and_the_findings(capsys):
    point = {
        "values": {"persistence": "none"},
        "n": None,
        "orders_per_s_runs": [100.0, 110.0, 105.0],
        "p99_ms_runs": [10.0, 11.0, 10.5],
    }
    slower = {**point, "values": {"persistence": "redis"}, "orders_per_s_runs": [50.0, 52, 51]}
    summary = summarize_comparison([point, slower], ["persistence"])
    summary |= {"name": "t", "sweep_id": "sweep-1", "layout": "single-host", "repeat": 3}
    from rich.console import Console

    print_sweep(summary, Console(width=200, force_terminal=False))
    out = capsys.readouterr().out
    assert "vs first persistence" in out and "-51% (sig.)" in out
    assert "persistence=redis" in out and "significant at 95%" in out


def test_an_unknown_variant_is_a_config_error(tmp_path):
    config, _ = _config(tmp_path)
    with pytest.raises(ConfigError, match="'tiny' is not one of sweep.variants.batching"):
        sweep(config, {"batching": ["tiny"]}, store=False, layout="in-process")
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump({"sweep": {"variants": VARIANTS, "vary": {"batching": ["large", "tiny"]}}})
    )
    with pytest.raises(ConfigError, match=r"vary.batching: tiny not in variants.batching"):
        load_config(path)


def test_the_shipped_persistence_cost_sweep_is_stores_by_transport():
    config = load_config(ROOT / "configs" / "persistence-cost.yaml")
    assert config.sweep.vary == {
        "persistence": ["none", "redis", "postgres-async", "postgres-sync"],
        "transport": ["actor", "http"],
    }
    sync = config.sweep.variants["persistence"]["postgres-sync"]
    assert sync["platform.durability"] == "sync" and sync["platform.journal"].startswith("postgres")


def test_a_reference_is_set_beside_the_points_with_its_ratio():
    summary = {
        "points": [
            {"values": {"topology.backends": 4}, "orders_per_s": _figure([1500.0, 1600, 1550])},
            {"values": {"topology.backends": 8}, "orders_per_s": _figure([1300.0])},
            {"values": {"topology.backends": 2}, "orders_per_s": _figure([900.0, 950])},
        ],
        "findings": ["earlier"],
    }
    reference = load_config(ROOT / "configs" / "seed-platform.yaml").sweep.reference
    set_beside(summary, reference.model_dump())
    four, eight, two = summary["points"]
    assert four["reference"]["orders_per_s"] == 3163
    assert four["reference"]["ratio"] == pytest.approx(four["orders_per_s"]["mean"] / 3163)
    low, high = four["reference"]["ratio_interval"]
    assert low < four["reference"]["ratio"] < high
    assert eight["reference"]["ratio"] == pytest.approx(1300 / 2689)
    assert eight["reference"]["ratio_interval"] is None  # one run, no interval
    assert "reference" not in two
    assert summary["findings"][0] == "earlier" and len(summary["findings"]) == 3
    assert "0.48× the 2,689 orders/s of the original platform" in summary["findings"][2]


def _figure(runs):
    from lab.analysis.intervals import interval_dict

    return interval_dict(runs)
