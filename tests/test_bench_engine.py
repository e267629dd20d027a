"""``lab bench engine``: what it reports about the engine it timed (never how fast it was)."""

import json

from typer.testing import CliRunner

from lab.bench_engine import run_engine_bench
from lab.cli import app

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


def test_cli_takes_the_starting_capacity():
    args = ["bench", "engine", "--messages", str(MESSAGES), "--orders", "0", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["messages"] == MESSAGES
    assert out["start_order_capacity"] == 1024 and not out["prefaulted"]
    assert CliRunner().invoke(app, [*args[:-3], "--orders", "-1"]).exit_code != 0
