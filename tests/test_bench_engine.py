"""``lab bench engine``: what it reports about the engine it timed (never how fast it was)."""

import json

import pytest
from typer.testing import CliRunner

from lab.bench.engine import run_engine_bench
from lab.cli.main import app

MESSAGES = 20_000


def test_presized_and_growing_runs_see_the_same_flow():
    presized = run_engine_bench(messages=MESSAGES, batch=4096, orders=1 << 14)
    growing = run_engine_bench(messages=MESSAGES, batch=4096, orders=0)
    assert presized["start_order_capacity"] == 1 << 14 and presized["prefaulted"]
    assert growing["start_order_capacity"] == 1024 and not growing["prefaulted"]
    assert growing["order_capacity"] >= growing["resting"] > 1024  # it grew
    for key in ("messages", "trades", "rejects", "resting"):
        assert presized[key] == growing[key]
    assert presized["trades"] > 0
    for result in (presized, growing):
        assert result["messages_per_s"] > 0 and result["seconds"] > 0
        per_order = result["engine_bytes"] / result["resting"]
        assert result["bytes_per_resting_order"] == round(per_order, 1)
    # The bigger starting pools are counted in the memory figure.
    assert presized["engine_bytes"] > growing["engine_bytes"]


def test_the_machine_probe_is_measured_beside_the_figure():
    result = run_engine_bench(messages=MESSAGES, batch=4096, orders=1 << 14)
    probe = result["probe"]
    # Chased over the timed engine's memory, in whole lines.
    assert probe["working_set_mb"] == round(result["engine_bytes"] // 64 * 64 / 2**20, 3)
    assert probe["chase_ns_per_load"] > 0 and probe["compute_ns_per_op"] > 0
    ns = result["ns_per_message"]  # the same clock as messages_per_s, inverted
    assert ns * result["messages_per_s"] == pytest.approx(1e9, rel=1e-3)
    assert result["loads_per_message"] == round(ns / probe["chase_ns_per_load"], 3)
    assert result["ops_per_message"] == round(ns / probe["compute_ns_per_op"], 3)


def test_cli_takes_the_starting_capacity():
    args = ["bench", "engine", "--messages", str(MESSAGES), "--orders", "0", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["messages"] == MESSAGES
    assert out["start_order_capacity"] == 1024 and not out["prefaulted"]
    assert out["probe"]["chase_ns_per_load"] > 0 and out["loads_per_message"] > 0
    # Without --json the probe's keys print one per row, under its name.
    plain = CliRunner().invoke(app, args[:-1])
    assert plain.exit_code == 0, plain.output
    assert "probe.chase_ns_per_load: " in plain.output and "{" not in plain.output
    assert CliRunner().invoke(app, [*args[:-3], "--orders", "-1"]).exit_code != 0
