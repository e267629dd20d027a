"""lab.report: the HTML page and PNG plots for a sweep summary and for one run."""

import base64
import re

import matplotlib.image
import numpy as np
import pytest

from lab.report import REPORT_NAME, write_report
from lab.scaling import summarize_sweep, usl_throughput

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


def test_run_report_without_series_or_actors(tmp_path, run):
    bare = run | {"series": [], "actors": {}}
    text = _check_report(
        write_report(bare, tmp_path),
        tmp_path,
        {"throughput_over_time.png", "latency_over_time.png", "actor_busy.png"},
    )
    assert "No actor figures" in text
