"""settle_heap: what a stage's process holds before its run is frozen out of the collector's
passes, and the youngest generation is collected less often."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import gc, json
from actors.heap import YOUNG_OBJECTS, settle_heap
before = gc.get_threshold()
held = [[i] for i in range(1000)]  # objects the process holds when its run starts
settle_heap()
print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count(), YOUNG_OBJECTS]))
"""


def test_settling_freezes_what_is_held_and_raises_the_young_threshold_only():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    before, after, frozen, young = json.loads(out.stdout)
    assert after == [young, before[1], before[2]] and young > before[0]
    assert frozen >= 1000
