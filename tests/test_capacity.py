"""lab.run.capacity: the search's bracketing and bisection on a model system, its rule per rate,
and a real search on the quickstart topology (Ray), from Python and from the CLI."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from lab import Experiment
from lab.report.html import write_report
from lab.run.capacity import _Search, capacity_search, judge_rate
from lab.run.result import Result

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def result(rate, p99_ms, overloaded, limited=False):
    return Result(
        run_id=f"run-{rate:g}",
        name="model",
        layout="model",
        orders_per_s=rate * 0.9,
        orders_sent=0,
        orders_acked=0,
        rejects=0,
        errors=0,
        fills=0,
        latency_ms={"p99": p99_ms},
        measured_s=1.0,
        loop="open",
        offered_per_s=rate,
        answered_per_s=rate if not overloaded else rate * 0.5,
        overloaded=overloaded,
        generator_limited=limited,
    )


class ModelSystem:
    """An M/M/1-like system: p99 grows as 1/(1 - load) and it overloads past ``ceiling``."""

    def __init__(self, ceiling, base_ms=1.0, rate=None):
        self.ceiling, self.base_ms, self.rate = ceiling, base_ms, rate
        self.tried = []

    def with_overrides(self, overrides):
        (item,) = overrides
        rate = float(item.split("=", 1)[1])
        return ModelSystem(self.ceiling, self.base_ms, rate)._record(self)

    def _record(self, parent):
        parent.tried.append(self.rate)
        return self

    def run(self, **_):
        load = self.rate / self.ceiling
        if load >= 1:
            return result(self.rate, 1e6, overloaded=True)
        return result(self.rate, self.base_ms / (1 - load), overloaded=False)


@pytest.mark.parametrize("start", [1_000.0, 50_000.0, 900_000.0])
def test_the_search_brackets_then_bisects_to_the_highest_rate_within_the_slo(start):
    system = ModelSystem(ceiling=100_000.0, base_ms=1.0)
    search = _Search(system, slo=10.0, repeat=1, run_kw={}, on_point=None, max_points=40)
    lo, hi = search.bracket(start)
    lo, hi = search.bisect(lo, hi, tolerance=0.02)
    # p99 <= 10 ms holds up to a load of 0.9: 90,000 orders/s.
    assert lo["passed"] and not hi["passed"]
    assert lo["rate_per_s"] <= 90_000 < hi["rate_per_s"]
    assert hi["rate_per_s"] <= lo["rate_per_s"] * 1.02
    assert lo["rate_per_s"] == pytest.approx(90_000, rel=0.03)
    # Bracketing moved by factors of two from the start, then bisection halved the bracket's
    # log-width (ln 2 at first) until it was within 2%.
    assert search.points[0]["rate_per_s"] == start
    bracketing = math.ceil(math.log2(max(start, 90_000) / min(start, 90_000))) + 2
    bisecting = math.ceil(math.log2(math.log(2) / math.log(1.02))) + 1
    assert len(search.points) <= bracketing + bisecting


def test_a_search_that_never_passes_says_so_and_stops():
    system = ModelSystem(ceiling=100.0, base_ms=50.0)  # p99 above the SLO at any rate
    search = _Search(system, slo=10.0, repeat=1, run_kw={}, on_point=None, max_points=40)
    lo, hi = search.bracket(1_000.0)
    assert lo is None and not hi["passed"]
    assert len(search.points) == 11  # the start and ten halvings


def test_a_rate_passes_on_most_of_its_runs_and_a_tie_counts_against_it():
    ok, late, over = result(1, 5, False), result(1, 50, False), result(1, 5, True)
    assert judge_rate([ok, ok, over], slo_p99_ms=10)["passed"]
    tie = judge_rate([ok, over], slo_p99_ms=10)
    assert tie["overloaded"] and not tie["passed"]
    assert not judge_rate([ok, late, late], slo_p99_ms=10)["passed"]  # median p99 50 ms
    limited = judge_rate([result(1, 5, False, limited=True)] * 2, slo_p99_ms=10)
    assert limited["generator_limited"] and not limited["passed"]


SHORT = [
    "experiment.duration_s=3.5",
    "experiment.warmup_s=0.5",
    "experiment.drain_s=1",
    "capacity.tolerance=0.5",
    # Room to halve down to a thirty-second of the start, should a loaded CI need it.
    "capacity.max_points=6",
]


def test_capacity_of_the_quickstart_topology_on_ray(ray_session, tmp_path):
    url = f"sqlite:///{tmp_path}/r.sqlite"
    experiment = Experiment.from_yaml(QUICKSTART, overrides=[*SHORT, f"results.url={url}"])
    seen = []
    found = capacity_search(experiment, slo_p99_ms=200.0, repeat=1, on_point=seen.append)
    assert found["capacity_orders_per_s"] > 0
    assert found["slo_p99_ms"] == 200.0 and found["p99_ms"] <= 200.0
    rates = [p["rate_per_s"] for p in found["points"]]
    assert rates == sorted(rates) and len(seen) == len(rates) <= 6
    for point in found["points"]:
        assert {"offered_per_s", "orders_per_s", "p99_ms", "overloaded", "passed"} <= set(point)
        assert point["passed"] == (not point["overloaded"] and point["p99_ms"] <= 200.0)
    best = next(p for p in found["points"] if p["rate_per_s"] == found["capacity_orders_per_s"])
    assert (
        best["passed"]
        and all(not p["passed"] for p in found["points"] if p["rate_per_s"] > best["rate_per_s"])
        or found["bracket"][1] is None
    )
    assert found["probe"]["chase_ns_per_load"] > 0 and found["loads_per_order"] > 0
    from lab.store.result_store import ResultStore

    with ResultStore.open(url) as store:
        stored = store.find(found["capacity_id"])
        runs = store.list_runs(sweep_id=found["capacity_id"])
    assert stored["capacity_orders_per_s"] == found["capacity_orders_per_s"]
    assert len(runs) == len(rates) + 1  # and the closed-loop run that sized the search
    html = write_report(stored, tmp_path / "report").read_text()
    assert found["capacity_id"] in html and "data:image/png;base64," in html
    assert found["verdict"].split(";")[0] in html


@pytest.mark.slow
def test_lab_capacity_json_prints_one_object(tmp_path):
    sets = [arg for item in SHORT for arg in ("--set", item)]
    proc = subprocess.run(
        [sys.executable, "-m", "lab", "capacity", str(QUICKSTART), "--p99-ms", "200"]
        + ["--repeat", "1", "--json", *sets, "--set", f"results.url=sqlite:///{tmp_path}/r.db"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout)
    assert {"capacity_orders_per_s", "p99_ms", "slo_p99_ms", "points"} <= set(found)
    assert found["slo_p99_ms"] == 200
