"""``OrderCache`` against a real Redis and a real ``MatchingEngine``.

Each test uses its own key prefix and deletes its keys after. The states the
cache holds are compared with what the engine did: report by report in the
small tests, and against a plain-Python replay of every report (and the
engine's resting book) on a generated flow.
"""

import asyncio
import json
import uuid

import numpy as np
import pytest

from actors.order_cache import TOP_DTYPE, OrderCache
from actors.order_flow import FlowParams, OrderFlow
from actors.order_updates import DIGITS, order_updates
from engine import MatchingEngine
from engine.messages import (
    MESSAGE_DTYPE,
    NO_PRICE,
    REPORT_DTYPE,
    Action,
    OrderType,
    Reason,
    ReportKind,
    Side,
)
from tests.conftest import REDIS_URL

BUY, SELL = Side.BUY, Side.SELL


def run(coro):
    return asyncio.run(coro)


def messages(*rows) -> np.ndarray:
    """Messages from (action, order_id, account, side, type, price, qty, symbol) rows."""
    out = np.zeros(len(rows), MESSAGE_DTYPE)
    for k, (action, oid, acct, side, typ, price, qty, sym) in enumerate(rows):
        price = NO_PRICE if price is None else price
        out[k] = (k, oid, acct, price, qty, sym, action, side, typ, 0)
    return out


def new(oid, acct, side, price, qty, typ=OrderType.LIMIT, sym=0):
    return (Action.NEW, oid, acct, side, typ, price, qty, sym)


def cancel(oid, acct, sym=0):
    return (Action.CANCEL, oid, acct, 0, 0, None, 0, sym)


def modify(oid, acct, price, qty, sym=0):
    return (Action.MODIFY, oid, acct, 0, 0, price, qty, sym)


async def cached(test, ttl_s=3600):
    """Run ``test(cache)`` with a fresh prefix; its keys are deleted after."""
    cache = OrderCache(REDIS_URL, f"test:order_cache:{uuid.uuid4().hex}:", ttl_s=ttl_s)
    try:
        return await test(cache)
    finally:
        await cache.delete_all()
        await cache.close()


def test_a_batch_through_the_engine_leaves_each_order_in_its_state():
    engine = MatchingEngine(2)
    batch = messages(
        new(1, 11, BUY, 100, 10),  # rests, then partly filled by 2
        new(2, 12, SELL, 100, 4),  # takes 4 of 1: filled
        new(3, 13, SELL, 105, 5),  # rests, then cancelled
        cancel(3, 13),
        new(4, 14, SELL, 106, 5),  # rests, then modified
        modify(4, 14, 107, 8),
        new(5, 15, BUY, 90, 3, typ=OrderType.IOC),  # nothing to take: expired
        new(6, 16, SELL, 0, 3, typ=OrderType.MARKET),  # market: fills 3 of 1, no price
        new(7, 17, BUY, 100, 0),  # bad qty: rejected
        new(1, 18, SELL, 200, 1),  # duplicate of live order 1: must not touch it
        cancel(99, 19),  # unknown order: no state
    )
    reports = engine.process(batch)
    assert (reports["kind"] == ReportKind.REJECT).sum() == 3  # bad qty, duplicate, unknown

    async def test(cache):
        applied = await cache.record(batch, reports)
        states = {oid: await cache.get_order(0, oid) for oid in range(1, 8)}
        return applied, states, await cache.get_order(0, 99)

    applied, states, unknown = run(cached(test))
    assert applied == 7
    assert unknown is None
    assert states[1] == {
        "symbol": 0, "order_id": 1, "status": "open", "leaves": 3, "price": 100, "qty": 10,
        "side": BUY, "account": 11,
    }  # fmt: skip
    assert states[2]["status"] == "filled" and states[2]["leaves"] == 0
    assert states[3]["status"] == "canceled" and states[3]["leaves"] == 0
    assert states[4] == {
        "symbol": 0, "order_id": 4, "status": "open", "leaves": 8, "price": 107, "qty": 8,
        "side": SELL, "account": 14,
    }  # fmt: skip
    assert states[5]["status"] == "expired" and states[5]["leaves"] == 0
    assert states[6]["status"] == "filled" and states[6]["price"] is None
    assert states[7]["status"] == "rejected" and states[7]["account"] == 17


def test_a_later_fill_changes_the_makers_leaves_and_status():
    engine = MatchingEngine(1)
    first = messages(new(1, 11, BUY, 100, 10), new(2, 12, BUY, 99, 5))
    second = messages(new(3, 13, SELL, 100, 4))
    third = messages(new(4, 14, SELL, 99, 20))  # takes the rest of 1, all of 2, rests 9

    async def test(cache):
        seen = []
        for batch in (first, second, third):
            await cache.record(batch, engine.process(batch))
            seen.append({oid: await cache.get_order(0, oid) for oid in (1, 2, 4)})
        return seen

    after_first, after_second, after_third = run(cached(test))
    assert after_first[1]["leaves"] == 10 and after_first[1]["status"] == "open"
    assert after_second[1]["leaves"] == 6 and after_second[1]["status"] == "open"
    assert after_second[1]["price"] == 100 and after_second[1]["account"] == 11  # kept
    assert after_third[1]["status"] == "filled" and after_third[1]["leaves"] == 0
    assert after_third[2]["status"] == "filled"
    assert after_third[4]["status"] == "open" and after_third[4]["leaves"] == 9


def test_the_top_of_book_reaches_a_subscriber():
    engine = MatchingEngine(2)
    batch = messages(
        new(1, 11, BUY, 100, 3),
        new(2, 12, BUY, 100, 4),
        new(3, 13, BUY, 99, 50),
        new(4, 14, SELL, 103, 7),
        new(5, 15, SELL, 101, 2, sym=1),
    )
    reports = engine.process(batch)
    tops = engine.tops([0, 1])
    assert tops.dtype == TOP_DTYPE
    assert (engine.best_prices(0), engine.best_prices(1)) == ((100, 103), (None, 101))

    async def test(cache):
        pubsub = cache.redis.pubsub()
        await pubsub.subscribe(cache.top_channel(0), cache.top_channel(1))
        for _ in range(2):  # the subscribe confirmations
            await pubsub.get_message(timeout=5)
        await cache.record(batch, reports, tops)
        got = {}
        for _ in range(10):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            if message is not None:
                got[message["channel"].decode()] = json.loads(message["data"])
            if len(got) == 2:
                break
        await pubsub.aclose()
        return got, cache.top_channel(0), cache.top_channel(1)

    got, zero, one = run(cached(test))
    n = engine.messages  # the seq of both tops: all of the batch
    assert got[zero] == {"symbol": 0, "bid": 100, "bid_qty": 7, "ask": 103, "ask_qty": 7, "seq": n}
    assert got[one] == {"symbol": 1, "bid": None, "bid_qty": 0, "ask": 101, "ask_qty": 2, "seq": n}


def test_every_key_has_a_ttl_and_expires():
    batch = messages(new(1, 11, BUY, 100, 10))
    reports = MatchingEngine(1).process(batch)

    async def lasting(cache):
        await cache.record(batch, reports)
        return await cache.redis.ttl(cache.order_key(0, 1))

    ttl = run(cached(lasting, ttl_s=600))
    assert 0 < ttl <= 600

    async def short(cache):
        await cache.record(batch, reports)
        present = await cache.get_order(0, 1)
        await asyncio.sleep(4.2)
        return present, await cache.get_order(0, 1)

    present, later = run(cached(short, ttl_s=3))
    assert present is not None and later is None


def test_a_lost_script_is_loaded_again():
    batch = messages(new(1, 11, BUY, 100, 10))
    reports = MatchingEngine(1).process(batch)

    async def test(cache):
        cache._sha = "0" * 40  # a script the server does not have: it answers NOSCRIPT
        applied = await cache.record(batch, reports)
        return applied, await cache.get_order(0, 1)

    applied, state = run(cached(test))
    assert applied == 1 and state["leaves"] == 10


def replay(reports: np.ndarray, messages: np.ndarray, states: dict) -> None:
    """The cache's rules, report by report, in plain Python: the reference."""
    by_seq = {int(m["seq"]): m for m in messages}
    for r in reports.tolist():
        seq, oid, acct, maker, _, price, qty, leaves, maker_leaves, sym, kind = r[:11]
        reason, side = r[11], r[12]
        key = (sym, oid)
        if kind == ReportKind.ACK:
            states[key] = {"status": "open", "leaves": leaves, "qty": qty, "side": side,
                           "account": acct, "symbol": sym, "price": None if price == NO_PRICE
                           else price}  # fmt: skip
        elif kind == ReportKind.FILL:
            states.setdefault(key, {}).update(status="filled" if leaves == 0 else "open",
                                              leaves=leaves)  # fmt: skip
            states.setdefault((sym, maker), {}).update(
                status="filled" if maker_leaves == 0 else "open", leaves=maker_leaves
            )
        elif kind in (ReportKind.CANCELED, ReportKind.EXPIRED):
            word = "canceled" if kind == ReportKind.CANCELED else "expired"
            states.setdefault(key, {}).update(status=word, leaves=0)
        elif kind == ReportKind.MODIFIED:
            states.setdefault(key, {}).update(status="open", leaves=leaves, qty=qty, price=price)
        elif kind == ReportKind.REJECT and reason != Reason.DUPLICATE_ORDER_ID:
            message = by_seq.get(seq)
            if message is not None and message["action"] == Action.NEW and key not in states:
                states[key] = {"status": "rejected", "leaves": 0, "qty": qty, "side": side,
                               "account": acct, "symbol": sym, "price": None if price == NO_PRICE
                               else price}  # fmt: skip


@pytest.mark.parametrize("batch_size, messy", [(1, False), (37, False), (37, True), (4096, True)])
def test_a_generated_flow_matches_a_replay_of_every_report_and_the_book(batch_size, messy):
    """``messy``: some orders reuse another's id, some have no quantity (REJECTs)."""
    params = FlowParams(symbols=4, accounts=50, price_levels=10, max_qty=20)
    flow = OrderFlow(params, seed=7)
    engine = MatchingEngine(params.symbols)
    rng = np.random.default_rng(3)
    batches = []
    total = 600 if batch_size == 1 else 12_000
    for _ in range(0, total, batch_size):
        batch = flow.next_batch(batch_size)
        if messy:
            batch["order_id"][rng.integers(0, batch_size, batch_size // 8)] = batch["order_id"][0]
            batch["qty"][rng.integers(0, batch_size, batch_size // 8)] = 0
        reports = engine.process(batch)
        flow.keep_only(engine.is_resting(*flow.live_orders))
        batches.append((batch, reports))
    expected: dict = {}
    for batch, reports in batches:
        replay(reports, batch, expected)
    kinds = np.concatenate([r["kind"] for _, r in batches])
    assert {ReportKind.FILL, ReportKind.CANCELED, ReportKind.MODIFIED} <= set(kinds.tolist())
    if messy:
        reasons = set(np.concatenate([r["reason"] for _, r in batches]).tolist())
        assert {Reason.DUPLICATE_ORDER_ID, Reason.BAD_QTY} <= reasons

    async def test(cache):
        for batch, reports in batches:
            await cache.record(batch, reports)
        pipe = cache.redis.pipeline(transaction=False)
        for sym, oid in expected:
            pipe.hgetall(cache.order_key(sym, oid))
        raw = await pipe.execute()
        keys = [key async for key in cache.redis.scan_iter(match=cache.prefix + "*", count=1000)]
        return raw, len(keys)

    raw, n_keys = run(cached(test))
    assert n_keys == len(expected)
    got = {}
    for key, fields in zip(expected, raw, strict=True):
        state = {k.decode(): v.decode() for k, v in fields.items()}
        got[key] = {k: v if k == "status" else int(v) for k, v in state.items()}
        if "qty" in got[key]:  # a market order's hash has no price
            got[key].setdefault("price", None)
    assert got == expected
    # And the engine agrees: the open orders are its resting book.
    resting = engine.resting_orders()
    book = {(int(r["symbol"]), int(r["order_id"])): int(r["qty"]) for r in resting}
    open_orders = {key: s["leaves"] for key, s in got.items() if s["status"] == "open"}
    assert open_orders == book


def test_records_carry_any_int64_as_its_exact_decimal_text():
    values = [2**63 - 1, -(2**63), -5, 0, 10**18, 9]
    reports = np.zeros(len(values), REPORT_DTYPE)
    reports["kind"] = ReportKind.ACK
    reports["order_id"] = np.arange(1, len(values) + 1)
    reports["account"], reports["price"], reports["qty"] = values, values[::-1], values
    records = order_updates(np.zeros(0, MESSAGE_DTYPE), reports)

    def number(record, name):
        return int(record[name][DIGITS - record[f"n_{name}"] :])

    assert [number(r, "account") for r in records] == values
    assert [number(r, "qty") for r in records] == values
    # A price of NO_PRICE (int64 min) is a market order's: no price field at all.
    assert [number(r, "price") if r["n_price"] else None for r in records] == [
        None if v == NO_PRICE else v for v in values[::-1]
    ]
