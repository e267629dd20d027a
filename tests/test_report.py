"""lab.report.html: the HTML page and PNG plots for a sweep summary and for one run."""

import base64
import re

import matplotlib.image
import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from lab.analysis.scaling import usl_throughput
from lab.analysis.sweep_summary import summarize_sweep
from lab.report.html import REPORT_NAME, write_report
from lab.report.plots import (
    efficiency_vs_n_figure,
    latency_vs_load_figure,
    stage_busy_vs_n_figure,
    throughput_vs_n_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAME = 'book <script>alert("x")</script> & co'
ESCAPED = "book &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co"


def _actors(backends: int, backend_busy: float) -> dict:
    actors = {
        f"backend-{i}": {
            "host": "node-1",
            "busy": max(0.0, backend_busy - 0.02 * i),
            "max_queue": 40 * i,
            "batches": 900,
            "messages": 90_000,
            "us_per_message": 2.5,
            "batch_service_ms": {"p50": 0.1, "p99": 0.4},
        }
        for i in range(backends)
    }
    actors |= {
        "engine-0": {
            "host": "node-0",
            "busy": 0.45,
            "max_queue": 12,
            "batches": 1000,
            "messages": 100_000,
            "us_per_message": 1.2,
            "batch_service_ms": {"p50": 0.05, "p99": 0.2},
        },
        "loadgen-0": {
            "host": "node-0",
            "busy": 0.3,
            "max_queue": 0,
            "batches": 1000,
            "messages": 100_000,
            "us_per_message": 0.8,
            "batch_service_ms": {"p50": 0.02, "p99": 0.1},
        },
        "collector-0": {
            "host": "node-0",
            "busy": 0.02,
            "max_queue": 0,
            "batches": 40,
            "messages": 40,
            "us_per_message": 10.0,
            "batch_service_ms": {"p50": 0.1, "p99": 0.2},
        },
    }
    return actors


@pytest.fixture
def sweep() -> dict:
    rng = np.random.default_rng(7)
    points = []
    for n in (1, 2, 4, 8, 12, 16, 24, 32):
        mean = usl_throughput(n, 12_000, 0.03, 0.0015)
        p99 = [0.4 + 0.002 * n**2 + e for e in rng.normal(0, 0.02, 3)]
        points.append(
            {
                "values": {"topology.backends": n},
                "n": n,
                "orders_per_s_runs": list(mean * (1 + rng.normal(0, 0.02, 3))),
                "p99_ms_runs": p99,
                "latency_ms_runs": [
                    {"p50": 0.2 + 0.001 * n, "p90": 0.3, "p99": p, "p999": 2 * p, "max": 4 * p}
                    for p in p99
                ],
                "actors": _actors(n, min(0.98, 0.2 + 0.03 * n)),
                "offered_rate": None,
            }
        )
    summary = summarize_sweep(points)
    summary |= {
        "sweep_id": "sweep-20260101-000000-abcdef",
        "name": NAME,
        "vary": {"topology.backends": [1, 2, 4, 8, 12, 16, 24, 32]},
        "config": {"experiment": {"name": NAME, "duration_s": 10, "warmup_s": 2}},
        "environment": {
            "python": "3.11.2",
            "cpu_count": 8,
            "packages": {"ray": "2.40.0", "numba": None},
        },
        "runs": [
            {
                "run_id": f"run-{i}",
                "name": NAME,
                "orders_per_s": 1000.0 * i,
                "latency_ms": {"p99": 0.5},
            }
            for i in range(3)
        ],
    }
    return summary


@pytest.fixture
def run() -> dict:
    series = []
    for i in range(1, 25):
        t = 0.5 * i
        rate = 48_000 + 2_000 * np.sin(i)
        series.append(
            {
                "t_s": t,
                "sent": int(rate * 0.5) + 100,
                "acked": int(rate * 0.5),
                "rejects": 3,
                "fills": 100,
                "errors": 0,
                "orders_per_s": rate,
                "latency_ms": {
                    "p50": 0.21,
                    "p90": 0.35,
                    "p99": 0.8 + 0.05 * i,
                    "p999": 2.5,
                    "max": 4.0,
                },
            }
        )
    return {
        "run_id": "run-20260101-000000-123456",
        "name": NAME,
        "layout": "single-host",
        "orders_per_s": 48_123.4,
        "orders_sent": 500_000,
        "orders_acked": 481_234,
        "rejects": 72,
        "errors": 0,
        "fills": 2_400,
        "latency_ms": {"p50": 0.2134, "p90": 0.35, "p99": 1.2345, "p999": 2.5, "max": 4.0},
        "measured_s": 10.0,
        "actors": _actors(4, 0.93),
        "series": series,
        "config": {"experiment": {"name": NAME, "duration_s": 12, "warmup_s": 2}},
        "environment": {"python": "3.11.2", "hostname": "<host>"},
        "thresholds_missed": ["p99 1.23 ms > 1 ms"],
        "created_at": "2026-01-01T00:00:00+00:00",
        "kind": "run",
        "sweep_id": None,
    }


def _check_report(path, out_dir, expected_pngs: set[str]) -> str:
    assert path == out_dir / REPORT_NAME and path.exists()
    text = path.read_text(encoding="utf-8")
    pngs = {p.name for p in out_dir.glob("*.png")}
    assert pngs == expected_pngs
    for name in pngs:
        data = (out_dir / name).read_bytes()
        assert data.startswith(PNG_MAGIC)
        image = matplotlib.image.imread(out_dir / name)
        height, width = image.shape[:2]
        assert 600 <= width <= 2000 and 300 <= height <= 2000
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(embedded) == len(expected_pngs)  # one per plot
    assert all(base64.b64decode(e).startswith(PNG_MAGIC) for e in embedded)
    # Self-contained: no scripts and nothing fetched from elsewhere.
    assert "<script" not in text.lower()
    assert not re.search(r"(src|href)=\"(?!data:)", text)
    assert ESCAPED in text
    return text


def test_sweep_report(tmp_path, sweep):
    path = write_report(sweep, tmp_path)
    text = _check_report(
        path,
        tmp_path,
        {
            "throughput_vs_n.png",
            "latency_vs_load.png",
            "efficiency_vs_n.png",
            "stage_busy_vs_n.png",
        },
    )
    best = max(sweep["points"], key=lambda p: p["orders_per_s"]["mean"])
    assert f"{best['orders_per_s']['mean']:,.0f} orders/s at N={best['n']:g}" in text
    assert f"N*≈{sweep['usl']['peak_n']:.1f}" in text
    assert f"{sweep['usl']['sigma']:.4g}" in text and f"{sweep['usl']['kappa']:.4g}" in text
    assert "contention" in text and "coherency" in text
    assert "topology.backends" in text
    assert "run-2" in text  # the runs table
    assert "packages.ray" in text and "2.40.0" in text  # the environment, flattened
    assert "duration_s: 10" in text  # the config, as YAML


def test_sweep_report_with_too_few_points(tmp_path, sweep):
    short = summarize_sweep(
        [
            {
                "values": {},
                "n": n,
                "orders_per_s_runs": [100.0 * n],
                "p99_ms_runs": [1.0],
                "actors": {},
                "offered_rate": 150.0 * n,
            }
            for n in (1, 2, 4)
        ]
    ) | {"name": NAME}
    path = write_report(short, tmp_path)
    text = _check_report(
        path,
        tmp_path,
        {
            "throughput_vs_n.png",
            "latency_vs_load.png",
            "efficiency_vs_n.png",
            "stage_busy_vs_n.png",
        },
    )
    assert "USL needs at least 6 points, got 3" in text


def test_run_report(tmp_path, run):
    path = write_report(run, tmp_path / "nested" / "dir")
    out = tmp_path / "nested" / "dir"
    text = _check_report(
        path, out, {"throughput_over_time.png", "latency_over_time.png", "actor_busy.png"}
    )
    assert "48,123.4 orders/s" in text
    assert "0.213 / 1.234 ms" in text  # p50 / p99
    assert "481,234" in text
    assert "threshold missed: p99 1.23 ms &gt; 1 ms" in text
    assert "backend saturated first" in text
    assert "&lt;host&gt;" in text and "<host>" not in text


def test_run_report_says_what_the_load_figures_mean(tmp_path, run):
    closed = write_report(run, tmp_path / "closed").read_text()
    assert "Closed loop:" in closed and "service time under that fixed concurrency" in closed
    overloaded = run | {
        "loop": "open",
        "offered_per_s": 1_000_000.0,
        "answered_per_s": 50_000.0,
        "overloaded": True,
        "generator_limited": False,
        "backlog": 5_000_000,
        "backlog_growth": 4_000_000,
    }
    text = write_report(overloaded, tmp_path / "open").read_text()
    assert "<p class=bad>OVERLOADED: offered 1,000,000 orders/s, answered 50,000/s" in text


def test_run_report_without_series_or_actors(tmp_path, run):
    bare = run | {"series": [], "actors": {}}
    text = _check_report(
        write_report(bare, tmp_path),
        tmp_path,
        {"throughput_over_time.png", "latency_over_time.png", "actor_busy.png"},
    )
    assert "No actor figures" in text


# -- what the plots and the page say about the statistics ----------------------


def _points(layout=None, runs=3, lam=12_000, ns=(1, 2, 4, 8, 12, 16)):
    rng = np.random.default_rng(3)
    out = []
    for n in ns:
        values = {"topology.backends": n} | ({"layout": layout} if layout else {})
        mean = usl_throughput(n, lam, 0.03, 0.0015)
        out.append(
            {
                "values": values,
                "n": n,
                "orders_per_s_runs": list(mean * (1 + rng.normal(0, 0.02, runs))),
                "p99_ms_runs": list(0.4 + 0.01 * n + rng.normal(0, 0.01, runs) ** 2),
                "actors": _actors(n, min(0.98, 0.2 + 0.03 * n)),
                "offered_rate": None,
            }
        )
    return out


def _legend(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def _error_bars(fig) -> list[ErrorbarContainer]:
    return [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]


def test_a_sweep_over_two_layouts_is_drawn_as_two_labelled_series():
    summary = summarize_sweep(_points("single-host") + _points("three-node", lam=7_000))
    throughput = throughput_vs_n_figure(summary)
    labels = _legend(throughput)
    assert "single-host (95% CI, n=3)" in labels and "three-node (95% CI, n=3)" in labels
    bars = _error_bars(throughput)
    assert len(bars) == 2  # one series of measured points per layout
    assert sorted(len(b.lines[0].get_xdata()) for b in bars) == [6, 6]
    # Each layout's own USL curve, and no curve fitted across both.
    assert sum("USL fit" in label for label in labels) == 2
    assert any(label.startswith("single-host: USL fit") for label in labels)
    assert not any(label.startswith("Amdahl") or label.startswith("linear") for label in labels)
    efficiency = efficiency_vs_n_figure(summary)
    assert {"single-host", "three-node"} <= set(_legend(efficiency))
    stages = _legend(stage_busy_vs_n_figure(summary))
    assert "single-host: backend (max)" in stages and "three-node: backend (max)" in stages
    latency = _legend(latency_vs_load_figure(summary))
    assert "single-host p99" in latency and "three-node p99" in latency


def test_one_layout_is_one_unlabelled_series_with_its_fits():
    labels = _legend(throughput_vs_n_figure(summarize_sweep(_points())))
    assert "measured geometric mean (95% CI, n=3)" in labels
    assert any(label.startswith("USL fit") for label in labels)
    assert any(label.startswith("Amdahl fit") for label in labels)


def test_one_run_per_point_draws_no_error_bar_and_says_so(tmp_path):
    summary = summarize_sweep(_points(runs=1)) | {"name": NAME}
    fig = throughput_vs_n_figure(summary)
    assert _error_bars(fig) == []
    assert "measured geometric mean (n=1, no interval)" in _legend(fig)
    text = write_report(summary, tmp_path).read_text(encoding="utf-8")
    assert "n=1, no interval" in text
    assert "One run per point" in text


def test_efficiency_axis_names_its_reference_n():
    summary = summarize_sweep(_points(ns=(2, 4, 8, 12, 16, 24)))
    assert efficiency_vs_n_figure(summary).axes[0].get_ylabel().startswith("efficiency vs N=2")


#: The issue's six-point backend sweep: one run each, throughput falling from N = 1.
FALLING = [332_989, 250_000, 200_000, 240_000, 150_000, 180_000]


def test_a_fit_on_its_bound_is_put_in_words_on_the_plot_and_the_page(tmp_path):
    points = [
        {
            "values": {"topology.backends": n},
            "n": n,
            "orders_per_s_runs": [x],
            "p99_ms_runs": [1.0],
            "actors": {},
        }
        for n, x in zip(range(1, 7), FALLING, strict=True)
    ]
    summary = summarize_sweep(points) | {"name": NAME, "n_key": "topology.backends"}
    assert summary["usl"]["at_bound"] == ["sigma"]
    fig = throughput_vs_n_figure(summary)
    title = fig.axes[0].get_title()
    assert "adding backends never helped; the best point is topology.backends = 1" in title
    assert not any("N*" in label for label in _legend(fig))  # no peak line at N*≈0
    text = write_report(summary, tmp_path).read_text(encoding="utf-8")
    assert "fit on a bound: adding backends never helped" in text
    assert "N*≈0.0" not in text and "N*≈0" not in text
    # 46% below the peak at the largest N, but one run per point tests nothing.
    assert summary["retrograde"] == {
        "detected": False,
        "start_n": None,
        "peak_n": 1.0,
        "drop": pytest.approx(1 - 180_000 / 332_989),
        "tested": False,
    }
    assert "untested: 46% below the peak, too few runs to tell" in text
    assert "too few runs to tell that from noise (not called retrograde)" in text
    assert "Retrograde:" not in text


def test_a_poor_fit_is_flagged_on_the_page(tmp_path):
    zigzag = [1000, 3000, 1200, 3100, 1100, 3050, 1150, 3080]
    points = [
        {"values": {"topology.backends": n}, "n": n, "orders_per_s_runs": [x], "actors": {}}
        for n, x in zip((1, 2, 4, 8, 12, 16, 24, 32), zigzag, strict=True)
    ]
    summary = summarize_sweep(points) | {"name": NAME}
    assert summary["usl"]["poor"] is True
    text = write_report(summary, tmp_path).read_text(encoding="utf-8")
    assert "poor fit (below 0.8)" in text and "The USL fit is poor" in text
    assert "USL fit poor (R² = " in throughput_vs_n_figure(summary).axes[0].get_title()


def test_a_report_of_two_layouts_lists_each_layouts_fit(tmp_path):
    summary = summarize_sweep(_points("single-host") + _points("three-node", lam=7_000))
    text = write_report(summary | {"name": NAME}, tmp_path).read_text(encoding="utf-8")
    assert "single-host: USL peak" in text and "three-node: USL peak" in text
    assert "single-host: Amdahl" in text


def test_a_search_result_is_drawn_with_its_bracket():
    points = [
        {"values": {"k": n}, "n": n, "orders_per_s_runs": [100.0 * n]}
        | {"orders_per_s_bounds": [100.0 * n, 110.0 * n]}
        for n in (1, 2, 4)
    ]
    fig = throughput_vs_n_figure(summarize_sweep(points))
    (bars,) = _error_bars(fig)
    assert "measured geometric mean (search bracket, n=1)" in _legend(fig)
    segments = bars.lines[2][0].get_segments()  # the vertical bars: the brackets themselves
    ys = np.array([s[:, 1] for s in segments])
    np.testing.assert_allclose(ys, [[100, 110], [200, 220], [400, 440]])
