"""StageStats: a stage's work spans, and the CPU of its whole process beside them."""

import os
import time

from actors.stage_stats import Span, StageStats, host_cpu_ticks, host_cpus


def _spin(cpu_s: float) -> None:
    """Burn this much of the thread's CPU time, however busy the machine is."""
    until = time.thread_time() + cpu_s
    while time.thread_time() < until:
        pass


def test_take_reports_the_process_cpu_of_its_interval_beside_the_spans():
    stats = StageStats()
    stats.take()  # an interval starts here
    span = Span()
    with span:
        _spin(0.05)
    _spin(0.05)  # outside every span: only the process's CPU shows it
    stats.record_batch(1, span)
    out = stats.take()
    assert out["batches"] == 1 and out["messages"] == 1
    assert out["busy_ns"] >= 0.05e9
    assert out["process_cpu_ns"] >= out["busy_ns"] + 0.05e9
    # The next interval starts at the take: what was spent before it is not counted again.
    again = stats.take()
    assert again["busy_ns"] == 0 and again["process_cpu_ns"] < 0.05e9


def test_the_host_busy_share_counts_every_process_on_the_host():
    stats = StageStats()
    stats.take()
    _spin(0.1)  # this process alone keeps one of the host's CPUs busy meanwhile
    host_busy = stats.take()["host_busy"]
    assert 1 / os.cpu_count() * 0.5 <= host_busy <= 1.0
    busy, total = host_cpu_ticks()
    assert 0 < busy <= total


def test_host_cpus_is_what_this_process_may_run_on():
    assert 1 <= host_cpus() <= os.cpu_count()
