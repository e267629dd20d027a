"""Every Python example in the README runs as written, each in a fresh interpreter.

Each runs in a scratch directory that links the repository's ``configs/`` (so
its results stay there), with ``LAB_*`` variables that shorten the runs; a
check per example then reads what the example left in its namespace.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Shorter runs than the configs' own, by the loader's environment layer.
SHORT = {"LAB_EXPERIMENT__DURATION_S": "2", "LAB_EXPERIMENT__WARMUP_S": "0.5"}
#: Per example (by its first line), what its namespace must show afterwards.
CHECKS = {
    "from engine import": (
        "from engine import ReportKind\n"
        "kinds = reports['kind'].tolist()\n"
        "assert kinds == [ReportKind.ACK, ReportKind.ACK, ReportKind.FILL], kinds\n"
        "fill = reports[2]\n"
        "assert (fill['qty'], fill['price']) == (3, 10_000), fill\n"
    ),
    "from lab import Experiment": (
        "assert result.status == 'ok' and result.orders_per_s > 0, result.error\n"
        "assert result.actors['engine-0']['messages'] > 0\n"
    ),
    "from lab import sweep": (
        "assert callable(sweep)\n"
        "points = summary['points']\n"
        "assert [p['values']['topology.backends'] for p in points] == [1, 2, 3], points\n"
        "figures = [p['orders_per_s'] for p in points]\n"
        "assert all(f['n'] == 3 and 0 < f['ci_low'] <= f['mean'] for f in figures), figures\n"
    ),
}


def readme_python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_every_readme_example_has_a_check():
    for block in readme_python_blocks():
        matches = [first for first in CHECKS if block.startswith(first)]
        assert len(matches) == 1, f"a README example without one check here: {block[:80]!r}"
    assert len(readme_python_blocks()) == len(CHECKS)


@pytest.mark.slow
@pytest.mark.parametrize("first", sorted(CHECKS))
def test_readme_python_example_runs(first, tmp_path):
    (block,) = [b for b in readme_python_blocks() if b.startswith(first)]
    (tmp_path / "configs").symlink_to(ROOT / "configs", target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "LAB_"))}
    env.update(SHORT, PYTHONPATH=str(ROOT))
    script = block + "\n" + CHECKS[first] + "print(json.dumps('checked'))\n"
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == "checked"
