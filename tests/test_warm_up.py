"""Warm-up covers every jitted function the stages run in the measured window.

Each case runs in a fresh interpreter, where no kernel is compiled or loaded
yet: the stages warm up as the actors do, then run a short window, and no
Numba dispatcher of the project may gain a signature during that window.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import asyncio, json, sys
import numba
from actors.load_generator import LoadGenerator, RunWindow
from actors.order_flow import FlowParams, OrderFlow
from actors.local import LocalBackendClient as LocalBackend
from tests.pipeline_fixtures import build

def signatures():
    out = {}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("engine", "actors", "lab"):
            for attr, value in vars(module).items():
                if isinstance(value, numba.core.registry.CPUDispatcher):
                    out[f"{name}.{attr}"] = len(value.signatures)
    return out

rate, warm = json.loads(sys.argv[1])
shards, backends = build(n_shards=2, n_backends=2, n_symbols=4)  # warms both stages up
flow = OrderFlow(FlowParams(symbols=4, accounts=100, mean_lifetime_s=0.05), seed=1)
gen = LoadGenerator(0, [LocalBackend(b) for b in backends], flow, rate, 64, 0.002, 100)
if warm:
    gen.warm_up()
before = signatures()
asyncio.run(gen.run(RunWindow.starting_in(0.0, 0.0, 0.5, 0.5)))
after = signatures()
print(json.dumps({k: [before.get(k, 0), n] for k, n in after.items() if n != before.get(k, 0)}))
"""


def compiled_in_window(rate, warm: bool) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps([rate, warm])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("rate", [20_000.0, None], ids=["open-loop", "closed-loop"])
def test_no_kernel_compiles_or_loads_inside_the_window_after_warm_up(rate):
    assert compiled_in_window(rate, warm=True) == {}


def test_without_the_generator_s_warm_up_its_kernels_would_load_inside_the_window():
    # The check above can fail: skip the generator's warm-up and its kernels show up.
    late = compiled_in_window(20_000.0, warm=False)
    assert "actors.order_flow._build" in late and "actors.report_digest._digest" in late


CACHE_SCRIPT = """
import json, sys
import numpy as np
from actors import order_updates
from actors.backend import Backend
from engine.messages import MESSAGE_DTYPE, REPORT_DTYPE

kernels = (order_updates._events, order_updates._records)
if json.loads(sys.argv[1]):
    Backend(0, 1, [], 4, 10).warm_up()
before = [len(k.signatures) for k in kernels]
for n_messages in (0, 1, 3, 50):
    for n_reports in (0, 1, 4, 70):
        messages, reports = np.zeros(n_messages, MESSAGE_DTYPE), np.zeros(n_reports, REPORT_DTYPE)
        order_updates.order_updates(messages, reports)
print(json.dumps([before, [len(k.signatures) for k in kernels]]))
"""


@pytest.mark.parametrize("warm", [True, False])
def test_the_cache_s_records_compile_in_the_backend_s_warm_up(warm):
    out = subprocess.run(
        [sys.executable, "-c", CACHE_SCRIPT, json.dumps(warm)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert (before == after) is warm  # without the warm-up, the batches compile them
