"""lab.analysis.scaling: USL and Amdahl fits, efficiency, retrograde, intervals, bottlenecks."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from lab.analysis.bottleneck import (
    SATURATION_BUSY,
    bottleneck,
    first_saturated,
    host_load,
    stage_of,
)
from lab.analysis.intervals import mean_ci
from lab.analysis.scaling import (
    MIN_POINTS,
    POOR_R2,
    amdahl_throughput,
    efficiency,
    fit_amdahl,
    fit_usl,
    retrograde,
    usl_throughput,
)
from lab.analysis.sweep_summary import describe_scaling, efficiency_label, summarize_sweep

N = np.array([1, 2, 4, 8, 12, 16, 24, 32], dtype=float)


def _sweep_points(runs: int = 3, seed: int = 0) -> list[dict]:
    """Synthetic sweep: USL throughput with 2% noise, backends busier as N grows."""
    rng = np.random.default_rng(seed)
    points = []
    for n in N:
        mean = usl_throughput(n, 10_000, 0.04, 0.002)
        actors = {
            f"backend-{i}": {"busy": min(0.99, 0.1 + 0.03 * n), "max_queue": int(10 * n)}
            for i in range(int(n))
        }
        actors |= {
            "engine-0": {"busy": 0.3, "max_queue": 5},
            "loadgen-0": {"busy": 0.5, "max_queue": 0},
            "collector-0": {"busy": 0.99, "max_queue": 0},
        }
        points.append(
            {
                "values": {"topology.backends": int(n)},
                "n": float(n),
                "orders_per_s_runs": list(mean * (1 + rng.normal(0, 0.02, runs))),
                "p99_ms_runs": list(0.5 + 0.05 * n + rng.normal(0, 0.01, runs)),
                "actors": actors,
                "offered_rate": None,
            }
        )
    return points


# -- fits ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "lam, sigma, kappa", [(1000, 0.05, 0.002), (25_000, 0.2, 0.0005), (500, 0.01, 0.01)]
)
def test_usl_fit_recovers_exact_parameters(lam, sigma, kappa):
    fit = fit_usl(N, usl_throughput(N, lam, sigma, kappa))
    assert fit.ok and fit.note == ""
    assert fit.lambda_ == pytest.approx(lam, rel=1e-4)
    assert fit.sigma == pytest.approx(sigma, rel=1e-3, abs=1e-6)
    assert fit.kappa == pytest.approx(kappa, rel=1e-3, abs=1e-8)
    assert fit.peak_n == pytest.approx(math.sqrt((1 - sigma) / kappa), rel=1e-3)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.n_points == len(N)


def test_usl_fit_recovers_parameters_from_noisy_repeats():
    rng = np.random.default_rng(42)
    n = np.repeat(N, 5)
    x = usl_throughput(n, 1000, 0.05, 0.002) * (1 + rng.normal(0, 0.01, n.size))
    fit = fit_usl(n, x)
    assert fit.ok
    assert fit.lambda_ == pytest.approx(1000, rel=0.03)
    assert fit.sigma == pytest.approx(0.05, abs=0.01)
    assert fit.kappa == pytest.approx(0.002, rel=0.15)
    assert fit.peak_n == pytest.approx(math.sqrt(0.95 / 0.002), rel=0.1)
    assert fit.r2 > 0.98
    assert fit.n_points == len(N)  # distinct N, not observations


def test_usl_fit_keeps_parameters_within_bounds():
    # Superlinear data would want σ < 0; the bounds hold it at 0.
    fit = fit_usl(N, 100 * N**1.1)
    assert fit.ok
    assert fit.lambda_ > 0 and 0 <= fit.sigma <= 1 and fit.kappa >= 0


def test_linear_data_gives_no_peak():
    fit = fit_usl(N, 100 * N)
    assert fit.ok and fit.kappa == pytest.approx(0, abs=1e-9)
    assert fit.sigma == pytest.approx(0, abs=1e-9)
    if fit.kappa == 0:
        assert fit.peak_n == math.inf


@pytest.mark.parametrize("fit, model", [(fit_usl, "USL"), (fit_amdahl, "Amdahl")])
def test_too_few_points_is_not_ok_and_says_why(fit, model):
    n = N[: MIN_POINTS - 1]
    result = fit(np.repeat(n, 3), usl_throughput(np.repeat(n, 3), 100, 0.1, 0.01))
    assert not result.ok
    assert result.note == f"{model} needs at least 6 points, got {MIN_POINTS - 1}"
    assert math.isnan(result.lambda_) and math.isnan(result.sigma)


def test_degenerate_input_does_not_raise():
    assert not fit_usl([], []).ok
    assert not fit_usl(N, np.zeros_like(N)).ok
    assert fit_usl(N, [np.nan] * len(N)).note == "USL needs at least 6 points, got 0"


def test_amdahl_fit_on_amdahl_data():
    fit = fit_amdahl(N, amdahl_throughput(N, 800, 0.1))
    assert fit.ok
    assert fit.lambda_ == pytest.approx(800, rel=1e-4)
    assert fit.sigma == pytest.approx(0.1, rel=1e-3)
    assert fit.ceiling == pytest.approx(8000, rel=1e-3)
    assert fit.r2 == pytest.approx(1.0)


def test_usl_fit_on_amdahl_data_finds_no_coherency():
    fit = fit_usl(N, amdahl_throughput(N, 800, 0.1))
    assert fit.kappa == pytest.approx(0, abs=1e-7)
    assert fit.sigma == pytest.approx(0.1, rel=1e-3)


# -- efficiency, retrograde, confidence intervals ------------------------------


def test_efficiency_of_linear_series_is_one():
    np.testing.assert_allclose(efficiency(N, 250 * N), 1.0)


def test_efficiency_without_n_equal_one_is_relative_to_smallest_n():
    n = np.array([2, 4, 8])
    np.testing.assert_allclose(efficiency(n, [200, 300, 400]), [1.0, 0.75, 0.5])


def test_efficiency_matches_definition():
    x = usl_throughput(N, 1000, 0.05, 0.002)
    np.testing.assert_allclose(efficiency(N, x), x / (N * x[0]))


def _three_runs(n, x, spread=0.01):
    """Each point measured three times, ``spread`` apart."""
    return np.repeat(n, 3), np.repeat(x, 3) * np.tile([1 - spread, 1, 1 + spread], len(n))


def test_retrograde_detected_past_the_usl_peak():
    x = usl_throughput(N, 1000, 0.05, 0.01)  # N* ≈ 9.7
    found = retrograde(*_three_runs(N, x))
    assert found and found.detected and found.tested
    assert found.peak_n == 8
    assert found.start_n == 16  # N=12 is only ~2% below the peak
    assert found.drop == pytest.approx(1 - x[-1] / x.max())


def test_retrograde_is_not_called_on_single_runs_however_far_they_fall():
    x = usl_throughput(N, 1000, 0.05, 0.01)
    found = retrograde(N, x)  # one run per N: nothing can be tested
    assert not found and found.tested is False and found.start_n is None
    assert found.peak_n == 8 and found.drop == pytest.approx(1 - x[-1] / x.max())


def test_retrograde_not_detected_on_linear_or_flattening_series():
    assert not retrograde(*_three_runs(N, 100 * N))
    assert not retrograde(*_three_runs(N, amdahl_throughput(N, 100, 0.2)))


def test_retrograde_ignores_a_drop_within_noise():
    x = 100 * N.copy()
    x[-1] = x[-2] * 0.98  # 2% below the peak: under the 5% tolerance, though significant
    assert not retrograde(*_three_runs(N, x, spread=0.001))


def test_retrograde_needs_the_drop_to_exceed_the_confidence_interval():
    n = np.repeat([1, 2, 3], 3)
    wide = [10, 20, 30, 50, 100, 150, 60, 90, 120]  # last mean 90 vs peak 100, CIs wide
    assert not retrograde(n, wide) and retrograde(n, wide).tested
    tight = [19, 20, 21, 99, 100, 101, 89, 90, 91]
    assert retrograde(n, tight).start_n == 3


@pytest.mark.parametrize("values", [[1.0, 2.0, 4.0], [10, 11, 9, 10.5, 12], np.arange(30.0)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_mean_ci_matches_scipy_t_interval(values, confidence):
    mean, low, high = mean_ci(values, confidence)
    v = np.asarray(values, dtype=float)
    expected = stats.t.interval(confidence, v.size - 1, loc=v.mean(), scale=stats.sem(v))
    assert mean == pytest.approx(v.mean())
    assert (low, high) == pytest.approx(expected)


def test_mean_ci_of_one_value_has_zero_width():
    assert mean_ci([3.5]) == (3.5, 3.5, 3.5)


def test_mean_ci_of_nothing_raises():
    with pytest.raises(ValueError):
        mean_ci([])


# -- bottlenecks ---------------------------------------------------------------


def test_stage_of_strips_the_index():
    assert stage_of("engine-0") == "engine"
    assert stage_of("backend-12") == "backend"
    assert stage_of("load-gen-3") == "load-gen"
    assert stage_of("collector") == "collector"


def test_bottleneck_names_stage_with_highest_busy():
    actors = {
        "engine-0": {"busy": 0.4, "max_queue": 10, "host": "a"},
        "engine-1": {"busy": 0.6, "max_queue": 3},
        "backend-0": {"busy": 0.95, "max_queue": 200},
        "backend-1": {"busy": 0.85, "max_queue": 150},
        "loadgen-0": {"busy": 0.5, "max_queue": 0},
        "collector-0": {"busy": 1.0, "max_queue": 0},  # an observer: never the bottleneck
        "engine-2": {"t_s": 1.0, "error": "RayActorError"},  # errored: ignored
    }
    found = bottleneck(actors)
    assert found["stage"] == "backend"
    assert found["busy"] == 0.95
    assert found["actor"] == "backend-0"
    assert found["stages"]["engine"] == {
        "actors": 2,
        "busy_mean": 0.5,
        "busy_max": 0.6,
        "busiest_actor": "engine-1",
        "max_queue": 10,
    }
    assert found["stages"]["backend"]["busy_mean"] == pytest.approx(0.9)
    assert "collector" in found["stages"]
    assert "backend saturated first" in found["explanation"]
    assert "backend-0" in found["explanation"] and "95%" in found["explanation"]


def test_bottleneck_ties_go_to_the_deeper_queue():
    actors = {
        "engine-0": {"busy": 0.9, "max_queue": 5},
        "backend-0": {"busy": 0.9, "max_queue": 50},
    }
    assert bottleneck(actors)["stage"] == "backend"


def test_bottleneck_says_when_nothing_saturated_and_when_there_is_nothing():
    found = bottleneck({"engine-0": {"busy": 0.3, "max_queue": 1}})
    assert found["stage"] == "engine" and found["explanation"].startswith("No stage saturated")
    empty = bottleneck({})
    assert empty["stage"] is None and empty["stages"] == {}


def test_host_load_counts_each_process_once_and_names_a_full_host():
    # Two Ray nodes emulated on one 2-CPU host; the backends share no process, the
    # in-process stages on host "b" share one.
    actors = {
        "loadgen-0": {"busy": 0.06, "cpu": 0.55, "host": "a", "pid": 1, "host_cpus": 2},
        "backend-0": {"busy": 0.02, "cpu": 0.6, "host": "a", "pid": 2, "host_cpus": 2},
        "engine-0": {"busy": 0.04, "cpu": 0.7, "host": "a", "pid": 3, "host_cpus": 2},
        "engine-1": {"busy": 0.3, "cpu": 0.5, "host": "b", "pid": 9, "host_cpus": 4},
        "backend-1": {"busy": 0.2, "cpu": 0.5, "host": "b", "pid": 9, "host_cpus": 4},
        "engine-2": {"t_s": 1.0, "error": "RayActorError"},  # errored: ignored
    }
    hosts = host_load(actors)
    # Without the host's own figure, the share is what the actors' processes used.
    assert hosts["a"] == {"cpus": 2, "cpu_used": 1.85, "processes": 3, "share": 0.925}
    assert hosts["b"] == {"cpus": 4, "cpu_used": 0.5, "processes": 1, "share": 0.125}
    found = bottleneck(actors)
    assert found["host_saturated"] == "a" and found["stage"] == "engine"
    text = found["explanation"]
    assert text.startswith("No stage saturated in its own work")
    assert "a's CPUs were 92% busy (its 3 actor processes used 1.85 of its 2 CPUs)" in text
    assert "CPUs are the limit" in text
    # The host's own figure counts every process on it (Ray's too): it decides.
    actors["engine-0"]["cpu"] = 0.2
    assert bottleneck(actors)["host_saturated"] is None
    assert "The limit is elsewhere" in bottleneck(actors)["explanation"]
    for name in ("loadgen-0", "backend-0", "engine-0"):
        actors[name]["host_busy"] = 0.97 if name != "engine-0" else 0.99
    assert host_load(actors)["a"]["share"] == pytest.approx(0.9767, abs=1e-4)
    assert bottleneck(actors)["host_saturated"] == "a"
    assert host_load({"engine-0": {"busy": 0.3}}) == {}


def test_first_saturated_finds_the_smallest_n():
    points = _sweep_points()
    found = first_saturated(points)
    # backends: busy = 0.1 + 0.03 N reaches 0.9 first at N = 32 (N = 24 gives 0.82)
    assert found["n"] == 32 and found["stage"] == "backend"
    assert found["busy"] >= SATURATION_BUSY
    assert first_saturated(points, threshold=0.55)["n"] == 16  # loadgen sits at 0.5
    assert first_saturated(points[:3])["n"] is None


# -- a whole sweep -------------------------------------------------------------


def test_summarize_sweep_keys_and_json():
    summary = summarize_sweep(list(reversed(_sweep_points())))  # order must not matter
    text = json.dumps(summary, allow_nan=False)  # raises on NaN or infinity
    assert json.loads(text) == summary
    assert {"points", "usl", "amdahl", "retrograde", "bottleneck"} <= set(summary)
    assert {"lambda", "sigma", "kappa", "peak_n", "r2", "ok", "note"} <= set(summary["usl"])
    assert [p["n"] for p in summary["points"]] == list(N)
    first = summary["points"][0]
    assert {"values", "n", "orders_per_s", "p99_ms", "efficiency", "actors"} <= set(first)
    assert {"mean", "ci_low", "ci_high", "runs", "n", "interval"} <= set(first["orders_per_s"])
    assert first["orders_per_s"]["mean"] == pytest.approx(
        stats.gmean(first["orders_per_s"]["runs"])
    )
    assert first["orders_per_s"]["n"] == 3 and first["orders_per_s"]["interval"] == "t-log"
    assert first["efficiency"] == pytest.approx(1.0)
    assert summary["efficiency_reference_n"] == 1 and first["efficiency_reference_n"] == 1
    assert summary["n_key"] == "topology.backends"  # inferred from the points' values
    assert summary["usl"]["poor"] is False and summary["usl"]["caveats"] == []
    assert summary["usl"]["ok"]
    assert summary["usl"]["sigma"] == pytest.approx(0.04, abs=0.015)
    assert summary["usl"]["peak_n"] == pytest.approx(math.sqrt(0.96 / 0.002), rel=0.15)
    assert summary["bottleneck"]["stage"] == "backend"
    assert "N*≈" in summary["interpretation"]


def test_summarize_sweep_with_too_few_points_is_still_json():
    points = _sweep_points(runs=1)[:3]
    points.append({"values": {}, "n": 64, "orders_per_s_runs": [], "p99_ms_runs": [], "actors": {}})
    summary = summarize_sweep(points)
    json.dumps(summary, allow_nan=False)
    assert not summary["usl"]["ok"] and summary["usl"]["lambda"] is None
    assert summary["usl"]["note"] == "USL needs at least 6 points, got 3"
    assert summary["points"][-1]["orders_per_s"]["mean"] is None
    assert summary["points"][-1]["efficiency"] is None
    one = summary["points"][0]["orders_per_s"]
    assert one["ci_low"] is None and one["ci_high"] is None  # one run: no interval at all
    assert one["n"] == 1 and one["note"] == "n=1, no interval"
    assert "One run per point" in summary["interpretation"]


# -- what a summary says about its statistics ----------------------------------


def _point(n, runs, layout=None, key="topology.backends", **extra) -> dict:
    values = {key: n} | ({"layout": layout} if layout else {})
    p99 = [0.5 + 0.01 * n] * len(runs)
    point = {"values": values, "n": n, "orders_per_s_runs": runs, "p99_ms_runs": p99}
    return point | {"actors": {}} | extra


def test_two_wildly_different_runs_keep_the_throughput_interval_above_zero():
    summary = summarize_sweep([_point(1, [472.0, 630.0]), _point(2, [10.0, 5000.0])])
    for p in summary["points"]:
        ops = p["orders_per_s"]
        assert 0 < ops["ci_low"] < ops["mean"] < ops["ci_high"] and ops["n"] == 2
        assert 0 < p["p99_ms"]["ci_low"] <= p["p99_ms"]["ci_high"]


def test_a_run_that_measured_nothing_does_not_break_the_summary():
    summary = summarize_sweep([_point(1, [1000.0, 0.0]), _point(2, [1900.0, 2000.0])])
    json.dumps(summary, allow_nan=False)
    ops = summary["points"][0]["orders_per_s"]
    assert ops["ci_low"] is None and ops["mean"] == 500.0 and "measured nothing" in ops["note"]


def test_efficiency_names_the_smallest_n_it_is_relative_to():
    summary = summarize_sweep([_point(n, [1000.0 * n**1.1]) for n in (2, 4, 8)])
    assert summary["efficiency_reference_n"] == 2
    assert [p["efficiency_reference_n"] for p in summary["points"]] == [2, 2, 2]
    assert summary["points"][-1]["efficiency"] > 1  # superlinear against N=2, and labelled so
    assert efficiency_label(summary) == "efficiency vs N=2"
    old = {"points": [{**p, "efficiency_reference_n": None} for p in summary["points"]]}
    assert efficiency_label(old) == "efficiency vs N=2"  # a summary stored before the key


def test_a_search_bracket_is_the_points_interval_and_the_fit_uses_the_values():
    x = usl_throughput(N[:6], 10_000, 0.05, 0.002)
    points = [
        _point(n, [v], orders_per_s_bounds=[0.97 * v, 1.02 * v])
        for n, v in zip(N[:6], x, strict=True)
    ]
    summary = summarize_sweep(points)
    ops = summary["points"][2]["orders_per_s"]
    assert ops["interval"] == "search" and ops["n"] == 1
    assert (ops["ci_low"], ops["ci_high"]) == pytest.approx((0.97 * x[2], 1.02 * x[2]))
    assert ops["mean"] == pytest.approx(x[2])
    assert summary["usl"]["ok"] and summary["usl"]["sigma"] == pytest.approx(0.05, rel=1e-3)
    assert "One run per point" not in summary["interpretation"]  # brackets are intervals


#: The six-point backend sweep of the issue: one run each, falling from N = 1.
FALLING = [332_989, 250_000, 200_000, 240_000, 150_000, 180_000]


def test_a_fit_on_its_bound_says_so_in_words_and_never_prints_a_peak_at_zero():
    summary = summarize_sweep([_point(n, [x]) for n, x in zip(range(1, 7), FALLING, strict=True)])
    usl = summary["usl"]
    assert usl["ok"] and usl["sigma"] == pytest.approx(1.0)
    assert usl["at_bound"] == ["sigma"] and usl["peak_below_range"] is True
    assert usl["peak_orders_per_s"] is None
    assert usl["bound_note"] == (
        "adding backends never helped; the best point is topology.backends = 1"
    )
    text = summary["interpretation"]
    assert "adding backends never helped; the best point is topology.backends = 1" in text
    assert "N*" not in text and "peaks at" not in text


def test_describe_scaling_takes_the_varied_key_when_the_values_do_not_name_it():
    points = [
        _point(n, [x], key="something.else") for n, x in zip(range(1, 7), FALLING, strict=True)
    ]
    for p in points:
        p["values"] = {}
    summary = summarize_sweep(points)
    assert summary["n_key"] is None
    assert "adding units never helped; the best point is N = 1" in summary["interpretation"]
    text = describe_scaling(summary, n_key="topology.engines")
    assert "adding engines never helped; the best point is topology.engines = 1" in text


def test_a_fit_with_r2_below_the_threshold_is_flagged_poor():
    zigzag = [1000, 3000, 1200, 3100, 1100, 3050, 1150, 3080]
    summary = summarize_sweep([_point(n, [x]) for n, x in zip(N, zigzag, strict=True)])
    usl = summary["usl"]
    assert usl["ok"] and usl["r2"] < POOR_R2
    assert usl["poor"] is True and summary["amdahl"]["poor"] is True
    assert any("is poor" in c for c in usl["caveats"])
    assert "The USL fit is poor (R² = " in summary["interpretation"]


def test_several_layouts_are_fitted_apart():
    points = [
        _point(n, [v, v * 1.01], layout=layout)
        for layout, lam in (("single-host", 10_000), ("three-node", 6_000))
        for n, v in zip(N, usl_throughput(N, lam, 0.05, 0.002), strict=True)
    ]
    summary = summarize_sweep(points)
    json.dumps(summary, allow_nan=False)
    assert summary["layouts"] == ["single-host", "three-node"]
    fits = summary["fits"]
    assert set(fits) == {"single-host", "three-node"}
    assert fits["single-host"]["usl"]["lambda"] == pytest.approx(10_000 * 1.005, rel=0.01)
    assert fits["three-node"]["usl"]["lambda"] == pytest.approx(6_000 * 1.005, rel=0.01)
    assert {"usl", "amdahl", "retrograde"} <= set(fits["three-node"])
    # The top level does not pretend one curve fits two systems.
    assert not summary["usl"]["ok"] and "2 layouts" in summary["usl"]["note"]
    assert summary["retrograde"]["detected"] is False
    text = summary["interpretation"]
    assert text.startswith("single-host: Per-unit throughput") and "three-node: " in text
    # Efficiency is per layout: each starts at 1.
    assert [p["efficiency"] for p in summary["points"] if p["n"] == 1] == pytest.approx([1, 1])


def test_one_layout_named_in_the_values_keeps_the_top_level_fit():
    points = [_point(n, [v], layout="three-node") for n, v in zip(N, 1000 * N, strict=True)]
    summary = summarize_sweep(points)
    assert summary["layouts"] == ["three-node"] and "fits" not in summary
    assert summary["usl"]["ok"]


def test_latency_percentiles_are_geometric_means_and_keep_their_order():
    runs = [{"p50": 1.0, "p90": 2.0, "p99": 10.0}, {"p50": 4.0, "p90": 8.0, "p99": 11.0}]
    point = _point(1, [100.0, 120.0]) | {"latency_ms_runs": runs, "p99_ms_runs": []}
    latency = summarize_sweep([point])["points"][0]["latency_ms"]
    assert latency["p50"] == pytest.approx(2.0) and latency["p90"] == pytest.approx(4.0)
    assert latency["p50"] <= latency["p90"] <= latency["p99"]
