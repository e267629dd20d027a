"""lab.run.result: merging tallies, the overload verdict, the book's trend, thresholds."""

from actors.histogram import LatencyHistogram
from lab.config import load_config
from lab.run.experiment import missed_thresholds
from lab.run.result import Result, load_verdicts, summarize_book


def tally(offered, answered, errors=0, sent=None, loop="open", limited=False, cap=1000):
    latency = LatencyHistogram()
    latency.record_many([1_000_000] * 10)
    return {
        "loop": loop,
        "offered": offered if loop == "open" else None,
        "sent": answered if sent is None else sent,
        "answered": answered,
        "acked": answered - errors,
        "rejects": 0,
        "fills": 0,
        "errors": errors,
        "first_error": "",
        "latency": latency.to_dict(),
        "lag": LatencyHistogram().to_dict(),
        "unsent": max(offered - answered, 0) if loop == "open" else 0,
        "unanswered": 0,
        "in_flight_at_end": 0,
        "in_flight_cap": cap,
        "overrun_s": 0.0,
        "generator_limited": limited if loop == "open" else None,
    }


def merged(*tallies):
    return Result.from_tallies(list(tallies), 1.0, run_id="r", name="n", layout="l")


def test_generators_merge_and_the_system_kept_up_when_it_answered_what_was_offered():
    result = merged(tally(50_000, 49_900), tally(50_000, 49_950))
    assert result.offered_per_s == 100_000 and result.answered_per_s == 99_850
    assert result.overloaded is False and result.generator_limited is False
    assert result.backlog_growth == 150 and result.latency_ms["p50"] > 0
    assert load_verdicts(result)[0].startswith("Kept up")


def test_a_small_shortfall_that_keeps_growing_is_overload_too():
    # 97% answered is above the 95% rule, but the backlog grew by 3,000 orders, more than
    # 2% of the offered and more than the 1,000 the generators may keep in flight.
    result = merged(tally(100_000, 97_000))
    assert result.overloaded is True
    assert merged(tally(100_000, 99_500)).overloaded is False


def test_failed_calls_do_not_count_as_keeping_up():
    assert merged(tally(10_000, 10_000, errors=2_000)).overloaded is True


def test_one_generator_behind_its_own_schedule_limits_the_run():
    result = merged(tally(50_000, 50_000), tally(50_000, 30_000, limited=True))
    assert result.generator_limited is True
    assert any(line.startswith("GENERATOR-LIMITED") for line in load_verdicts(result))


def test_a_closed_loop_has_no_overload_verdict_and_says_what_its_latency_is():
    result = merged(tally(0, 10_000, loop="closed"))
    assert result.overloaded is None and result.offered_per_s is None
    assert "service time under that fixed concurrency" in load_verdicts(result)[0]


def test_an_overload_threshold_is_missed_by_an_overloaded_run(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("workload: {rate: 100000}\nthresholds: {overloaded: false}\n")
    config = load_config(path)
    assert missed_thresholds(config, merged(tally(100_000, 99_900))) == []
    (missed,) = missed_thresholds(config, merged(tally(100_000, 50_000)))
    assert missed.startswith("overloaded: offered 100,000 orders/s, answered 50,000/s")


def test_the_book_trend_compares_the_halves_of_the_measured_window():
    flat = [{"t_s": t, "resting_orders": 1000 + (t % 2) * 10} for t in range(1, 11)]
    growing = [{"t_s": t, "resting_orders": 1000 * t} for t in range(1, 11)]
    book = summarize_book(flat, {"engine-0": 600, "engine-1": 400}, warmup_s=2, duration_s=10)
    assert book["resting_orders"] == 1000 and abs(book["growth"]) < 0.02
    assert summarize_book(growing, {"engine-0": 1}, warmup_s=2, duration_s=10)["growth"] > 0.5
    # Points after the window (the final collection) and in the warm-up are left out.
    late = flat + [{"t_s": 10.5, "resting_orders": 10**9}]
    assert summarize_book(late, {}, warmup_s=2, duration_s=10)["growth"] == book["growth"]


def test_sent_and_backlog_come_from_every_generator_and_the_summary_says_overloaded():
    from rich.console import Console

    from lab.report.console import print_summary

    # One generator fell behind: 30,000 of its orders were never sent and 30,000 of those
    # it sent were still out when the window closed (1,200 of them never answered).
    behind = tally(100_000, 40_000, sent=70_000)
    behind.update(unsent=30_000, in_flight_at_end=30_000, unanswered=1_200, overrun_s=4.2)
    kept_up = tally(100_000, 99_000, sent=100_000)
    kept_up.update(unsent=0, in_flight_at_end=1_000)
    result = merged(behind, kept_up)
    assert result.sent_per_s == 170_000 and result.answered_per_s == 139_000
    assert result.backlog == 30_000 + 30_000 + 1_000  # in flight at the end, plus never sent
    assert (result.unsent, result.unanswered, result.overrun_s) == (30_000, 1_200, 4.2)
    assert result.overloaded is True
    console = Console(record=True, width=400)
    print_summary(result, console)
    text = console.export_text()
    assert "OVERLOADED: offered 200,000 orders/s, answered 139,000/s (70%)" in text
    assert "30,000 never sent, 1,200 still unanswered after the drain" in text
    assert "sent_per_s............ 170,000.0/s" in text
    assert "backlog............... 61,000" in text
    assert "1,200 unanswered after the drain" in text
