"""Backend: batch checks, per-account risk limits, routing to shards (in-process, no Ray)."""

import asyncio

import numpy as np
import pytest

from actors.backend import ShardFailed
from actors.order_flow import FlowParams, OrderFlow
from actors.report_digest import digest_reports
from actors.risk import RiskLimits
from actors.routing import first_order_id
from actors.wire import MAKER_DONE, BadBatch
from engine import REPORT_DTYPE, MatchingEngine, Reason, ReportKind
from tests.pipeline_fixtures import BUY, SELL, build, cancel, modify, new, orders


def submit(backend, batch):
    return asyncio.run(backend.submit(batch))


def reasons_of(reports):
    rejects = reports[reports["kind"] == ReportKind.REJECT]
    return {int(r["order_id"]): Reason.name_of(int(r["reason"])) for r in rejects}


def test_routed_flow_matches_one_engine_over_all_symbols():
    shards, (backend,) = build(n_shards=3, n_symbols=6, n_accounts=50)
    flow = OrderFlow(FlowParams(symbols=6, accounts=50), seed=3)
    single = MatchingEngine(6)
    for _ in range(20):
        batch = flow.next_batch(500)
        got = submit(backend, _with_send_time(batch))
        want = single.process(batch)
        key = ["symbol", "order_id", "maker_id", "price", "qty"]
        got_fills = np.sort(got[got["kind"] == ReportKind.FILL][key])
        want_fills = np.sort(want[want["kind"] == ReportKind.FILL][key])
        assert np.array_equal(got_fills, want_fills)
        assert len(got) == len(want)
    assert sum(s.resting() for s in shards) == single.n_resting


def test_each_symbol_is_matched_by_its_own_shard_only():
    shards, (backend,) = build(n_shards=2, n_symbols=4)
    submit(
        backend,
        orders(new(1, 1, 0, BUY, 100, 5), new(2, 1, 1, BUY, 100, 5), new(3, 1, 3, BUY, 100, 5)),
    )
    assert [s.resting() for s in shards] == [1, 2]  # symbols 0 | 1 and 3


@pytest.mark.parametrize(
    "limits, batch, rejected",
    [
        (RiskLimits(max_order_qty=10), orders(new(1, 1, 0, BUY, 100, 11)), {1: "MAX_ORDER_QTY"}),
        (
            RiskLimits(max_open_orders=1),
            orders(new(1, 1, 0, BUY, 100, 5), new(2, 1, 0, BUY, 99, 5)),
            {2: "MAX_OPEN_ORDERS"},
        ),
        (RiskLimits(max_position=10), orders(new(1, 1, 0, SELL, 100, 11)), {1: "MAX_POSITION"}),
        (
            RiskLimits(max_order_rate=1),
            orders(new(1, 1, 0, BUY, 100, 1), new(2, 1, 0, BUY, 99, 1)),
            {2: "MAX_ORDER_RATE"},
        ),
        (RiskLimits(), orders(new(1, 0, 0, BUY, 100, 1)), {1: "BAD_ACCOUNT"}),
        (RiskLimits(), orders(new(1, 101, 0, BUY, 100, 1)), {1: "BAD_ACCOUNT"}),
        (RiskLimits(), orders(new(1, 1, 4, BUY, 100, 1)), {1: "BAD_SYMBOL"}),
    ],
)
def test_each_risk_breach_is_a_reject_with_its_reason(limits, batch, rejected):
    _, (backend,) = build(limits=limits)
    assert reasons_of(submit(backend, batch)) == rejected


def test_position_limit_counts_filled_position_plus_the_new_order():
    _, (backend,) = build(limits=RiskLimits(max_position=10))
    submit(backend, orders(new(1, 2, 0, SELL, 100, 8), new(2, 1, 0, BUY, 100, 8)))
    reports = submit(backend, orders(new(3, 1, 0, BUY, 99, 3), new(4, 1, 0, SELL, 99, 3)))
    assert reasons_of(reports) == {3: "MAX_POSITION"}  # 8 + 3 > 10; 8 - 3 is fine


def test_position_limit_counts_what_is_still_open_on_that_side():
    _, (backend,) = build(limits=RiskLimits(max_position=10))
    # Each within the limit, together not: the worst case is both filling.
    reports = submit(backend, orders(new(1, 1, 0, BUY, 100, 6), new(2, 1, 0, BUY, 99, 6)))
    assert reasons_of(reports) == {2: "MAX_POSITION"}
    assert backend.risk.open_qty[1, 0].tolist() == [6, 0]
    # The other side has its own worst case: 6 bought would not offset 11 sold.
    assert reasons_of(submit(backend, orders(new(3, 1, 0, SELL, 105, 11)))) == {3: "MAX_POSITION"}
    assert reasons_of(submit(backend, orders(new(4, 1, 0, SELL, 105, 10)))) == {}
    # A cancel frees its quantity; a modify down frees the difference.
    submit(backend, orders(cancel(4, 1, 0)))
    assert backend.risk.open_qty[1, 0].tolist() == [6, 0]
    submit(backend, orders(modify(1, 1, 0, 100, 2)))
    assert backend.risk.open_qty[1, 0].tolist() == [2, 0]
    assert reasons_of(submit(backend, orders(new(5, 1, 0, BUY, 98, 8)))) == {}
    # Fills move quantity from open to position: 5 of the 10 open bought.
    submit(backend, orders(new(6, 2, 0, SELL, 98, 5)))
    assert backend.risk.position[1, 0] == 5
    assert backend.risk.open_qty[1, 0].tolist() == [5, 0]
    assert backend.risk.open_qty[2, 0].tolist() == [0, 0]  # the taker filled completely
    assert reasons_of(submit(backend, orders(new(7, 1, 0, BUY, 90, 1)))) == {7: "MAX_POSITION"}


def test_open_quantity_drops_what_the_engine_refuses_or_expires():
    _, (backend,) = build(limits=RiskLimits(max_position=10))
    submit(backend, orders(new(1, 1, 0, BUY, 100, 4)))
    submit(backend, orders(new(1, 1, 0, BUY, 99, 4)))  # a duplicate id: the engine rejects it
    submit(backend, orders(new(2, 1, 0, BUY, 120, 3, typ=3)))  # IOC: fills nothing, expires
    assert backend.risk.open_qty[1, 0].tolist() == [4, 0]


def test_open_orders_count_follows_fills_and_cancels():
    _, (backend,) = build(limits=RiskLimits(max_open_orders=2))
    submit(backend, orders(new(1, 1, 0, BUY, 100, 5), new(2, 1, 0, BUY, 99, 5)))
    assert backend.risk.open_orders[1] == 2
    submit(backend, orders(cancel(1, 1, 0)))
    assert backend.risk.open_orders[1] == 1
    # Account 2 takes order 2 completely: it no longer counts for account 1.
    submit(backend, orders(new(3, 2, 0, SELL, 99, 5)))
    assert backend.risk.open_orders[1] == 0
    assert backend.risk.open_orders[2] == 0
    # A taker that rests counts; one that expires does not.
    submit(backend, orders(new(4, 2, 0, SELL, 120, 5), new(5, 2, 0, SELL, 120, 5, typ=3)))
    assert backend.risk.open_orders[2] == 1


def test_positions_follow_fills_for_taker_and_maker():
    _, (backend,) = build()
    submit(backend, orders(new(1, 1, 0, BUY, 100, 5), new(2, 2, 0, SELL, 100, 3)))
    assert backend.risk.position[1, 0] == 3
    assert backend.risk.position[2, 0] == -3


def test_maker_fills_reach_the_backend_that_owns_the_maker():
    _, backends = build(n_backends=2)
    # Account 1 belongs to backend 1, account 2 to backend 0.
    submit(backends[1], orders(new(1, 1, 0, BUY, 100, 5)))
    submit(backends[0], orders(new(2, 2, 0, SELL, 100, 5)))
    assert backends[0].risk.position[2, 0] == -5
    assert backends[1].risk.position[1, 0] == 0  # not told yet
    # The maker fill rides on backend 1's next call to that shard.
    submit(backends[1], orders(new(3, 1, 0, BUY, 90, 1)))
    assert backends[1].risk.position[1, 0] == 5
    assert backends[1].risk.open_orders[1] == 1  # order 3 only; order 1 is done


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "NEW,1,1,AAPL,B,LIMIT,100,5",
        [1, 2, 3],
        np.zeros(3, dtype=np.int64),
        np.zeros((2, 2), dtype=orders().dtype),
        np.zeros(2, dtype=[("order_id", "i8"), ("qty", "i8")]),
    ],
)
def test_malformed_batches_are_a_clear_error_and_the_backend_survives(bad):
    _, (backend,) = build()
    with pytest.raises(BadBatch):
        submit(backend, bad)
    reports = submit(backend, orders(new(1, 1, 0, BUY, 100, 5)))
    assert list(reports["kind"]) == [ReportKind.ACK]


def test_garbage_field_values_are_rejected_order_by_order():
    _, (backend,) = build()
    batch = orders(
        (9, 1, 1, 0, BUY, 1, 100, 5),  # unknown action
        (1, 2, 1, 0, 7, 1, 100, 5),  # unknown side
        (1, 3, 1, 0, BUY, 9, 100, 5),  # unknown type
        (1, 4, 1, 0, BUY, 1, 100, -5),  # negative qty
        (1, 5, 1, 0, BUY, 1, -3, 5),  # negative price
        (1, 6, 1, -1, BUY, 1, 100, 5),  # negative symbol
        new(7, 1, 0, BUY, 100, 5),
    )
    reports = submit(backend, batch)
    assert reasons_of(reports) == {
        1: "BAD_ACTION",
        2: "BAD_SIDE",
        3: "BAD_TYPE",
        4: "BAD_QTY",
        5: "BAD_PRICE",
        6: "BAD_SYMBOL",
    }
    assert reports[reports["kind"] == ReportKind.ACK]["order_id"].tolist() == [7]


def test_a_batch_with_the_engine_dtype_is_accepted_too():
    _, (backend,) = build()
    batch = OrderFlow(FlowParams(symbols=4, accounts=100), seed=1).next_batch(50)
    reports = submit(backend, batch)
    assert len(np.unique(reports["seq"])) == 50


def _with_send_time(batch):
    out = np.zeros(len(batch), dtype=orders().dtype)
    for name in batch.dtype.names:
        out[name] = batch[name]
    return out


def test_submissions_waiting_on_busy_shards_share_one_call_and_get_their_own_reports():
    shards, (backend,) = build(n_shards=1, n_symbols=2)
    calls = []

    class SlowShard:
        async def process(self, messages, backend_id):
            calls.append(len(messages))
            await asyncio.sleep(0.05)
            return shards[0].process(messages, backend_id)

    backend.shards = [SlowShard()]

    async def three_clients():
        # Every client numbers its orders from 0, so seqs collide across them.
        first = asyncio.ensure_future(backend.submit(orders(new(1, 1, 0, BUY, 100, 5))))
        await asyncio.sleep(0.01)  # the first is at the shard; the next two wait together
        return await asyncio.gather(
            first,
            backend.submit(orders(new(2, 2, 0, SELL, 100, 2), new(3, 2, 0, SELL, 101, 1))),
            backend.submit(orders(new(4, 3, 1, BUY, 50, 1))),
        )

    a, b, c = asyncio.run(three_clients())
    assert calls == [1, 3]
    assert a["order_id"].tolist() == [1] and a["seq"].tolist() == [0]
    assert sorted(set(b["order_id"])) == [2, 3] and set(b["seq"]) == {0, 1}
    assert b[b["kind"] == ReportKind.FILL]["maker_id"].tolist() == [1]
    assert c["order_id"].tolist() == [4] and c["seq"].tolist() == [0]


def test_a_client_hears_in_its_next_reply_of_its_orders_others_filled_away():
    _, (backend,) = build(n_shards=1, n_symbols=4)
    mine, theirs = first_order_id(1), first_order_id(0)

    def call(client, *rows):
        return asyncio.run(backend.submit(orders(*rows), client))

    call(1, new(mine, 1, 0, SELL, 100, 5), new(mine + 1, 1, 0, SELL, 101, 5))
    # Client 0 takes all of the first and part of the second.
    taken = call(0, new(theirs, 2, 0, BUY, 101, 7))
    assert not np.any(taken["kind"] == MAKER_DONE)  # the taker hears of its fills as FILLs
    reply = call(1, new(mine + 2, 1, 1, BUY, 50, 1))
    notices = reply[reply["kind"] == MAKER_DONE]
    assert notices["order_id"].tolist() == [mine]  # done; mine + 1 still rests with 3
    assert np.all(notices["seq"] == -1)
    again = call(1, new(mine + 3, 1, 1, BUY, 50, 1))
    assert not np.any(again["kind"] == MAKER_DONE)  # told once
    # A client that does not name itself is told nothing, and nothing waits for it.
    assert not np.any(submit(backend, orders(new(9, 3, 0, BUY, 101, 3)))["kind"] == MAKER_DONE)


def test_the_generator_forgets_what_a_maker_notice_names():
    flow = OrderFlow(FlowParams(symbols=4, accounts=100, mix=(1, 0, 0, 0, 0)), seed=2)
    flow.next_batch(20)
    ids = flow.live_orders[1].copy()
    notice = np.zeros(1, dtype=REPORT_DTYPE)
    notice["kind"], notice["order_id"] = MAKER_DONE, ids[0]
    flow.forget(digest_reports(notice, flow.mids).gone)
    assert ids[0] not in flow.live_orders[1]


def test_when_one_shard_fails_the_others_parts_settle_and_the_failure_is_reported():
    shards, (backend,) = build(n_shards=2, n_symbols=4)

    class Down:
        async def process(self, messages, backend_id):
            raise ConnectionError("engine gone")

    backend.shards[1] = Down()  # symbols 1 and 3

    async def both():
        return await asyncio.gather(
            backend.submit(orders(new(1, 1, 0, BUY, 100, 5))),  # shard 0 only
            backend.submit(orders(new(2, 2, 0, BUY, 100, 5), new(3, 2, 1, BUY, 100, 5))),
            return_exceptions=True,
        )

    fine, failed = asyncio.run(both())
    assert [int(k) for k in fine["kind"]] == [ReportKind.ACK]
    assert isinstance(failed, ShardFailed) and "engine-1" in str(failed)
    assert "engine gone" in str(failed)
    # The settled part counts; the failed part's order no longer does.
    assert backend.risk.open_orders[1] == 1 and backend.risk.open_orders[2] == 1
    assert backend.risk.open_qty[2, 1].tolist() == [0, 0]
    assert shards[0].resting() == 2  # orders 1 and 2 rest on shard 0
