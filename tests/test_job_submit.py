"""`ray job submit` against a cluster started with `ray start --head` runs a lab job end to end."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lab.store.result_store import ResultStore
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_ray_job_submit_runs_the_quickstart_and_stores_its_result(tmp_path):
    gcs, dashboard = free_port(), free_port()
    # Every other port too: the test session's own Ray already holds the agent's
    # default (52365), and a head whose agent cannot bind never takes a job
    # ("No available agent").
    agent_ports = [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
    ]
    # Ray 2.60 turns token auth on for `ray start` clusters but its job CLI only
    # sends the token (~/.ray/auth_token) when told that auth is on.
    # A short temp dir: Ray's socket paths must fit in 107 bytes.
    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    env = {
        **os.environ,
        "RAY_TMPDIR": ray_tmp,
        "RAY_AUTH_MODE": "token",
        # The job's `python` is looked up on the cluster's PATH: this venv's.
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("RAY_ADDRESS", None)
    # --block keeps the head in the foreground so that this test alone stops it
    # (`ray stop` would stop every Ray on the machine, the test session's too).
    head = subprocess.Popen(
        [
            BIN / "ray",
            "start",
            "--head",
            "--block",
            f"--port={gcs}",
            "--num-cpus=4",
            f"--dashboard-port={dashboard}",
            "--dashboard-host=127.0.0.1",
            "--object-store-memory=150000000",
            "--include-dashboard=true",
            *agent_ports,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        address = f"http://127.0.0.1:{dashboard}"
        _wait_for_dashboard(BIN, address, env, head)
        url = f"sqlite:///{tmp_path}/results.sqlite"
        job = _submit(
            [
                BIN / "ray",
                "job",
                "submit",
                "--address",
                address,
                "--working-dir",
                ".",
                "--",
                "python",
                "-m",
                "lab",
                "run",
                "configs/quickstart.yaml",
                "--json",
                "--set",
                "experiment.duration_s=3",
                "--set",
                "experiment.warmup_s=1",
                "--set",
                f"results.url={url}",
            ],
            env,
        )
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        assert "succeeded" in job.stdout
        with ResultStore.open(url) as store:
            (run,) = store.list_runs()
            stored = store.get_run(run["run_id"])
        assert stored["orders_acked"] > 0 and stored["errors"] == 0
        assert stored["name"] == "quickstart"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _submit(command, env, timeout_s=120):
    """``ray job submit``, again while the head's job agent is not up yet.

    The dashboard answers ``ray job list`` before its agent registers; a submit in
    between fails with "No available agent" (a start-up race, not the job's).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        job = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        if "No available agent" not in job.stderr or time.monotonic() > deadline:
            return job
        time.sleep(2)


def _wait_for_dashboard(bin_dir, address, env, head, timeout_s=90):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and head.poll() is None:
        probe = subprocess.run(
            [bin_dir / "ray", "job", "list", "--address", address],
            env=env,
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0:
            return
        time.sleep(1)
    if head.poll() is not None:
        raise AssertionError(f"ray start exited: {head.stdout.read().decode()[-3000:]}")
    raise AssertionError(f"the Ray dashboard at {address} did not come up")
