"""Sweeps: points in sequence, summary with fits and findings, stored, reported."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lab.config import load_config
from lab.errors import ConfigError
from lab.run.sweep import parse_vary, sweep
from lab.store.result_store import ResultStore

ROOT = Path(__file__).resolve().parents[1]


def test_parse_vary_and_its_errors():
    assert parse_vary(["topology.backends=1, 2,4"]) == {"topology.backends": ["1", "2", "4"]}
    for bad in ("topology.backends", "=1,2", "topology.backends="):
        with pytest.raises(ConfigError):
            parse_vary([bad])


def test_a_bad_point_is_refused_before_anything_runs(tmp_path):
    config = load_config(ROOT / "configs" / "quickstart.yaml")
    with pytest.raises(ConfigError, match="topology.backends"):
        sweep(config, {"topology.backends": ["1", "two"]}, store=False)
    with pytest.raises(ConfigError, match="nothing to sweep"):
        sweep(config, None, store=False)


def test_sweep_runs_points_and_stores_summary(ray_session, tmp_path):
    url = f"sqlite:///{tmp_path}/r.sqlite"
    config = load_config(
        ROOT / "configs" / "quickstart.yaml",
        ["experiment.duration_s=2.5", "experiment.warmup_s=0.5", f"results.url={url}"],
    )
    seen = []
    summary = sweep(
        config,
        {"topology.backends": [1, 2]},
        repeat=2,
        on_run=lambda values, result: seen.append((values, result.run_id)),
    )
    assert [p["n"] for p in summary["points"]] == [1, 2]
    assert len(seen) == 4
    for p in summary["points"]:
        assert len(p["orders_per_s"]["runs"]) == 2
        ops = p["orders_per_s"]
        assert ops["ci_low"] <= ops["mean"] <= ops["ci_high"]
        assert p["p99_ms"]["mean"] > 0
    assert summary["usl"]["ok"] is False and "at least 6" in summary["usl"]["note"]
    assert summary["findings"] and "topology.backends=2" in summary["findings"][0]
    with ResultStore.open(url) as store:
        stored = store.get_sweep(summary["sweep_id"])
        runs = store.list_runs(sweep_id=summary["sweep_id"])
    assert stored["points"] == summary["points"]
    assert len(runs) == 4


def test_a_sweep_repeats_each_point_three_times_unless_told(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        f"include: [{ROOT / 'configs' / 'quickstart.yaml'}]\n"
        "experiment: {duration_s: 1, warmup_s: 0.2}\n"
        "sweep: {vary: {topology.backends: [1, 2]}}\n"
    )
    config = load_config(path)
    assert config.sweep.repeat == 3
    summary = sweep(config, None, layout="in-process", store=False)
    for point in summary["points"]:
        ops = point["orders_per_s"]
        assert len(ops["runs"]) == 3 and ops["n"] == 3
        assert 0 < ops["ci_low"] <= ops["mean"] <= ops["ci_high"]  # an interval for every point


@pytest.mark.slow
def test_six_point_sweep_on_three_emulated_nodes_from_one_command(tmp_path):
    """The issue's 'done': one command, 6 points on the emulated three-node layout, a report,
    and nothing left running afterwards."""
    url = f"sqlite:///{tmp_path}/r.sqlite"
    # A Ray temp dir of its own tells this cluster's processes from any other Ray's.
    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab",
            "sweep",
            "configs/sweep-three-node.yaml",
            "--json",
            "--report",
            str(tmp_path / "report"),
            "--set",
            "experiment.duration_s=3",
            "--set",
            "experiment.warmup_s=1",
            "--set",
            f"results.url={url}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "RAY_TMPDIR": ray_tmp},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert [p["n"] for p in summary["points"]] == [1, 2, 3, 4, 5, 6]
    assert summary["usl"]["ok"] is True
    assert set(summary["usl"]) >= {"lambda", "sigma", "kappa", "peak_n", "r2"}
    assert all(p["values"]["layout"] == "three-node" for p in summary["points"])
    # Actors really were spread over three nodes.
    nodes = {a["node_id"] for a in summary["points"][-1]["actors"].values()}
    assert len(nodes) == 3
    html = Path(summary["report"]).read_text()
    assert summary["sweep_id"] in html and html.count("data:image/png;base64,") >= 4
    left = subprocess.run(["pgrep", "-f", ray_tmp], capture_output=True, text=True).stdout
    assert left == "", f"processes of the emulated cluster still running: {left}"
    shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_a_capacity_sweep_puts_each_point_s_capacity_and_bracket_in_the_summary(
    ray_session, tmp_path
):
    config = load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            "experiment.duration_s=2.5",
            "experiment.warmup_s=0.5",
            "experiment.drain_s=1",
            "capacity.tolerance=0.5",
            "capacity.max_points=3",
            # Well below the topology's ~170k: if a loaded machine fails it, the
            # search halves twice and still finds a rate that passes.
            "capacity.start_per_s=60000",
            f"results.url=sqlite:///{tmp_path}/r.sqlite",
        ],
    )
    heard = []
    summary = sweep(
        config,
        {"topology.backends": [1, 2]},
        repeat=1,
        capacity=True,
        slo_p99_ms=200.0,
        on_capacity_point=lambda values, point: heard.append((values, point["rate_per_s"])),
    )
    assert summary["figure"] == "capacity"
    assert {values["topology.backends"] for values, _ in heard} == {1, 2}
    for point in summary["points"]:
        figure = point["orders_per_s"]
        assert figure["mean"] == point["capacity"]["capacity_orders_per_s"] > 0
        lo, hi = point["capacity"]["bracket"]
        if hi is not None:  # the search's bracket is the point's interval
            assert figure["interval"] == "search"
            assert (figure["ci_low"], figure["ci_high"]) == (lo, hi)
        assert point["p99_ms"]["mean"] <= 200.0
