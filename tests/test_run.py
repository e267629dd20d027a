"""`lab run` end to end on a real local Ray: the Python API, the stores, the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from lab import Experiment
from lab.store.result_store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
SHORT = ["experiment.duration_s=3", "experiment.warmup_s=1"]


def short_run(tmp_path, *extra, url=None):
    url = url or f"sqlite:///{tmp_path}/results.sqlite"
    overrides = [*SHORT, f"results.url={url}", *extra]
    return Experiment.from_yaml(QUICKSTART, overrides=overrides)


def test_run_measures_and_stores_in_sqlite(ray_session, tmp_path):
    seen = []
    result = short_run(tmp_path).run(on_progress=seen.append)
    assert result.orders_acked > 0 and result.errors == 0, result.first_error
    assert result.orders_per_s == pytest.approx(result.orders_acked / 2.0, rel=1e-6)
    # Throughput by completion: what was answered in the window, whenever it was sent.
    answered = result.answered_per_s * result.measured_s
    assert answered == pytest.approx(result.orders_acked + result.rejects)
    in_flight_cap = 4 * 4096  # one generator, max_in_flight 4, batches of 4096
    assert abs(result.orders_sent - answered) <= in_flight_cap
    assert result.loop == "closed" and result.overloaded is None
    assert result.failed_polls == 0
    assert result.book["resting_orders"] > 0
    assert all("resting_orders" in p for p in result.series)
    lat = result.latency_ms
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert set(result.actors) == {
        "engine-0",
        "engine-1",
        "backend-0",
        "backend-1",
        "loadgen-0",
        "collector-0",
    }
    assert all(a["host"] and a["node_id"] for a in result.actors.values())
    assert result.actors["engine-0"]["messages"] > 0
    # Each actor's process and the CPU it used, its work spans and all the rest.
    pipeline = [a for name, a in result.actors.items() if name != "collector-0"]
    assert len({a["pid"] for a in pipeline}) == len(pipeline)
    assert all(a["cpu"] > 0 and a["host_cpus"] >= 1 for a in pipeline)
    assert result.environment["cpu_count"] >= 1 and "ray" in result.environment["packages"]
    assert result.config["topology"]["engines"] == 2
    assert len(result.series) >= 2 and any(p["acked"] for p in result.series)
    assert any(p for p in seen)  # progress reached the caller while running
    with ResultStore.open(f"sqlite:///{tmp_path}/results.sqlite") as store:
        stored = store.get_run(result.run_id)
    assert stored["orders_acked"] == result.orders_acked
    assert stored["latency_ms"] == result.latency_ms


def test_run_stores_in_postgresql(ray_session, tmp_path, postgres_url):
    result = short_run(tmp_path, url=postgres_url).run()
    try:
        with ResultStore.open(postgres_url) as store:
            assert store.get_run(result.run_id)["orders_per_s"] == result.orders_per_s
    finally:
        with psycopg.connect(postgres_url) as conn:
            conn.execute("DELETE FROM runs WHERE run_id = %s", (result.run_id,))


def test_open_loop_run_at_a_target_rate(ray_session, tmp_path):
    # 4 s measured at 10,000/s: the 95% verdicts then allow a 200 ms stall.
    result = short_run(
        tmp_path,
        "workload.rate=10000",
        "experiment.duration_s=5",
        "topology.batch_size=512",
        "topology.max_in_flight=8",
    ).run()
    assert result.loop == "open"
    assert result.offered_per_s == pytest.approx(10000, rel=0.05)
    assert result.orders_sent == pytest.approx(10000 * 4.0, rel=0.1)
    assert result.errors == 0, result.first_error
    assert result.overloaded is False and result.generator_limited is False
    # Left unsent: the batch that was due as the window closed, and what came due while
    # the event loop stalled past the end (37 ms, 752 orders, once on a loaded CI box).
    stall_allowance_s = 0.25
    assert result.unsent <= 512 + 10000 * stall_allowance_s
    assert result.unanswered == 0 and result.overrun_s < 1


@pytest.mark.parametrize("transport", ["ray", "stream"])
def test_journal_of_a_run_replays_to_its_trades(ray_session, tmp_path, transport):
    result = short_run(
        tmp_path,
        "topology.journal=true",
        f"topology.journal_dir={tmp_path}/journals",
        f"topology.transport={transport}",
    ).run()
    assert result.orders_acked > 0 and result.errors == 0, result.first_error
    assert len(result.journals) == 2
    total = 0
    for paths in result.journals:
        out = tmp_path / Path(paths["orders"]).stem
        out.mkdir()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "lab",
                "replay",
                paths["orders"],
                "--trades",
                out / "t.csv",
                "--book",
                out / "b.csv",
                "--rejects",
                out / "r.csv",
            ],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        assert (out / "t.csv").read_text() == Path(paths["trades"]).read_text()
        assert (out / "b.csv").read_text() == Path(paths["book"]).read_text()
        total += len((out / "t.csv").read_text().splitlines()) - 1
    assert total >= result.fills  # the journal also holds the warm-up's trades


def lab_cli(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "lab", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_cli_run_json_prints_one_object_and_results_commands_find_it(tmp_path):
    url = f"sqlite:///{tmp_path}/r.sqlite"
    proc = lab_cli(
        "run", str(QUICKSTART), "--json", *[f"--set={s}" for s in SHORT], f"--set=results.url={url}"
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # exactly one JSON object, nothing else
    for key in ("run_id", "orders_per_s", "orders_sent", "orders_acked", "rejects", "errors"):
        assert key in data
    assert set(data["latency_ms"]) >= {"p50", "p90", "p99", "p999", "max"}
    listed = lab_cli("results", "list", "--url", url)
    assert data["run_id"] in listed.stdout
    shown = lab_cli("results", "show", data["run_id"][:22], "--url", url, "--json")
    assert json.loads(shown.stdout)["run_id"] == data["run_id"]


@pytest.mark.slow
def test_cli_exits_99_when_a_threshold_is_missed(tmp_path):
    proc = lab_cli(
        "run",
        str(QUICKSTART),
        *[f"--set={s}" for s in SHORT],
        f"--set=results.url=sqlite:///{tmp_path}/r.sqlite",
        "--set=thresholds.min_orders_per_s=1e12",
    )
    assert proc.returncode == 99, proc.stderr
    assert "threshold" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "text, message",
    [
        ("topology:\n  backnds: 4\n", "topology.backnds: unknown key"),
        ("topology:\n  backends: four\n", "topology.backends"),
        ("experiment: [\n", "bad.yaml"),
    ],
)
def test_cli_bad_config_exits_2_naming_the_key_without_traceback(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    proc = lab_cli("run", str(bad))
    assert proc.returncode == 2
    assert message in proc.stderr and "bad.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_unknown_layout_exits_2(tmp_path):
    proc = lab_cli("run", str(QUICKSTART), "--layout", "nowhere")
    assert proc.returncode == 2 and "nowhere" in proc.stderr and "single-host" in proc.stderr
