"""EngineShard: symbol routing, maker-fill outbox, journal that `lab replay` reproduces."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actors.engine_shard import EngineShard, symbol_name
from actors.order_flow import FlowParams, OrderFlow
from actors.routing import local_symbol, shard_of_symbol
from actors.wire import to_messages
from engine import NO_PRICE, ReportKind
from lab.replay.journal import write_journal
from tests.pipeline_fixtures import BUY, SELL, new, orders

ROOT = Path(__file__).resolve().parents[1]


def test_reports_carry_global_symbols():
    shard = EngineShard(1, 3, 7)
    assert shard.symbols == [1, 4]
    # Symbol 4 is local symbol 1 of shard 1 of 3.
    reports, _ = shard.process(
        to_messages(orders(new(1, 1, 1, BUY, 100, 5), new(2, 2, 1, SELL, 100, 2)))
    )
    assert set(reports["symbol"]) == {4}
    assert shard.resting() == 1


def test_tops_are_asked_and_answered_by_global_symbol():
    shard = EngineShard(1, 3, 7)
    shard.process(to_messages(orders(new(1, 1, 1, BUY, 100, 5), new(2, 2, 1, BUY, 100, 2))))
    tops = shard.tops([4, 1])
    assert tops.tolist() == [(4, 100, 7, NO_PRICE, 0, 2), (1, NO_PRICE, 0, NO_PRICE, 0, 2)]
    with pytest.raises(ValueError, match=r"symbols \[2\] are not on shard 1"):
        shard.tops([1, 2])


def test_a_publishing_shard_replies_with_the_tops_of_the_symbols_its_batch_named():
    shard = EngineShard(1, 3, 7, publish_tops=True)
    batch = to_messages(orders(new(1, 1, 1, BUY, 100, 5), new(2, 2, 9, SELL, 101, 2)))
    reports, outbox, tops = shard.process(batch)  # local symbol 9 does not exist
    assert len(outbox) == 0 and ReportKind.REJECT in reports["kind"].tolist()
    assert tops.tolist() == [(4, 100, 5, NO_PRICE, 0, 2)]
    assert len(EngineShard(1, 3, 7).process(batch)) == 2  # the default: no tops


def test_maker_fills_wait_for_the_makers_backend():
    shard = EngineShard(0, 1, 1, n_backends=2)
    shard.process(to_messages(orders(new(1, 1, 0, BUY, 100, 5))), backend_id=1)
    _, outbox = shard.process(to_messages(orders(new(2, 2, 0, SELL, 100, 5))), backend_id=0)
    assert len(outbox) == 0  # account 1's fill is for backend 1
    _, outbox = shard.process(to_messages(orders()), backend_id=1)
    assert outbox["maker_id"].tolist() == [1] and outbox["maker_leaves"].tolist() == [0]
    _, outbox = shard.process(to_messages(orders()), backend_id=1)
    assert len(outbox) == 0  # delivered once


def test_journal_replays_to_the_same_trades_book_and_rejects(tmp_path):
    n_shards, n_symbols = 2, 5
    shards = [
        EngineShard(i, n_shards, n_symbols, stp="cancel-newest", journal=True)
        for i in range(n_shards)
    ]
    flow = OrderFlow(FlowParams(symbols=n_symbols, accounts=20), seed=11)
    fills = 0
    for _ in range(30):
        batch = flow.next_batch(400)
        routes = shard_of_symbol(batch["symbol"], n_shards)
        batch["symbol"] = local_symbol(batch["symbol"], n_shards)
        for i, shard in enumerate(shards):
            reports, _ = shard.process(batch[routes == i])
            fills += int(np.count_nonzero(reports["kind"] == ReportKind.FILL))
    assert fills > 1000
    for shard in shards:
        paths = write_journal(shard.journal_arrays(), tmp_path / "run")
        out = tmp_path / f"replay-{shard.shard_id}"
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
                "--stp",
                "cancel-newest",
            ],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        assert (out / "t.csv").read_text() == Path(paths["trades"]).read_text()
        assert (out / "b.csv").read_text() == Path(paths["book"]).read_text()
        assert (out / "r.csv").read_text() == Path(paths["rejects"]).read_text()
        assert len((out / "t.csv").read_text().splitlines()) > 100


def test_symbol_names_sort_like_indices():
    names = [symbol_name(i) for i in range(0, 12000, 7)]
    assert names == sorted(names)


def test_a_shard_starts_with_room_for_the_orders_it_is_given():
    assert EngineShard(0, 1, 2, orders=5000).engine.order_capacity >= 5000
    assert EngineShard(0, 1, 2).engine.order_capacity >= 1024
