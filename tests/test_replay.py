"""``lab replay``: the ORDERS.csv reader and writer, the output files, and the CLI's errors."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lab.replay.orders_csv as orders_csv
import lab.replay.run as replay
from actors.order_flow import FlowParams, OrderFlow
from engine import (
    MESSAGE_DTYPE,
    NO_PRICE,
    Action,
    MatchingEngine,
    OrderType,
    Reason,
    ReportKind,
    Side,
)
from lab.errors import InputError
from lab.replay.orders_csv import ORDER_COLUMNS, read_orders_csv, write_orders_csv
from lab.replay.run import replay_csv

ROOT = Path(__file__).resolve().parents[1]

# MSFT comes first in the file but AAPL first in name order, so it is symbol 0.
HAND_ORDERS = """\
seq,action,order_id,account,symbol,side,type,price,qty
1,NEW,1,10,MSFT,S,LIMIT,101,5
2,NEW,2,11,MSFT,S,LIMIT,100,5
3,NEW,3,12,AAPL,B,LIMIT,50,10
4,NEW,4,13,MSFT,B,LIMIT,101,7
5,NEW,5,13,MSFT,B,FOK,101,4
6,NEW,6,14,MSFT,B,IOC,101,2
7,CANCEL,3,12,AAPL,,,,
8,CANCEL,99,,AAPL,,,,
9,FOO,9,1,AAPL,B,LIMIT,1,1
10,NEW,10,1,AAPL,X,LIMIT,1,1
11,NEW,11,1,AAPL,B,GTC,1,1
12,NEW,12,1,AAPL,B,LIMIT,52,4
13,NEW,12,1,AAPL,B,LIMIT,53,4
14,MODIFY,12,1,AAPL,S,IOC,,2
15,NEW,15,2,AAPL,B,LIMIT,52,3
16,NEW,16,3,AAPL,S,LIMIT,60,3
17,NEW,17,4,AAPL,B,LIMIT,,5
18,NEW,18,4,AAPL,S,MARKET,,0
19,MODIFY,16,3,AAPL,,,55,3
20,NEW,20,5,MSFT,S,LIMIT,99,1
"""
HAND_TRADES = """\
seq,symbol,taker_id,maker_id,price,qty
4,MSFT,4,2,100,5
4,MSFT,4,1,101,2
6,MSFT,6,1,101,2
"""
HAND_BOOK = """\
symbol,side,order_id,price,qty
AAPL,B,12,52,2
AAPL,B,15,52,3
AAPL,S,16,55,3
MSFT,S,20,99,1
MSFT,S,1,101,1
"""
HAND_REJECTS = """\
seq,order_id,reason
8,99,UNKNOWN_ORDER
9,9,BAD_ACTION
10,10,BAD_SIDE
11,11,BAD_TYPE
13,12,DUPLICATE_ORDER_ID
17,17,BAD_PRICE
18,18,BAD_QTY
"""


def outputs(directory: Path) -> tuple[Path, Path, Path]:
    return directory / "TRADES.csv", directory / "BOOK.csv", directory / "REJECTS.csv"


def replay_text(tmp_path: Path, orders: str, stp: str = "none") -> tuple[str, str, str]:
    """Replay ``orders`` in-process; the texts of TRADES, BOOK and REJECTS."""
    src = tmp_path / "ORDERS.csv"
    src.write_text(orders, encoding="utf-8")
    paths = outputs(tmp_path)
    replay_csv(src, *paths, stp=stp)
    return tuple(p.read_text(encoding="utf-8") for p in paths)


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lab", "replay", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def reorder_columns(text: str, order: list[str], extra: dict[str, str]) -> str:
    """The same CSV with its columns in ``order`` and ``extra`` columns (name -> value) mixed in."""
    lines = [line.split(",") for line in text.splitlines()]
    index = {name: i for i, name in enumerate(lines[0])}
    names = list(order)
    for position, name in enumerate(extra):
        names.insert(2 * position + 1, name)
    rows = [names]
    for fields in lines[1:]:
        rows.append([extra[n] if n in extra else fields[index[n]] for n in names])
    return "\n".join(",".join(row) for row in rows) + "\n"


# -- the output files ------------------------------------------------------------


def test_hand_made_orders_give_known_trades_book_and_rejects(tmp_path):
    assert replay_text(tmp_path, HAND_ORDERS) == (HAND_TRADES, HAND_BOOK, HAND_REJECTS)


def test_cli_replay_writes_the_files_and_a_summary(tmp_path):
    src = tmp_path / "ORDERS.csv"
    src.write_text(HAND_ORDERS, encoding="utf-8")
    trades, book, rejects = outputs(tmp_path)
    proc = run_cli(src, "--trades", trades, "--book", book, "--rejects", rejects)
    assert proc.returncode == 0, proc.stderr
    assert "20 rows" in proc.stderr and "3 trades" in proc.stderr
    assert "7 rejects" in proc.stderr and "5 resting" in proc.stderr
    # Rejects by reason: one of each of the seven the hand-made file provokes.
    for reason in ("UNKNOWN_ORDER", "BAD_ACTION", "BAD_SIDE", "BAD_TYPE", "BAD_QTY"):
        assert f"{reason} 1" in proc.stderr
    assert "every row was rejected" not in proc.stderr
    assert trades.read_text() == HAND_TRADES
    assert book.read_text() == HAND_BOOK
    assert rejects.read_text() == HAND_REJECTS
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["ORDERS.csv", "TRADES.csv", "BOOK.csv", "REJECTS.csv"]
    )


@pytest.mark.parametrize("vectorised", [True, False])
def test_sides_spelt_buy_and_sell_read_as_b_and_s(tmp_path, vectorised):
    spelt = HAND_ORDERS.replace(",B,", ",BUY,").replace(",S,", ",SELL,")
    if not vectorised:  # a quoted field sends the file down the row-by-row reader
        spelt = spelt.replace("1,NEW,1,10,MSFT", '1,NEW,1,10,"MSFT"')
    assert replay_text(tmp_path, spelt) == (HAND_TRADES, HAND_BOOK, HAND_REJECTS)


def test_a_file_whose_every_row_is_rejected_says_so(tmp_path):
    src = tmp_path / "ORDERS.csv"
    src.write_text(HAND_ORDERS.splitlines()[0] + "\n1,NEW,1,10,MSFT,LONG,LIMIT,101,5\n")
    trades, book, rejects = outputs(tmp_path)
    proc = run_cli(src, "--trades", trades, "--book", book, "--rejects", rejects)
    assert proc.returncode == 0, proc.stderr
    assert "1 rejects (BAD_SIDE 1)" in proc.stderr and "every row was rejected" in proc.stderr


def test_column_order_does_not_matter_and_extra_columns_are_ignored(tmp_path):
    order = ["qty", "symbol", "price", "seq", "type", "account", "side", "order_id", "action"]
    text = reorder_columns(HAND_ORDERS, order, {"note": "x", "ts": "12:00:01", "venue": ""})
    assert text.splitlines()[0].startswith("qty,note,symbol,ts,price,venue,seq")
    assert replay_text(tmp_path, text) == (HAND_TRADES, HAND_BOOK, HAND_REJECTS)


def test_quotes_spaces_crlf_and_blank_lines_read_the_same(tmp_path):
    lines = HAND_ORDERS.splitlines()
    header = " " + lines[0].replace(",", " , ").upper()
    body = [
        ", ".join(f'"{f}"' if i == 4 else f for i, f in enumerate(line.split(",")))
        for line in lines[1:]
    ]
    body.insert(3, "")
    text = "\r\n".join([header, *body, "", ""])
    assert replay_text(tmp_path, text) == (HAND_TRADES, HAND_BOOK, HAND_REJECTS)


def test_self_trade_prevention_changes_the_result(tmp_path):
    orders = """\
seq,action,order_id,account,symbol,side,type,price,qty
1,NEW,1,7,XYZ,S,LIMIT,100,10
2,NEW,2,7,XYZ,B,LIMIT,100,4
"""
    trades, book, rejects = replay_text(tmp_path, orders, stp="none")
    assert trades.splitlines()[1:] == ["2,XYZ,2,1,100,4"]
    assert book.splitlines()[1:] == ["XYZ,S,1,100,6"]
    trades, book, rejects = replay_text(tmp_path, orders, stp="cancel-newest")
    assert trades.splitlines()[1:] == []
    assert book.splitlines()[1:] == ["XYZ,S,1,100,10"]  # the incoming order is cancelled
    assert rejects.splitlines()[1:] == []  # an STP cancel is not a reject


def test_empty_orders_file_gives_header_only_outputs(tmp_path):
    trades, book, rejects = replay_text(tmp_path, ",".join(ORDER_COLUMNS) + "\n")
    assert trades == "seq,symbol,taker_id,maker_id,price,qty\n"
    assert book == "symbol,side,order_id,price,qty\n"
    assert rejects == "seq,order_id,reason\n"


# -- malformed input ---------------------------------------------------------------

HEADER = "seq,action,order_id,account,symbol,side,type,price,qty"
GOOD = "1,NEW,1,10,AAPL,B,LIMIT,100,5"


@pytest.mark.parametrize(
    "rows, line, words",
    [
        ([GOOD, "2,NEW,2,10,AAPL,B,LIMIT,100,5,9"], 3, "10 columns"),
        ([GOOD, "2,NEW,2,10,AAPL,B,LIMIT,100"], 3, "8 columns"),
        ([GOOD, GOOD, "x3,NEW,3,10,AAPL,B,LIMIT,100,5"], 4, "seq"),
        (["1,NEW,1.0,10,AAPL,B,LIMIT,100,5"], 2, "order_id"),
        ([GOOD, "2,NEW,2,ten,AAPL,B,LIMIT,100,5"], 3, "account"),
        ([GOOD, "2,NEW,2,10,AAPL,B,LIMIT,100.5,5"], 3, "price"),
        ([GOOD, "2,NEW,2,10,AAPL,B,LIMIT,100,5e2"], 3, "qty"),
        ([GOOD, "2,NEW,2,10,AAPL,B,LIMIT,100,"], 3, "qty"),
        ([GOOD, "2,MODIFY,1,,AAPL,,,101,"], 3, "qty"),
        ([GOOD, "2,NEW,2,10,AAPL,B,LIMIT,100,99999999999999999999"], 3, "int64"),
    ],
    ids=[
        "extra-column",
        "missing-column",
        "seq",
        "order_id",
        "account",
        "price",
        "qty",
        "empty-qty-new",
        "empty-qty-modify",
        "qty-too-big",
    ],
)
def test_malformed_row_exits_2_naming_the_line_and_writes_nothing(tmp_path, rows, line, words):
    src = tmp_path / "ORDERS.csv"
    src.write_text("\n".join([HEADER, *rows]) + "\n")
    trades, book, rejects = outputs(tmp_path)
    proc = run_cli(src, "--trades", trades, "--book", book, "--rejects", rejects)
    assert proc.returncode == 2, proc.stderr
    assert f"line {line}:" in proc.stderr and words in proc.stderr
    assert str(src) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["ORDERS.csv"]


def test_missing_header_column_exits_2_naming_line_1(tmp_path):
    src = tmp_path / "ORDERS.csv"
    src.write_text("seq,action,order_id,account,symbol,side,type,price\n1,NEW,1,1,A,B,LIMIT,1\n")
    trades, book, rejects = outputs(tmp_path)
    proc = run_cli(src, "--trades", trades, "--book", book, "--rejects", rejects)
    assert proc.returncode == 2
    assert "line 1:" in proc.stderr and "qty" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["ORDERS.csv"]


def test_bad_stp_exits_2(tmp_path):
    src = tmp_path / "ORDERS.csv"
    src.write_text(HAND_ORDERS)
    trades, book, rejects = outputs(tmp_path)
    proc = run_cli(src, "--trades", trades, "--book", book, "--rejects", rejects, "--stp", "x")
    assert proc.returncode == 2
    assert "--stp" in proc.stderr and "Traceback" not in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["ORDERS.csv"]


def test_error_on_a_late_line_leaves_existing_outputs_untouched(tmp_path):
    src = tmp_path / "ORDERS.csv"
    src.write_text(HAND_ORDERS + "21,NEW,21,1,AAPL,B,LIMIT,1,x\n")
    paths = outputs(tmp_path)
    for p in paths:
        p.write_text("old\n")
    with pytest.raises(InputError, match="line 22: qty"):
        replay_csv(src, *paths)
    assert [p.read_text() for p in paths] == ["old\n"] * 3
    assert len(list(tmp_path.iterdir())) == 4  # no temporary files left behind


def test_missing_input_file_and_output_directory_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        read_orders_csv(tmp_path / "nope.csv")
    src = tmp_path / "ORDERS.csv"
    src.write_text(HAND_ORDERS)
    with pytest.raises(InputError, match="does not exist"):
        replay_csv(src, tmp_path / "no" / "T.csv", tmp_path / "B.csv", tmp_path / "R.csv")


def test_the_earliest_bad_line_is_reported(tmp_path):
    src = tmp_path / "ORDERS.csv"
    src.write_text("\n".join([HEADER, GOOD, "2,NEW,2,x,AAPL,B,LIMIT,1,1", "3,NEW"]) + "\n")
    with pytest.raises(InputError, match="line 3: account"):
        read_orders_csv(src)


# -- reading and writing ORDERS.csv -------------------------------------------------


def generated_messages(n: int, seed: int = 1, accounts: int = 50) -> np.ndarray:
    """The standard flow with some FOKs, and a few bad sides and actions for rejects."""
    params = FlowParams(symbols=5, accounts=accounts, price_levels=20)
    messages = OrderFlow(params, seed=seed).next_batch(n)
    rng = np.random.default_rng(seed)
    new = messages["action"] == Action.NEW
    ioc = new & (messages["type"] == OrderType.IOC)
    messages["type"][ioc & (rng.random(n) < 0.5)] = OrderType.FOK
    messages["side"][new & (rng.random(n) < 0.001)] = 0
    messages["action"][rng.random(n) < 0.001] = 0
    return messages


SYMBOLS = ["BRK.B", "GOOG", "IBM", "MSFT", "ZVZZT"]


def test_write_then_read_round_trips(tmp_path):
    messages = generated_messages(20_000)
    path = tmp_path / "ORDERS.csv"
    write_orders_csv(path, messages, SYMBOLS)
    got, symbols = read_orders_csv(path)
    expected = messages.copy()
    not_new = (expected["action"] == Action.CANCEL) | (expected["action"] == Action.MODIFY)
    expected["side"][not_new] = 0
    expected["type"][not_new] = 0
    assert symbols == SYMBOLS
    assert got.dtype == MESSAGE_DTYPE
    np.testing.assert_array_equal(got, expected)


def test_round_trip_of_awkward_symbol_names(tmp_path):
    names = sorted(["A,B", 'say "hi"', "Zürich", "plain"])
    messages = np.zeros(4, dtype=MESSAGE_DTYPE)
    messages["seq"] = np.arange(4)
    messages["action"] = Action.NEW
    messages["order_id"] = np.arange(4) + 1
    messages["symbol"] = np.arange(4)
    messages["side"] = Side.BUY
    messages["type"] = [OrderType.LIMIT, OrderType.MARKET, OrderType.IOC, OrderType.FOK]
    messages["price"] = [5, NO_PRICE, -3, 2**62]
    messages["qty"] = 1
    path = tmp_path / "ORDERS.csv"
    write_orders_csv(path, messages, names)
    got, symbols = read_orders_csv(path)
    assert symbols == names
    np.testing.assert_array_equal(got, messages)


def test_plain_files_take_the_vectorised_path(tmp_path, monkeypatch):
    path = tmp_path / "ORDERS.csv"
    write_orders_csv(path, generated_messages(5_000), SYMBOLS)
    expected = read_orders_csv(path)

    def refuse(*args):
        raise AssertionError("the row-by-row reader was used")

    monkeypatch.setattr(orders_csv, "_read_slow", refuse)
    got = read_orders_csv(path)
    np.testing.assert_array_equal(got[0], expected[0])


def _random_field(rng: random.Random, column: str) -> str:
    if column == "action":
        return rng.choice(["NEW"] * 6 + ["CANCEL", "MODIFY", "FOO", "", "new"])
    if column == "side":
        return rng.choice(["B", "S", "B", "S", "", "X", "BB"])
    if column == "type":
        return rng.choice(["LIMIT", "MARKET", "IOC", "FOK", "", "GTC", "LIMITED"])
    if column == "symbol":
        return rng.choice(["AAPL", "MSFT", "", "BRK.B", "Ä" * 3, "L" * 30, "M" * 70])
    roll = rng.random()
    if roll < 0.85:
        return str(rng.randint(-(10 ** rng.randint(1, 18)), 10 ** rng.randint(1, 18)))
    return rng.choice(
        [
            "",
            "007",
            "-0",
            "-",
            "+3",
            "1.5",
            "x",
            str(2**63 - 1),
            str(-(2**63)),
            str(2**63),
            "1" * 19,
        ]
    )


def _outcome(read, *args):
    try:
        messages, symbols = read(*args)
    except InputError as exc:
        return ("error", str(exc))
    return ("ok", messages.tobytes(), symbols)


def test_vectorised_and_row_by_row_readers_agree_on_random_files(tmp_path):
    """The csv-module reader is the reference for the vectorised one."""
    rng = random.Random(7)
    path = tmp_path / "ORDERS.csv"
    seen = set()
    for trial in range(400):
        rows = [HEADER]
        for _ in range(rng.randint(0, 12)):
            fields = [_random_field(rng, c) if rng.random() < 0.3 else None for c in ORDER_COLUMNS]
            base = ["1", "NEW", "1", "1", "AAPL", "B", "LIMIT", "10", "1"]
            row = [f if f is not None else b for f, b in zip(fields, base, strict=True)]
            if rng.random() < 0.02:
                row.append("extra")
            rows.append(",".join(row))
        data = ("\n".join(rows) + ("\n" if trial % 3 else "")).encode()
        path.write_bytes(data)
        fast = _outcome(read_orders_csv, path)
        slow = _outcome(orders_csv._read_slow, path, data)
        assert fast == slow, data.decode()
        seen.add(fast[0])
    assert seen == {"ok", "error"}


# -- a large replay against the engine ------------------------------------------------


@pytest.mark.parametrize("stp", ["none", "cancel-newest"])
def test_large_replay_matches_the_engine_run_directly(tmp_path, stp):
    messages = generated_messages(200_000, seed=3, accounts=20)
    src = tmp_path / "ORDERS.csv"
    write_orders_csv(src, messages, SYMBOLS)
    paths = outputs(tmp_path)
    summary = replay_csv(src, *paths, stp=stp)

    engine = MatchingEngine(len(SYMBOLS), stp=stp)
    reports = engine.process(messages)  # one batch, where the replay uses many
    fills = reports[reports["kind"] == ReportKind.FILL]
    rejects = reports[reports["kind"] == ReportKind.REJECT]
    trades = [
        f"{seq},{SYMBOLS[sym]},{taker},{maker},{price},{qty}"
        for seq, sym, taker, maker, price, qty in fills[
            ["seq", "symbol", "order_id", "maker_id", "price", "qty"]
        ].tolist()
    ]
    book = [
        f"{SYMBOLS[sym]},{'B' if side == Side.BUY else 'S'},{oid},{price},{qty}"
        for sym, side, oid, price, qty in engine.resting_orders()[
            ["symbol", "side", "order_id", "price", "qty"]
        ].tolist()
    ]
    assert len(fills) > 10_000 and len(rejects) > 100
    assert paths[0].read_text().splitlines() == [",".join(replay.TRADES_COLUMNS), *trades]
    assert paths[1].read_text().splitlines() == [",".join(replay.BOOK_COLUMNS), *book]
    got_rejects = paths[2].read_text().splitlines()[1:]
    assert [line.split(",")[:2] for line in got_rejects] == [
        [str(s), str(o)] for s, o in rejects[["seq", "order_id"]].tolist()
    ]
    assert (summary.messages, summary.trades, summary.rejects, summary.resting) == (
        len(messages),
        len(fills),
        len(rejects),
        len(book),
    )


def test_vectorised_reader_parses_every_width_of_integer(tmp_path, monkeypatch):
    values = [int("9876543210987654321"[:k]) for k in range(1, 19)]
    values += [-v for v in values] + [0, 7, 10**17, -(10**17) + 1]
    rows = [HEADER] + [f"{v},NEW,{v},{v},S,B,LIMIT,{v},{v}" for v in values]
    path = tmp_path / "ORDERS.csv"
    path.write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(orders_csv, "_read_slow", None)  # must not be needed
    messages, _ = read_orders_csv(path)
    for name in ("seq", "order_id", "account", "price", "qty"):
        assert messages[name].tolist() == values


# -- the ownership rule on held-out streams ---------------------------------------------


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_held_out_streams_with_foreign_cancels_match_the_reference(tmp_path, seed):
    """Streams not used while building the engine, a share of whose cancels and modifies
    come from accounts that do not own the order: the replay gives the reference's trades,
    book and rejects, NOT_OWNER ones included."""
    from reference_book import ReferenceEngine

    messages = generated_messages(20_000, seed=seed, accounts=20)
    rng = np.random.default_rng([seed, 1])  # not the flow's own stream (seed alone)
    amend = (messages["action"] == Action.CANCEL) | (messages["action"] == Action.MODIFY)
    foreign = amend & (rng.random(len(messages)) < 0.15)
    messages["account"][foreign] = messages["account"][foreign] % 20 + 1  # another account
    src = tmp_path / "ORDERS.csv"
    write_orders_csv(src, messages, SYMBOLS)
    paths = outputs(tmp_path)
    replay_csv(src, *paths, stp="none")

    reference = ReferenceEngine(len(SYMBOLS))
    messages, _ = read_orders_csv(src)  # as the replay reads them
    reports = np.concatenate(
        [reference.process(messages[i : i + 1000]) for i in range(0, 20_000, 1000)]
    )
    fills = reports[reports["kind"] == ReportKind.FILL]
    rejects = reports[reports["kind"] == ReportKind.REJECT]
    trades = [
        ",".join(str(v) for v in (seq, SYMBOLS[sym], taker, maker, price, qty))
        for seq, sym, taker, maker, price, qty in fills[
            ["seq", "symbol", "order_id", "maker_id", "price", "qty"]
        ].tolist()
    ]
    book = [
        f"{SYMBOLS[r['symbol']]},{'B' if r['side'] == Side.BUY else 'S'},{r['order_id']},"
        f"{r['price']},{r['qty']}"
        for r in reference.resting_orders()
    ]
    wanted_rejects = [
        [str(s), str(o), Reason.name_of(int(r))]
        for s, o, r in rejects[["seq", "order_id", "reason"]].tolist()
    ]
    not_owner = sum(1 for _, _, reason in wanted_rejects if reason == "NOT_OWNER")
    assert not_owner > 100  # the rule was exercised
    assert paths[0].read_text().splitlines()[1:] == trades
    assert paths[1].read_text().splitlines()[1:] == book
    got = [line.split(",")[:3] for line in paths[2].read_text().splitlines()[1:]]
    assert got == wanted_rejects
