"""lab.analysis.intervals: log-t intervals, search brackets, and whether two points differ."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from lab.analysis.intervals import (
    compare,
    describe_figure,
    format_interval,
    interval_dict,
    log_interval,
    mean_ci,
    search_interval,
)

# -- one point's interval ------------------------------------------------------


def test_one_run_has_no_interval_and_says_so():
    found = log_interval([332_989.0])
    assert found.mean == 332_989.0
    assert found.low is None and found.high is None and found.kind is None
    assert found.n == 1 and found.note == "n=1, no interval"
    assert format_interval(interval_dict([332_989.0])) == "n=1, no interval"


def test_two_runs_never_give_a_negative_lower_bound():
    runs = [472.0, 630.0]  # the arithmetic interval of these is about -453 – 1,555
    assert mean_ci(runs)[1] < 0
    found = log_interval(runs)
    assert 0 < found.low < found.mean < found.high
    assert found.kind == "t-log" and found.n == 2
    wild = log_interval([10.0, 1_000_000.0])  # wildly different runs: still above zero
    assert wild.low > 0


@pytest.mark.parametrize("values", [[472.0, 630.0], [10, 11, 9, 10.5, 12], np.arange(1.0, 30.0)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_log_interval_is_the_t_interval_of_the_logs(values, confidence):
    logs = np.log(np.asarray(values, dtype=float))
    low, high = stats.t.interval(confidence, logs.size - 1, loc=logs.mean(), scale=stats.sem(logs))
    found = log_interval(values, confidence)
    assert found.mean == pytest.approx(stats.gmean(values))  # the geometric mean
    assert (found.low, found.high) == pytest.approx((math.exp(low), math.exp(high)))
    assert found.mean_kind == "geometric"


@pytest.mark.parametrize("runs", [[1000.0, 0.0, 900.0], [1000.0, -5.0], [0.0], [0.0, 0.0]])
def test_a_run_that_measured_nothing_gives_no_interval_and_says_why(runs):
    fig = interval_dict(runs)
    json.dumps(fig, allow_nan=False)
    assert fig["ci_low"] is None and fig["ci_high"] is None and fig["interval"] is None
    assert fig["mean"] == pytest.approx(np.mean(runs)) and fig["mean_kind"] == "arithmetic"
    assert "measured nothing" in fig["note"] and fig["n"] == len(runs)
    assert "measured nothing" in format_interval(fig)


def test_interval_dict_keeps_the_old_keys_and_adds_n_and_kind():
    fig = interval_dict([100.0, 110.0, 105.0])
    assert {"mean", "ci_low", "ci_high", "runs"} <= set(fig)
    assert fig["n"] == 3 and fig["interval"] == "t-log" and fig["note"] == ""
    assert fig["runs"] == [100.0, 110.0, 105.0]
    assert interval_dict([])["mean"] is None and interval_dict([])["n"] == 0
    assert format_interval(fig) == f"{fig['ci_low']:,.0f} – {fig['ci_high']:,.0f} (n=3)"
    assert describe_figure(fig, unit=" orders/s").startswith(f"{fig['mean']:,.0f} orders/s (95% CI")


def test_a_search_result_carries_its_bracket():
    fig = interval_dict([5000.0], bounds=[4800, 5200])
    assert (fig["ci_low"], fig["ci_high"]) == (4800.0, 5200.0)
    assert fig["interval"] == "search" and fig["n"] == 1 and fig["mean"] == 5000.0
    assert format_interval(fig) == "4,800 – 5,200 (search bracket, n=1)"
    assert describe_figure(fig) == "5,000 (search bracket 4,800 – 5,200, n=1)"
    with pytest.raises(ValueError):
        search_interval([5000.0], [5200, 4800])
    with pytest.raises(ValueError):
        search_interval([5000.0], [-1, 4800])


def test_summaries_stored_before_kinds_show_one_run_without_an_interval():
    old = {"mean": 5.0, "ci_low": 5.0, "ci_high": 5.0, "runs": [5.0]}  # zero-width, old style
    assert format_interval(old) == "n=1, no interval"
    old2 = {"mean": 5.0, "ci_low": 4.0, "ci_high": 6.0, "runs": [4.5, 5.5]}
    assert format_interval(old2) == "4 – 6 (n=2)"


# -- two points ----------------------------------------------------------------


def test_overlapping_runs_are_no_significant_change_even_for_a_nine_percent_drop():
    before, after = interval_dict([1000, 1200, 850]), interval_dict([910, 1100, 770])
    result = compare(before, after)
    assert result.change == pytest.approx(after["mean"] / before["mean"] - 1)
    assert result.change < -0.08
    assert result.verdict == "no significant change" and not result.significant
    assert result.p > 0.05 and result.method == "Welch's t-test on log throughput"


def test_a_clear_drop_with_tight_runs_is_lower():
    result = compare(interval_dict([1000, 1010, 990]), interval_dict([800, 805, 795]))
    assert result.verdict == "lower" and result.significant
    expected = stats.ttest_ind(
        np.log([1000, 1010, 990]), np.log([800, 805, 795]), equal_var=False
    ).pvalue
    assert result.p == pytest.approx(expected) and result.p < 0.05
    assert compare(interval_dict([800, 805, 795]), interval_dict([1000, 1010, 990])).verdict == (
        "higher"
    )


def test_one_run_per_point_is_untestable():
    result = compare(interval_dict([3163.0]), interval_dict([1400.0]))  # a -55% drop
    assert result.verdict == "untestable" and not result.significant
    assert result.note == "one run per point, so no test is possible"
    assert result.change == pytest.approx(1400 / 3163 - 1)


def test_a_run_that_measured_nothing_is_untestable():
    result = compare(interval_dict([1000.0, 0.0, 900.0]), interval_dict([800.0, 810.0]))
    assert result.verdict == "untestable" and "measured nothing" in result.note


def test_search_results_are_compared_by_bracket_overlap():
    a = interval_dict([5000.0], bounds=[4800, 5200])
    apart = interval_dict([4000.0], bounds=[3900, 4100])
    overlapping = interval_dict([4700.0], bounds=[4600, 4900])
    assert compare(a, apart).verdict == "lower"
    assert compare(a, apart).method == "search brackets compared" and compare(a, apart).p is None
    assert compare(a, overlapping).verdict == "no significant change"
    # A search result against a repeated point: its t-log interval against the bracket.
    assert compare(a, interval_dict([3000, 3010, 2990])).verdict == "lower"
    assert compare(a, interval_dict([3000.0])).verdict == "untestable"
