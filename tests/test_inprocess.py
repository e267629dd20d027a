"""The in-process executor: the same stages and the same contract as on Ray, without Ray."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actors.load_generator import LoadGenerator
from lab import Experiment
from lab.analysis.bottleneck import host_load
from lab.errors import RunFailed
from lab.store.result_store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
SHORT = ["experiment.duration_s=2", "experiment.warmup_s=0.5"]


def _experiment(tmp_path, layout, *extra):
    overrides = [*SHORT, f"results.url=sqlite:///{tmp_path}/results.sqlite", *extra]
    return Experiment.from_yaml(QUICKSTART, layout=layout, overrides=overrides)


def _shape(result: dict) -> dict:
    """The keys of a result and of its nested figures: what a consumer of the JSON reads."""
    actor = next(iter(result["actors"].values()))
    return {
        "top": set(result),
        "latency": set(result["latency_ms"]),
        "book": set(result["book"]),
        "actors": set(result["actors"]),
        "actor": set(actor),
        "point": set(result["series"][0]),
    }


def test_lab_run_in_process_keeps_the_json_contract_without_ray(tmp_path):
    url = f"sqlite:///{tmp_path}/results.sqlite"
    # A fresh interpreter: `lab run` in-process must neither start nor import Ray.
    script = (
        "import json, sys\n"
        "from lab.cli.main import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as stop:\n"
        "    assert not stop.code, stop.code\n"
        "print(json.dumps({'ray_imported': 'ray' in sys.modules}), file=sys.stderr)\n"
    )
    args = ["run", str(QUICKSTART), "--layout", "in-process", "--json"]
    args += [a for o in [*SHORT, f"results.url={url}"] for a in ("--set", o)]
    done = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert json.loads(done.stderr.strip().splitlines()[-1]) == {"ray_imported": False}
    assert result["layout"] == "in-process" and result["status"] == "ok"
    assert result["orders_acked"] > 0 and result["errors"] == 0
    answered = result["orders_acked"] + result["rejects"]
    assert result["answered_per_s"] == pytest.approx(answered / result["measured_s"], rel=1e-6)
    assert result["book"]["resting_orders"] > 0
    with ResultStore.open(url) as store:
        (listed,) = store.list_runs()
        assert store.get_run(listed["run_id"])["orders_acked"] == result["orders_acked"]


def test_in_process_and_ray_results_have_the_same_shape(ray_session, tmp_path):
    on_ray = _experiment(tmp_path, "single-host").run(store=False).to_dict()
    in_process = _experiment(tmp_path, "in-process").run(store=False).to_dict()
    assert _shape(in_process) == _shape(on_ray)
    assert {a["pid"] for a in in_process["actors"].values()} == {os.getpid()}
    # One process for every stage: counted once, not once per stage.
    (host,) = host_load(in_process["actors"]).values()
    assert host["processes"] == 1 and 0 < host["cpu_used"] <= host["cpus"]
    (host,) = host_load(on_ray["actors"]).values()
    assert host["processes"] == len(on_ray["actors"]) and host["cpu_used"] > 0


def test_a_stage_that_fails_in_process_fails_the_run_and_keeps_its_figures(tmp_path, monkeypatch):
    async def broken(self, window):
        raise RuntimeError("generator broke")

    monkeypatch.setattr(LoadGenerator, "_closed_loop", broken)
    with pytest.raises(RunFailed, match="loadgen-0 failed: RuntimeError: generator broke"):
        _experiment(tmp_path, "in-process").run()
    with ResultStore.open(f"sqlite:///{tmp_path}/results.sqlite") as store:
        (listed,) = store.list_runs()
        assert store.get_run(listed["run_id"])["status"] == "failed"


def test_an_in_process_layout_has_no_nodes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"include: [{ROOT / 'configs' / 'quickstart.yaml'}]\n"
        "layouts:\n  one:\n    kind: inprocess\n    nodes: 2\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "lab", "run", str(bad), "--layout", "one"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "no nodes or placement" in done.stderr and "Traceback" not in done.stderr
