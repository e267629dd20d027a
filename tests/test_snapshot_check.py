"""restore() checks a snapshot before it adopts it: truncated, foreign and tampered ones
raise SnapshotError naming what is wrong, and leave the engine as it was."""

import io

import numpy as np
import pytest

from actors.order_flow import FlowParams, OrderFlow
from engine import MatchingEngine, SnapshotError
from engine import kernels as K


@pytest.fixture(scope="module")
def engine():
    engine = MatchingEngine(4, orders=256, levels=64)
    flow = OrderFlow(FlowParams(symbols=4, accounts=30), seed=9)
    for _ in range(20):
        engine.process(flow.next_batch(500))
    assert engine.n_resting > 100
    return engine


def arrays_of(data: bytes) -> dict:
    with np.load(io.BytesIO(data)) as stored:
        return {name: stored[name].copy() for name in stored.files}


def snapshot_of(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def restore_fails(engine, data: bytes, match: str) -> None:
    fresh = MatchingEngine(1)
    before = fresh.state_hash()
    with pytest.raises(SnapshotError, match=match):
        fresh.restore(data)
    assert fresh.state_hash() == before  # left as it was
    assert fresh.n_resting == 0


def test_a_good_snapshot_restores_the_same_book(engine):
    copy = MatchingEngine.from_snapshot(engine.snapshot())
    assert copy.state_hash() == engine.state_hash()


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.99])
def test_a_truncated_snapshot_is_refused(engine, keep):
    data = engine.snapshot()
    restore_fails(engine, data[: int(len(data) * keep)], "not a readable snapshot")


def test_bytes_that_are_not_a_snapshot_are_refused(engine):
    restore_fails(engine, b"PK\x03\x04 certainly not a zip", "not a readable snapshot")
    restore_fails(engine, snapshot_of({"x": np.zeros(3)}), "lacks its header")


def _tampered(engine, change) -> bytes:
    arrays = arrays_of(engine.snapshot())
    change(arrays)
    return snapshot_of(arrays)


def _first_resting_row(arrays) -> int:
    side_levels = arrays["books"].reshape(-1, K.SIDE_WIDTH)[:, K.B_LEVELS]
    bs = int(np.flatnonzero(side_levels)[0])
    level = int(arrays["side_lvls"][bs, 0])
    return int(arrays["levels"][level * K.ROW_WIDTH + K.L_HEAD])


def _set_order(column, value):
    def change(arrays):
        o = _first_resting_row(arrays)
        arrays["orders"][o * K.ROW_WIDTH + column] = value

    return change


TAMPERINGS = {
    "another layout": (lambda a: a["_meta"].__setitem__(3, 99), "another state layout"),
    "an unknown stp code": (lambda a: a["_meta"].__setitem__(1, 7), "header is invalid"),
    "a missing array": (lambda a: a.pop("ladder"), "lacks the array 'ladder'"),
    "a wrong dtype": (
        lambda a: a.__setitem__("orders", a["orders"].astype(np.int32)),
        "'orders' is int32",
    ),
    "a cut pool": (
        lambda a: a.__setitem__("orders", a["orders"][:-3]),
        "not a whole number of 8-word rows",
    ),
    "a high-water mark past the pool": (
        lambda a: a["counters"].__setitem__(K.C_ORDER_HW, 10**9),
        "order high-water mark",
    ),
    "a resting count that is off by one": (
        lambda a: a["counters"].__setitem__(K.C_RESTING, a["counters"][K.C_RESTING] - 1),
        "free list of order rows|counters disagree",
    ),
    "an order pointing outside the pool": (
        _set_order(K.O_NEXT, 10**9),
        "queue is out of range",
    ),
    "an order on another level": (_set_order(K.O_LEVEL, -5), "mislinked"),
    "an order with no quantity": (_set_order(K.O_QTY, 0), "quantity"),
    "an order whose id moved": (_set_order(K.O_ID, 123456789), "id table"),
    "a free-list cycle": (
        lambda a: (
            a["counters"].__setitem__(K.C_ORDER_FREE, 0),
            a["orders"].__setitem__(0 * K.ROW_WIDTH + K.O_NEXT, 0),
        ),
        "free list of order rows",
    ),
    "a wiped id table": (lambda a: a["h_table"].fill(0), "id table"),
    "an id table of the wrong size": (
        lambda a: a.__setitem__("h_table", a["h_table"][:100]),
        "power of two",
    ),
}


@pytest.mark.parametrize("what", TAMPERINGS)
def test_a_tampered_snapshot_is_refused_naming_what_is_wrong(engine, what):
    change, match = TAMPERINGS[what]
    restore_fails(engine, _tampered(engine, change), match)
