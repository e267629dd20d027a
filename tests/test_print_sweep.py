"""lab.report.console.print_sweep: intervals and their n, the efficiency reference, fits."""

import io

import numpy as np
from rich.console import Console

from lab.analysis.findings import findings
from lab.analysis.intervals import mean_ci
from lab.analysis.scaling import usl_throughput
from lab.analysis.sweep_summary import summarize_sweep
from lab.report.console import print_sweep

FALLING = [332_989, 250_000, 200_000, 240_000, 150_000, 180_000]  #: the issue's sweep


def _printed(summary: dict) -> str:
    out = io.StringIO()
    summary = {"name": "s", "sweep_id": "sweep-1", "layout": "single-host", "repeat": 1} | summary
    print_sweep(summary, Console(file=out, width=250, color_system=None))
    return out.getvalue()


def _point(n, runs, layout=None):
    values = {"topology.backends": n} | ({"layout": layout} if layout else {})
    return {"values": values, "n": n, "orders_per_s_runs": runs, "p99_ms_runs": [1.0] * len(runs)}


def test_one_run_has_no_interval_and_a_fit_on_its_bound_is_put_in_words():
    summary = summarize_sweep([_point(n, [x]) for n, x in zip(range(1, 7), FALLING, strict=True)])
    text = _printed(summary)
    assert "n=1, no interval" in text
    assert "332,989 – 332,989" not in text  # the zero-width interval of the issue
    assert "adding backends never helped; the best point is topology.backends = 1" in text
    assert "N*=0.0" not in text and "peak N*" not in text
    assert "efficiency vs N=1" in text
    assert "46% below the peak at the largest N, untested" in text
    assert "retrograde scaling" not in text  # one run per point cannot show it


def test_intervals_carry_their_n_and_efficiency_names_its_reference():
    runs = {2: [1000.0, 1500.0], 4: [1900.0, 2100.0], 8: [3000.0, 3300.0]}
    summary = summarize_sweep([_point(n, r) for n, r in runs.items()])
    text = _printed(summary)
    first = summary["points"][0]["orders_per_s"]
    assert f"{first['ci_low']:,.0f} – {first['ci_high']:,.0f} (n=2)" in text
    assert first["ci_low"] > 0 and mean_ci(runs[2])[1] < 0  # the old, arithmetic bound
    assert "efficiency vs N=2" in text


def test_a_poor_fit_is_flagged_and_layouts_are_fitted_apart():
    zigzag = [1000, 3000, 1200, 3100, 1100, 3050, 1150, 3080]
    ns = (1, 2, 4, 8, 12, 16, 24, 32)
    flat = [_point(n, [x]) for n, x in zip(ns, zigzag, strict=True)]
    assert "poor fit" in _printed(summarize_sweep(flat))
    points = [
        _point(n, [v, v * 1.01], layout)
        for layout, lam in (("single-host", 10_000), ("three-node", 6_000))
        for n, v in zip(ns, usl_throughput(np.array(ns), lam, 0.05, 0.002), strict=True)
    ]
    summary = summarize_sweep(points)
    summary["findings"] = findings(summary["points"], "topology.backends")
    text = _printed(summary)
    assert "single-host USL: λ=" in text and "three-node USL: λ=" in text
    assert "At topology.backends=1, three-node gave" in text
