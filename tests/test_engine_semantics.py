"""The engine contract, semantics: matching, FIFO, MARKET/IOC/FOK, CANCEL, MODIFY, STP, ids.

Every test runs against both the pure-Python reference and the Numba engine
(``engine_factory``), asserts the exact reports of each message and the final
book, and checks the book invariants after every message (``Session``).
"""

import numpy as np
from engine_fixtures import (  # noqa: F401  (engine_factory and fixture_* are fixtures)
    BOOK_FIELDS,
    BUY,
    FOK,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    ack,
    assert_same_reports,
    cancel,
    canceled,
    engine_factory,
    expected_reports,
    expired,
    fill,
    fixture_s,
    fixture_stp,
    message,
    modified,
    modify,
    new,
    reject_of,
    rest,
    to_batch,
)

from engine.messages import NO_PRICE, REPORT_DTYPE, Action, Reason

ST = Reason.SELF_TRADE


# -- LIMIT --------------------------------------------------------------------


def test_limit_rests_when_nothing_to_match(s):
    rest(s, new(1, BUY, 100, 5), new(2, SELL, 101, 5))
    assert s.book() == [(0, BUY, 1, 1, 100, 5), (0, SELL, 2, 1, 101, 5)]
    assert s.engine.n_resting == 2


def test_limit_fills_at_resting_price(s):
    rest(s, new(1, SELL, 100, 5, account=2), new(2, BUY, 90, 5, account=2))
    s.expect(
        new(3, BUY, 105, 3, account=7),
        [
            ack(3, BUY, 105, 3, account=7),
            fill(3, BUY, 100, 3, maker_id=1, account=7, maker_account=2, leaves=0, maker_leaves=2),
        ],
    )
    s.expect(
        new(4, SELL, 80, 5, account=7),
        [
            ack(4, SELL, 80, 5, account=7),
            fill(4, SELL, 90, 5, maker_id=2, account=7, maker_account=2, leaves=0, maker_leaves=0),
        ],
    )
    assert s.book() == [(0, SELL, 1, 2, 100, 2)]


def test_limit_matches_best_price_first_and_respects_limit(s):
    rest(s, new(1, SELL, 102, 2), new(2, SELL, 100, 2), new(3, SELL, 101, 2))
    s.expect(
        new(4, BUY, 101, 5),
        [
            ack(4, BUY, 101, 5),
            fill(4, BUY, 100, 2, maker_id=2, leaves=3, maker_leaves=0),
            fill(4, BUY, 101, 2, maker_id=3, leaves=1, maker_leaves=0),
        ],
    )
    assert s.book() == [(0, BUY, 4, 1, 101, 1), (0, SELL, 1, 1, 102, 2)]


def test_sell_limit_matches_highest_bid_first(s):
    rest(s, new(1, BUY, 98, 2), new(2, BUY, 99, 2), new(3, BUY, 97, 2))
    s.expect(
        new(4, SELL, 98, 5),
        [
            ack(4, SELL, 98, 5),
            fill(4, SELL, 99, 2, maker_id=2, leaves=3, maker_leaves=0),
            fill(4, SELL, 98, 2, maker_id=1, leaves=1, maker_leaves=0),
        ],
    )
    assert s.book() == [(0, BUY, 3, 1, 97, 2), (0, SELL, 4, 1, 98, 1)]


def test_fifo_within_price_level(s):
    rest(
        s,
        new(1, SELL, 100, 2, account=1),
        new(2, SELL, 100, 3, account=2),
        new(3, SELL, 100, 4, account=3),
    )
    s.expect(
        new(4, BUY, 100, 6, account=4),
        [
            ack(4, BUY, 100, 6, account=4),
            fill(4, BUY, 100, 2, maker_id=1, account=4, maker_account=1, leaves=4, maker_leaves=0),
            fill(4, BUY, 100, 3, maker_id=2, account=4, maker_account=2, leaves=1, maker_leaves=0),
            fill(4, BUY, 100, 1, maker_id=3, account=4, maker_account=3, leaves=0, maker_leaves=3),
        ],
    )
    assert s.book() == [(0, SELL, 3, 3, 100, 3)]


def test_limit_remainder_keeps_its_arrival_time(s):
    # A partially filled LIMIT rests from its own arrival: ahead of later orders.
    rest(s, new(1, SELL, 100, 2))
    s.expect(
        new(2, BUY, 100, 5),
        [ack(2, BUY, 100, 5), fill(2, BUY, 100, 2, maker_id=1, leaves=3, maker_leaves=0)],
    )
    rest(s, new(3, BUY, 100, 1))
    s.expect(
        new(4, SELL, 100, 4),
        [
            ack(4, SELL, 100, 4),
            fill(4, SELL, 100, 3, maker_id=2, leaves=1, maker_leaves=0),
            fill(4, SELL, 100, 1, maker_id=3, leaves=0, maker_leaves=0),
        ],
    )
    assert s.book() == []


# -- MARKET / IOC / FOK ---------------------------------------------------------


def test_market_matches_any_price(s):
    rest(s, new(1, SELL, 100, 1), new(2, SELL, 5000, 1), new(3, SELL, 200, 1))
    s.expect(
        new(4, BUY, NO_PRICE, 3, type=MARKET),
        [
            ack(4, BUY, NO_PRICE, 3),
            fill(4, BUY, 100, 1, maker_id=1, leaves=2, maker_leaves=0),
            fill(4, BUY, 200, 1, maker_id=3, leaves=1, maker_leaves=0),
            fill(4, BUY, 5000, 1, maker_id=2, leaves=0, maker_leaves=0),
        ],
    )
    assert s.book() == []


def test_market_remainder_expires(s):
    rest(s, new(1, BUY, 100, 2))
    s.expect(
        new(2, SELL, NO_PRICE, 5, type=MARKET),
        [
            ack(2, SELL, NO_PRICE, 5),
            fill(2, SELL, 100, 2, maker_id=1, leaves=3, maker_leaves=0),
            expired(2, SELL, NO_PRICE, 3),
        ],
    )
    s.expect(
        new(3, SELL, NO_PRICE, 4, type=MARKET),
        [ack(3, SELL, NO_PRICE, 4), expired(3, SELL, NO_PRICE, 4)],
    )
    assert s.book() == []


def test_ioc_matches_like_limit_and_remainder_expires(s):
    rest(s, new(1, SELL, 100, 2), new(2, SELL, 102, 5))
    s.expect(
        new(3, BUY, 101, 5, type=IOC),
        [
            ack(3, BUY, 101, 5),
            fill(3, BUY, 100, 2, maker_id=1, leaves=3, maker_leaves=0),
            expired(3, BUY, 101, 3),
        ],
    )
    s.expect(
        new(4, BUY, 102, 1, type=IOC),
        [ack(4, BUY, 102, 1), fill(4, BUY, 102, 1, maker_id=2, leaves=0, maker_leaves=4)],
    )
    assert s.book() == [(0, SELL, 2, 1, 102, 4)]


def test_fok_all_or_nothing(s):
    rest(s, new(1, SELL, 100, 2), new(2, SELL, 101, 2))
    s.expect(new(3, BUY, 101, 5, type=FOK), [ack(3, BUY, 101, 5), expired(3, BUY, 101, 5)])
    assert s.book() == [(0, SELL, 1, 1, 100, 2), (0, SELL, 2, 1, 101, 2)]
    s.expect(
        new(4, BUY, 101, 3, type=FOK),
        [
            ack(4, BUY, 101, 3),
            fill(4, BUY, 100, 2, maker_id=1, leaves=1, maker_leaves=0),
            fill(4, BUY, 101, 1, maker_id=2, leaves=0, maker_leaves=1),
        ],
    )
    s.expect(
        new(5, BUY, 101, 1, type=FOK),
        [ack(5, BUY, 101, 1), fill(5, BUY, 101, 1, maker_id=2, leaves=0, maker_leaves=0)],
    )
    assert s.book() == []


def test_fok_ignores_liquidity_beyond_its_limit(s):
    rest(s, new(1, BUY, 100, 2), new(2, BUY, 98, 10))
    s.expect(new(3, SELL, 99, 3, type=FOK), [ack(3, SELL, 99, 3), expired(3, SELL, 99, 3)])
    assert s.book() == [(0, BUY, 1, 1, 100, 2), (0, BUY, 2, 1, 98, 10)]


def test_fok_stp_counts_only_reachable_liquidity(stp):
    rest(
        stp,
        new(1, SELL, 100, 2, account=2),
        new(2, SELL, 100, 5, account=1),
        new(3, SELL, 101, 5, account=3),
    )
    stp.expect(
        new(4, BUY, 101, 3, type=FOK, account=1),
        [ack(4, BUY, 101, 3, account=1), expired(4, BUY, 101, 3, account=1)],
    )
    stp.expect(
        new(5, BUY, 101, 2, type=FOK, account=1),
        [
            ack(5, BUY, 101, 2, account=1),
            fill(5, BUY, 100, 2, maker_id=1, account=1, maker_account=2, leaves=0, maker_leaves=0),
        ],
    )
    assert stp.book() == [(0, SELL, 2, 1, 100, 5), (0, SELL, 3, 3, 101, 5)]


def test_fok_stp_none_counts_own_orders(s):
    rest(s, new(1, SELL, 100, 2, account=2), new(2, SELL, 100, 5, account=1))
    s.expect(
        new(3, BUY, 100, 3, type=FOK, account=1),
        [
            ack(3, BUY, 100, 3, account=1),
            fill(3, BUY, 100, 2, maker_id=1, account=1, maker_account=2, leaves=1, maker_leaves=0),
            fill(3, BUY, 100, 1, maker_id=2, account=1, maker_account=1, leaves=0, maker_leaves=4),
        ],
    )
    assert s.book() == [(0, SELL, 2, 1, 100, 4)]


# -- CANCEL -------------------------------------------------------------------------


def test_cancel_removes_resting(s):
    rest(
        s,
        new(1, BUY, 100, 5, account=3),
        new(2, BUY, 100, 4, account=4),
        new(3, BUY, 100, 3, account=5),
    )
    # The message's side and type are ignored: the resting order's are reported.
    s.expect(cancel(2, account=4, side=SELL), [canceled(2, BUY, 100, 4, account=4)])
    assert s.book() == [(0, BUY, 1, 3, 100, 5), (0, BUY, 3, 5, 100, 3)]


def test_cancel_ignores_price_qty_and_type(s):
    rest(s, new(1, SELL, 100, 5, account=3))
    m = message(Action.CANCEL, 1, side=7, price=-4, qty=-9, type=99, account=3)
    s.expect(m, [canceled(1, SELL, 100, 5, account=3)])
    assert s.book() == []


def test_cancel_reports_remaining_qty(s):
    rest(s, new(1, SELL, 100, 5, account=3))
    s.expect(
        new(2, BUY, 100, 2),
        [
            ack(2, BUY, 100, 2),
            fill(2, BUY, 100, 2, maker_id=1, maker_account=3, leaves=0, maker_leaves=3),
        ],
    )
    s.expect(cancel(1, account=3), [canceled(1, SELL, 100, 3, account=3)])
    assert s.book() == []


def test_only_the_order_s_own_account_may_cancel_or_modify_it(s):
    rest(s, new(1, BUY, 100, 5, account=3), new(2, SELL, 101, 4, account=4))
    for m in (
        cancel(1, account=4),
        modify(1, 99, 2, account=4),
        modify(2, NO_PRICE, 0, account=3),  # a modify to 0 is a cancel: the same rule
    ):
        s.expect(m, [reject_of(m, Reason.NOT_OWNER)])
    assert s.book() == [(0, BUY, 1, 3, 100, 5), (0, SELL, 2, 4, 101, 4)]  # untouched
    s.expect(cancel(1, account=3), [canceled(1, BUY, 100, 5, account=3)])
    # An unknown order is unknown, whoever asks.
    s.expect(cancel(1, account=4), [reject_of(cancel(1, account=4), Reason.UNKNOWN_ORDER)])


# -- MODIFY ---------------------------------------------------------------------------


def two_bids(session):
    rest(session, new(1, BUY, 100, 5, account=1), new(2, BUY, 100, 5, account=2))


def test_modify_same_price_lower_qty_keeps_priority(s):
    two_bids(s)
    s.expect(modify(1, 100, 3), [modified(1, BUY, 100, 3, was=5)])
    assert s.book() == [(0, BUY, 1, 1, 100, 3), (0, BUY, 2, 2, 100, 5)]
    s.expect(
        new(3, SELL, 100, 4, account=3),
        [
            ack(3, SELL, 100, 4, account=3),
            fill(3, SELL, 100, 3, maker_id=1, account=3, leaves=1, maker_leaves=0),
            fill(3, SELL, 100, 1, maker_id=2, account=3, maker_account=2, leaves=0, maker_leaves=4),
        ],
    )


def test_modify_same_price_same_qty_keeps_priority(s):
    two_bids(s)
    s.expect(modify(1, 100, 5), [modified(1, BUY, 100, 5, was=5)])
    assert s.book() == [(0, BUY, 1, 1, 100, 5), (0, BUY, 2, 2, 100, 5)]


def test_modify_empty_price_keeps_price(s):
    two_bids(s)
    s.expect(modify(1, NO_PRICE, 2), [modified(1, BUY, 100, 2, was=5)])
    assert s.book() == [(0, BUY, 1, 1, 100, 2), (0, BUY, 2, 2, 100, 5)]
    s.expect(modify(1, NO_PRICE, 6), [modified(1, BUY, 100, 6, was=2)])  # increase: to the back
    assert s.book() == [(0, BUY, 2, 2, 100, 5), (0, BUY, 1, 1, 100, 6)]


def test_modify_qty_increase_loses_priority(s):
    two_bids(s)
    s.expect(modify(1, 100, 8), [modified(1, BUY, 100, 8, was=5)])
    assert s.book() == [(0, BUY, 2, 2, 100, 5), (0, BUY, 1, 1, 100, 8)]


def test_modify_qty_compared_with_remaining_after_partial_fill(s):
    two_bids(s)
    s.expect(
        new(3, SELL, 100, 4, account=3),
        [
            ack(3, SELL, 100, 4, account=3),
            fill(3, SELL, 100, 4, maker_id=1, account=3, leaves=0, maker_leaves=1),
        ],
    )
    s.expect(modify(1, 100, 1), [modified(1, BUY, 100, 1, was=1)])  # 1 <= remaining 1: stays
    assert s.book() == [(0, BUY, 1, 1, 100, 1), (0, BUY, 2, 2, 100, 5)]
    s.expect(modify(1, 100, 4), [modified(1, BUY, 100, 4, was=1)])  # 4 > remaining 1 (not 5)
    assert s.book() == [(0, BUY, 2, 2, 100, 5), (0, BUY, 1, 1, 100, 4)]


def test_modify_price_change_loses_priority(s):
    two_bids(s)
    rest(s, new(3, BUY, 99, 5, account=3))
    s.expect(modify(1, 99, 2), [modified(1, BUY, 99, 2, was=5)])  # lower qty, new price: back
    s.expect(modify(2, 101, 5, account=2), [modified(2, BUY, 101, 5, was=5, account=2)])
    s.expect(modify(2, 100, 5, account=2), [modified(2, BUY, 100, 5, was=5, account=2)])
    assert s.book() == [(0, BUY, 2, 2, 100, 5), (0, BUY, 3, 3, 99, 5), (0, BUY, 1, 1, 99, 2)]


def test_modify_price_change_loses_priority_and_may_trade(s):
    rest(
        s,
        new(1, BUY, 99, 5, account=1),
        new(2, SELL, 101, 2, account=2),
        new(3, SELL, 103, 2, account=3),
    )
    s.expect(
        modify(1, 102, 5),
        [
            modified(1, BUY, 102, 5, was=5),
            fill(1, BUY, 101, 2, maker_id=2, maker_account=2, leaves=3, maker_leaves=0),
        ],
    )
    assert s.book() == [(0, BUY, 1, 1, 102, 3), (0, SELL, 3, 3, 103, 2)]
    s.expect(
        modify(1, 104, 2),
        [
            modified(1, BUY, 104, 2, was=3),
            fill(1, BUY, 103, 2, maker_id=3, maker_account=3, leaves=0, maker_leaves=0),
        ],
    )
    assert s.book() == []  # fully filled on re-entry: nothing rests
    rest(s, new(1, SELL, 110, 1))  # and its id is free again


def test_modify_uses_resting_orders_side(s):
    rest(s, new(1, SELL, 105, 5, account=7), new(2, BUY, 100, 1, account=8))
    s.expect(
        dict(modify(1, 100, 5, account=7, side=BUY), type=99),
        [
            modified(1, SELL, 100, 5, was=5, account=7),
            fill(1, SELL, 100, 1, maker_id=2, account=7, maker_account=8, leaves=4, maker_leaves=0),
        ],
    )
    assert s.book() == [(0, SELL, 1, 7, 100, 4)]


# -- self-trade prevention ----------------------------------------------------------


def test_stp_cancel_newest_stops_incoming_keeps_resting(stp):
    rest(stp, new(1, SELL, 100, 5, account=1))
    stp.expect(
        new(2, BUY, 100, 3, account=1), [ack(2, BUY, 100, 3), canceled(2, BUY, 100, 3, reason=ST)]
    )
    assert stp.book() == [(0, SELL, 1, 1, 100, 5)]


def test_stp_fills_before_stop_stand(stp):
    rest(
        stp,
        new(1, SELL, 100, 2, account=2),
        new(2, SELL, 100, 5, account=1),
        new(3, SELL, 100, 5, account=3),
    )
    stp.expect(
        new(4, BUY, 101, 10, account=1),
        [
            ack(4, BUY, 101, 10),
            fill(4, BUY, 100, 2, maker_id=1, maker_account=2, leaves=8, maker_leaves=0),
            canceled(4, BUY, 101, 8, reason=ST),
        ],
    )
    assert stp.book() == [(0, SELL, 2, 1, 100, 5), (0, SELL, 3, 3, 100, 5)]


def test_stp_applies_to_market_and_ioc(stp):
    rest(stp, new(1, BUY, 100, 1, account=2), new(2, BUY, 99, 5, account=1))
    stp.expect(
        new(3, SELL, NO_PRICE, 4, type=MARKET, account=1),
        [
            ack(3, SELL, NO_PRICE, 4),
            fill(3, SELL, 100, 1, maker_id=1, maker_account=2, leaves=3, maker_leaves=0),
            canceled(3, SELL, NO_PRICE, 3, reason=ST),
        ],
    )
    stp.expect(
        new(4, SELL, 98, 4, type=IOC, account=1),
        [ack(4, SELL, 98, 4), canceled(4, SELL, 98, 4, reason=ST)],
    )
    assert stp.book() == [(0, BUY, 2, 1, 99, 5)]


def test_stp_applies_to_modify_reentry(stp):
    rest(
        stp,
        new(1, BUY, 99, 5, account=1),
        new(2, SELL, 101, 1, account=2),
        new(3, SELL, 101, 5, account=1),
    )
    stp.expect(
        modify(1, 101, 5),
        [
            modified(1, BUY, 101, 5, was=5),
            fill(1, BUY, 101, 1, maker_id=2, maker_account=2, leaves=4, maker_leaves=0),
            canceled(1, BUY, 101, 4, reason=ST),
        ],
    )
    assert stp.book() == [(0, SELL, 3, 1, 101, 5)]


def test_stp_only_stops_at_reachable_own_orders(stp):
    rest(
        stp,
        new(1, SELL, 100, 3, account=2),
        new(2, SELL, 100, 3, account=1),
        new(3, SELL, 102, 3, account=1),
    )
    # Filled before reaching its own order at 100: no stop.
    stp.expect(
        new(4, BUY, 100, 3, account=1),
        [
            ack(4, BUY, 100, 3),
            fill(4, BUY, 100, 3, maker_id=1, maker_account=2, leaves=0, maker_leaves=0),
        ],
    )
    # Its own order at 102 is beyond its limit: no stop, it rests.
    rest(stp, new(5, SELL, 99, 1, account=2))
    assert stp.book() == [(0, SELL, 5, 2, 99, 1), (0, SELL, 2, 1, 100, 3), (0, SELL, 3, 1, 102, 3)]
    stp.expect(
        new(6, BUY, 99, 4, account=1),
        [
            ack(6, BUY, 99, 4),
            fill(6, BUY, 99, 1, maker_id=5, maker_account=2, leaves=3, maker_leaves=0),
        ],
    )
    assert stp.book()[0] == (0, BUY, 6, 1, 99, 3)


def test_stp_none_allows_self_trade(s):
    rest(s, new(1, SELL, 100, 5, account=1))
    s.expect(
        new(2, BUY, 100, 3, account=1),
        [ack(2, BUY, 100, 3), fill(2, BUY, 100, 3, maker_id=1, leaves=0, maker_leaves=2)],
    )
    assert s.book() == [(0, SELL, 1, 1, 100, 2)]


# -- order ids -----------------------------------------------------------------


def test_duplicate_id_allowed_in_another_symbol(s):
    rest(s, new(1, BUY, 100, 5, symbol=0), new(1, BUY, 100, 5, symbol=1))
    assert s.book() == [(0, BUY, 1, 1, 100, 5), (1, BUY, 1, 1, 100, 5)]


def test_id_reusable_after_filled(s):
    rest(s, new(1, SELL, 100, 2, account=2))
    s.expect(
        new(2, BUY, 100, 2),
        [
            ack(2, BUY, 100, 2),
            fill(2, BUY, 100, 2, maker_id=1, maker_account=2, leaves=0, maker_leaves=0),
        ],
    )
    rest(s, new(1, BUY, 90, 3), new(2, BUY, 91, 4))
    assert s.book() == [(0, BUY, 2, 1, 91, 4), (0, BUY, 1, 1, 90, 3)]


def test_id_reusable_after_cancelled(s):
    rest(s, new(1, SELL, 100, 2))
    s.expect(cancel(1), [canceled(1, SELL, 100, 2)])
    rest(s, new(1, SELL, 101, 7))
    assert s.book() == [(0, SELL, 1, 1, 101, 7)]


def test_id_of_expired_order_is_free(s):
    s.expect(new(1, BUY, 100, 2, type=IOC), [ack(1, BUY, 100, 2), expired(1, BUY, 100, 2)])
    rest(s, new(1, BUY, 100, 2))


# -- batches, symbols, listing ----------------------------------------------------------


def test_symbols_are_independent(s):
    rest(
        s,
        new(1, BUY, 100, 5, symbol=1),
        new(1, SELL, 100, 5, symbol=0),
        new(2, BUY, 101, 1, symbol=1),
    )
    assert s.book() == [(0, SELL, 1, 1, 100, 5), (1, BUY, 2, 1, 101, 1), (1, BUY, 1, 1, 100, 5)]


def test_empty_batch(engine_factory):  # noqa: F811
    reports = engine_factory().process(to_batch([]))
    assert reports.dtype == REPORT_DTYPE and len(reports) == 0


def test_batch_reports_in_causal_order(engine_factory):  # noqa: F811
    engine = engine_factory(n_symbols=2)
    msgs = [
        new(1, SELL, 100, 2, symbol=1),
        new(2, BUY, 100, 5, account=2, symbol=1),
        cancel(2, symbol=1, account=2),
    ]
    batch = to_batch(msgs, first_seq=40)
    batch["seq"] = [40, 7, 99]  # seq is echoed, not assumed increasing
    want = np.concatenate(
        [
            expected_reports([ack(1, SELL, 100, 2)], seq=40, symbol=1),
            expected_reports(
                [
                    ack(2, BUY, 100, 5, account=2),
                    fill(2, BUY, 100, 2, maker_id=1, account=2, leaves=3, maker_leaves=0),
                ],
                seq=7,
                symbol=1,
            ),
            expected_reports([canceled(2, BUY, 100, 3, account=2)], seq=99, symbol=1),
        ]
    )
    assert_same_reports(engine.process(batch), want)
    assert engine.n_resting == 0


def test_resting_orders_listing_order(s):
    rest(
        s,
        new(1, SELL, 105, 1, symbol=1),
        new(2, BUY, 99, 1, symbol=1),
        new(3, SELL, 104, 1, symbol=1),
        new(4, BUY, 100, 1, symbol=1),
        new(5, BUY, 99, 2, symbol=1),
        new(6, SELL, 104, 2, symbol=1),
        new(7, SELL, 110, 1, symbol=0),
    )
    assert s.book() == [
        (0, SELL, 7, 1, 110, 1),
        (1, BUY, 4, 1, 100, 1),
        (1, BUY, 2, 1, 99, 1),
        (1, BUY, 5, 1, 99, 2),
        (1, SELL, 3, 1, 104, 1),
        (1, SELL, 6, 1, 104, 2),
        (1, SELL, 1, 1, 105, 1),
    ]
    rows = s.engine.resting_orders()
    assert rows.dtype.names == BOOK_FIELDS
    assert [rows.dtype[f] for f in BOOK_FIELDS] == [
        np.dtype(t) for t in ("i4", "i1", "i8", "i8", "i8", "i8")
    ]
