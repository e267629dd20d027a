"""The README's `ray start` / `ray job submit` sequence, walked line by line as written.

The block marked in the README runs in a copy of the repository (so that its
``results/`` is the copy's), with its own ``RAY_TMPDIR`` (so that its Ray is
apart from the test session's). Its last line, ``ray stop``, is the one not
run: it would stop every Ray on the machine, the session's too. The
processes of its Ray are stopped instead, found by their ``RAY_TMPDIR``.
"""

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

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
MARK = "<!-- walked by tests/test_job_submit.py, line by line -->"
STOP = ".venv/bin/ray stop"
#: What the copy leaves out: caches, results and the venv (linked instead).
_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "results", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache"
)


def readme_sequence() -> list[str]:
    """The lines of the README's job-submit block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert MARK in text, "the README lost its job-submit block"
    block = text.split(MARK, 1)[1].split("```bash\n", 1)[1].split("\n```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_the_readme_job_submit_sequence_runs_and_its_result_is_listed(tmp_path):
    lines = readme_sequence()
    assert lines[-1] == STOP and STOP not in lines[:-1]
    work = tmp_path / "repo"
    shutil.copytree(ROOT, work, ignore=_NOT_COPIED)
    (work / ".venv").symlink_to(VENV, target_is_directory=True)
    # A short temp dir: Ray's socket paths must fit in 107 bytes.
    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "LAB_"))}
    env["RAY_TMPDIR"] = ray_tmp
    script = "set -euo pipefail\n" + "\n".join(lines[:-1]) + "\n"
    try:
        walked = subprocess.run(
            ["bash", "-c", script],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        out = walked.stdout + walked.stderr
        assert walked.returncode == 0, out[-4000:]
        assert "succeeded" in out
        url = f"sqlite:///{work}/results/lab.sqlite"
        with ResultStore.open(url) as store:
            (run,) = store.list_runs()
            stored = store.get_run(run["run_id"])
        assert stored["name"] == "quickstart" and stored["status"] == "ok"
        assert stored["orders_acked"] > 0 and stored["errors"] == 0
        # `lab results list`, the block's own line, found it.
        assert run["run_id"] in walked.stdout
    finally:
        _stop_processes_of(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _stop_processes_of(ray_tmp: str, grace_s: float = 15.0) -> None:
    """Stop every process started with ``RAY_TMPDIR=ray_tmp``: TERM, then KILL the late."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _pids_with_env("RAY_TMPDIR", ray_tmp):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while _pids_with_env("RAY_TMPDIR", ray_tmp) and time.monotonic() < deadline:
            time.sleep(0.5)


def _pids_with_env(key: str, value: str) -> list[int]:
    entry = f"{key}={value}".encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                if entry in fh.read().split(b"\0"):
                    pids.append(int(name))
        except OSError:  # gone, or not ours to read
            continue
    return pids
