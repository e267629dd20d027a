"""Findings of a sweep: tested changes per layout, where the time goes, layouts compared."""

from lab.analysis.findings import findings
from lab.analysis.intervals import interval_dict


def point(layout, n, runs, p99=5.0, busy=None, bounds=None):
    actors = {
        "engine-0": {"busy": 0.3, "messages": 100, "us_per_message": 2.0},
        "backend-0": {"busy": busy or 0.6, "messages": 100, "us_per_message": 9.0},
        "collector-0": {"busy": 0.0, "messages": 0, "us_per_message": 0.0},
    }
    runs = runs if isinstance(runs, list) else [runs]
    return {
        "values": {"layout": layout, "topology.backends": n},
        "n": n,
        "orders_per_s": interval_dict(runs, bounds),
        "p99_ms": {"mean": p99},
        "actors": actors,
    }


def test_one_run_per_point_claims_no_regression_even_for_a_large_drop():
    out = findings([point("compose", 4, 3163), point("compose", 8, 1400)], "topology.backends")
    assert (
        "compose: topology.backends=8 gave 1,400 orders/s (n=1, no interval) against "
        "3,163 orders/s (n=1, no interval) at topology.backends=4 (-56%)" in out[0]
    )
    assert "one run per point, so no test is possible" in out[0]
    assert "not called a regression or a gain" in out[0]
    assert "a regression" not in out[0].replace("not called a regression", "")


def test_overlapping_runs_are_no_significant_change_for_a_nine_percent_drop():
    pts = [point("a", 4, [1000, 1200, 850]), point("a", 8, [910, 1100, 770])]
    out = findings(pts, "topology.backends")[0]
    assert "(-9%): no significant change at 95% (Welch's t-test on log throughput, p=" in out
    assert "regression" not in out
    before, after = pts[0]["orders_per_s"], pts[1]["orders_per_s"]
    for fig in (before, after):  # both intervals are given
        assert f"95% CI {fig['ci_low']:,.0f} – {fig['ci_high']:,.0f}, n=3" in out


def test_a_clear_drop_with_tight_runs_is_a_regression():
    pts = [point("compose", 4, [3163, 3150, 3170]), point("compose", 8, [2689, 2700, 2680])]
    out = findings(pts, "topology.backends")[0]
    assert "(-15%): a regression (Welch's t-test on log throughput, p<0.001)." in out


def test_a_clear_rise_is_a_gain_and_a_tiny_significant_one_is_called_small():
    gain = findings([point("a", 1, [1000, 1010, 990]), point("a", 2, [1800, 1810, 1790])], "N")
    small = findings([point("a", 1, [1000, 1001, 999]), point("a", 2, [1020, 1021, 1019])], "N")
    assert "a gain of 80% for 2.0x the N (Welch's t-test" in gain[0]
    assert "a small but significant rise, under 5%" in small[0]


def test_search_results_are_judged_by_their_brackets():
    apart = [
        point("a", 4, 5000, bounds=[4800, 5200]),
        point("a", 8, 4000, bounds=[3900, 4100]),
    ]
    overlapping = [apart[0], point("a", 8, 4700, bounds=[4600, 4900])]
    out = findings(apart, "topology.backends")[0]
    assert "4,000 orders/s (search bracket 3,900 – 4,100, n=1)" in out
    assert "(-20%): a regression (the search brackets do not overlap)." in out
    out = findings(overlapping, "topology.backends")[0]
    assert "(-6%): no significant change at 95% (the search brackets overlap)." in out


def test_a_run_that_measured_nothing_is_reported_without_a_test():
    out = findings([point("a", 1, [1000.0, 0.0]), point("a", 2, [900.0, 950.0])], "N")[0]
    assert "a run measured nothing, so no test is possible" in out


def test_the_busiest_stage_comes_first_in_where_the_time_goes():
    out = findings([point("a", 1, 1000), point("a", 2, 900, busy=0.95)], "N")
    assert "backend 95% busy (9.0 µs/message), engine 30% busy" in out[1]
    assert "collector" not in out[1]


def test_where_the_time_goes_says_when_the_host_had_no_core_free():
    quiet, full = point("a", 1, 1000), point("a", 2, 900, busy=0.05)
    for name, cpu in (("engine-0", 0.9), ("backend-0", 0.95)):
        full["actors"][name].update(cpu=cpu, host="h", pid=name, host_cpus=2)
    out = findings([quiet, full], "N")
    assert "backend 5% busy, its process 95% of a core (9.0 µs/message)" in out[1]
    assert "No core was free: h's CPUs were 92% busy (its 2 actor processes used 1.85" in out[1]
    assert "waiting on transport" not in out[1]
    assert "waiting on transport" in findings([quiet, point("a", 2, 900)], "N")[1]


def test_layouts_are_compared_at_the_same_n_by_the_same_test():
    pts = [
        point("single-host", 4, [3000, 3010, 2990]),
        point("single-host", 8, [2600, 3100, 2200]),
        point("three-node", 4, [2000, 2010, 1990]),
        point("three-node", 8, [2500, 2900, 2100]),
        point("three-node", 16, 2500),
    ]
    out = findings(pts, "topology.backends")
    at4 = next(s for s in out if s.startswith("At topology.backends=4,"))
    at8 = next(s for s in out if s.startswith("At topology.backends=8,"))
    assert "three-node gave 2,000 orders/s (95% CI" in at4 and "single-host's 3,000" in at4
    assert "(-33%): lower, significant at 95% (Welch's t-test on log throughput" in at4
    assert "(-5%): no significant difference at 95% (Welch" in at8
    assert not any(s.startswith("At topology.backends=16") for s in out)  # only one layout there


def test_layouts_with_one_run_each_are_not_ranked():
    pts = [point("single-host", 4, 3000), point("three-node", 4, 2000)]
    out = findings(pts, "topology.backends")
    assert out[-1] == (
        "At topology.backends=4, three-node gave 2,000 orders/s (n=1, no interval) against "
        "single-host's 3,000 orders/s (n=1, no interval) (-33%): one run per point, so no "
        "test is possible."
    )
