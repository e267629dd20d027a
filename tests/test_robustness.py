"""Nothing hangs: a topology that cannot fit fails at once, a dead actor ends the run naming
it, and what was measured is kept; a sweep keeps its finished points when a later one fails."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lab.config import load_config
from lab.errors import RunFailed
from lab.run.sweep import sweep
from lab.store.result_store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def lab(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "lab", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_a_topology_that_cannot_fit_fails_at_once_with_one_json_object(tmp_path):
    proc = lab(
        "run",
        str(QUICKSTART),
        "--json",
        "--set",
        "resources.backend.num_cpus=4",
        "--set",
        f"results.url=sqlite:///{tmp_path}/r.db",
    )
    out, err = proc.communicate(timeout=120)  # not the silent 300 s wait for a placement
    assert proc.returncode == 2, err[-2000:]
    (line,) = out.strip().splitlines()
    found = json.loads(line)
    assert "needs 9.25 CPUs (2 engine × 0.5, 2 backend × 4, 1 loadgen × 0.25)" in found["error"]
    assert "the cluster has 2, 7.25 short" in found["error"]
    assert "resources.<kind>.num_cpus" in found["error"] and found["exit_code"] == 2
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_shard_killed_mid_run_ends_it_naming_the_actor_and_keeps_what_was_measured(tmp_path):
    db = tmp_path / "r.db"
    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    proc = lab(
        "run",
        str(QUICKSTART),
        "--json",
        "--set",
        "experiment.duration_s=120",
        "--set",
        "experiment.warmup_s=1",
        "--set",
        f"results.url=sqlite:///{db}",
        env={"RAY_TMPDIR": ray_tmp},
    )
    try:
        shard = _wait_for_process(proc.pid, "ShardActor", timeout=240)
        time.sleep(8)  # well into the measured window
        os.kill(shard, signal.SIGKILL)
        killed = time.monotonic()
        out, err = proc.communicate(timeout=120)
        ended = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err[-3000:]
    assert ended < 30, f"the run went on for {ended:.0f} s after the death"
    lines = out.strip().splitlines()
    assert len(lines) == 1, out[:3000]
    (line,) = lines
    found = json.loads(line)
    assert "died" in found["error"] and "engine-" in found["error"]
    assert found["status"] == "failed" and found["orders_acked"] > 0  # measured before
    with sqlite3.connect(db) as conn:
        (summary,) = conn.execute("SELECT summary FROM runs").fetchone()
    stored = json.loads(summary)
    assert stored["status"] == "failed" and stored["run_id"] == found["run_id"]
    assert stored["series"], "the collector's series up to the death is kept"


def _descendants(root: int) -> list[int]:
    """Every process below ``root``, from /proc (parent ids)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _wait_for_process(root_pid: int, word: str, timeout: float) -> int:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        for pid in _descendants(root_pid):
            try:
                if word in Path(f"/proc/{pid}/cmdline").read_text():
                    return pid
            except OSError:
                continue
        time.sleep(0.5)
    raise AssertionError(f"no {word} process appeared under {root_pid}")


def test_a_sweep_whose_third_point_cannot_start_keeps_the_first_two(ray_session, tmp_path):
    url = f"sqlite:///{tmp_path}/r.sqlite"
    config = load_config(
        QUICKSTART,
        ["experiment.duration_s=2", "experiment.warmup_s=0.5", f"results.url={url}"],
    )
    with pytest.raises(RunFailed) as info:
        # 40 backends need 12 CPUs of the session's 4: that point fails before it starts.
        sweep(config, {"topology.backends": [1, 2, 40]}, repeat=1, progress=False)
    message = str(info.value)
    assert "point {'topology.backends': 40} failed" in message
    assert "needs" in message and "CPUs" in message
    assert "the 2 point(s) before it are stored" in message
    partial = info.value.partial
    with ResultStore.open(url) as store:
        stored = store.get_sweep(partial["sweep_id"])
        runs = store.list_runs(sweep_id=partial["sweep_id"])
    assert stored["status"] == "failed"
    assert stored["failed_point"]["values"] == {"topology.backends": 40}
    assert [p["n"] for p in stored["points"]] == [1, 2]
    assert len(runs) == 2
