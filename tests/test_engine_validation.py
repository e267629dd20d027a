"""The engine contract, validation: which messages are rejected, why, and in which order.

As in ``test_engine_semantics.py``, each case runs on both engines (the
reference and Numba) through a ``Session``, which checks the exact reports, the
final book and the book invariants after every message.
"""

from engine_fixtures import (  # noqa: F401  (engine_factory and fixture_* are fixtures)
    BUY,
    FOK,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    ack,
    cancel,
    canceled,
    engine_factory,
    fill,
    fixture_s,
    message,
    modify,
    new,
    reject_of,
    rest,
)

from engine.messages import NO_PRICE, Reason

# -- validation -------------------------------------------------------------


def test_reject_bad_action(s):
    for action in (0, 4, -1, 127):
        m = message(action, 7, side=BUY, price=100, qty=5, type=LIMIT, account=3)
        s.expect(m, [reject_of(m, Reason.BAD_ACTION)])
    assert s.book() == []


def test_reject_bad_action_checked_before_bad_symbol(s):
    m = message(9, 1, side=BUY, price=100, qty=5, type=LIMIT, account=1, symbol=99)
    s.expect(m, [reject_of(m, Reason.BAD_ACTION)])


def test_reject_bad_symbol(s):
    for symbol in (-1, 2, 1000):
        for m in (
            new(1, BUY, 100, 5, symbol=symbol),
            cancel(1, symbol=symbol),
            modify(1, 100, 5, symbol=symbol),
        ):
            s.expect(m, [reject_of(m, Reason.BAD_SYMBOL)])
    assert s.book() == []


def test_reject_bad_side(s):
    for side in (0, 3, -1):
        m = new(1, side, 100, 5)
        s.expect(m, [reject_of(m, Reason.BAD_SIDE)])
    assert s.book() == []


def test_reject_bad_type(s):
    for otype in (0, 5, -2):
        m = new(1, BUY, 100, 5, type=otype)
        s.expect(m, [reject_of(m, Reason.BAD_TYPE)])
    assert s.book() == []


def test_reject_bad_qty(s):
    for otype in (LIMIT, MARKET, IOC, FOK):
        for qty in (0, -1, -100):
            m = new(1, SELL, 100, qty, type=otype)
            s.expect(m, [reject_of(m, Reason.BAD_QTY)])
    assert s.book() == []


def test_reject_bad_price(s):
    for otype in (LIMIT, IOC, FOK):
        for price in (NO_PRICE, 0, -5):
            m = new(1, BUY, price, 5, type=otype)
            s.expect(m, [reject_of(m, Reason.BAD_PRICE)])
    assert s.book() == []


def test_market_ignores_its_price(s):
    rest(s, new(1, SELL, 100, 10, account=2))
    for i, price in enumerate((NO_PRICE, 0, -5, 1)):
        m = new(10 + i, BUY, price, 1, type=MARKET)
        s.expect(
            m,
            [
                ack(10 + i, BUY, NO_PRICE, 1),
                fill(
                    10 + i, BUY, 100, 1, maker_id=1, maker_account=2, leaves=0, maker_leaves=9 - i
                ),
            ],
        )
    assert s.book() == [(0, SELL, 1, 2, 100, 6)]


def test_reject_duplicate_order_id(s):
    rest(s, new(1, BUY, 100, 5))
    for m in (
        new(1, BUY, 99, 1),
        new(1, SELL, 200, 1),
        new(1, SELL, 0, 1, type=MARKET),
        new(1, SELL, 100, 1, type=FOK),
    ):
        s.expect(m, [reject_of(m, Reason.DUPLICATE_ORDER_ID)])
    assert s.book() == [(0, BUY, 1, 1, 100, 5)]


def test_new_validation_order(s):
    rest(s, new(1, BUY, 100, 5))
    cases = [
        (new(1, 0, -1, 0, type=0), Reason.BAD_SIDE),
        (new(1, BUY, -1, 0, type=0), Reason.BAD_TYPE),
        (new(1, BUY, -1, 0, type=LIMIT), Reason.BAD_QTY),
        (new(1, BUY, -1, 3, type=LIMIT), Reason.BAD_PRICE),
        (new(1, BUY, 100, 3, type=LIMIT), Reason.DUPLICATE_ORDER_ID),
    ]
    for m, reason in cases:
        s.expect(m, [reject_of(m, reason)])
    assert s.book() == [(0, BUY, 1, 1, 100, 5)]


def test_cancel_unknown_order(s):
    rest(s, new(1, BUY, 100, 5, symbol=0))
    for m in (cancel(2), cancel(1, symbol=1)):
        s.expect(m, [reject_of(m, Reason.UNKNOWN_ORDER)])
    s.expect(cancel(1), [canceled(1, BUY, 100, 5)])
    m = cancel(1)
    s.expect(m, [reject_of(m, Reason.UNKNOWN_ORDER)])


def test_modify_bad_qty(s):
    rest(s, new(1, BUY, 100, 5))
    for m in (modify(1, 100, -1), modify(9, -7, -1)):  # before the id and price checks
        s.expect(m, [reject_of(m, Reason.BAD_QTY)])
    assert s.book() == [(0, BUY, 1, 1, 100, 5)]


def test_modify_unknown_order(s):
    rest(s, new(1, BUY, 100, 5, symbol=0))
    for m in (modify(2, 100, 3), modify(1, 100, 3, symbol=1), modify(2, -3, 3), modify(2, 100, 0)):
        s.expect(m, [reject_of(m, Reason.UNKNOWN_ORDER)])
    assert s.book() == [(0, BUY, 1, 1, 100, 5)]


def test_modify_bad_price(s):
    rest(s, new(1, BUY, 100, 5))
    for price in (0, -1):
        m = modify(1, price, 3)
        s.expect(m, [reject_of(m, Reason.BAD_PRICE)])
    assert s.book() == [(0, BUY, 1, 1, 100, 5)]


def test_modify_qty_zero_cancels_whatever_price(s):
    for i, price in enumerate((NO_PRICE, -3, 0, 100, 250)):
        rest(s, new(i, SELL, 100, 5, account=4))
        s.expect(modify(i, price, 0, account=4, side=BUY), [canceled(i, SELL, 100, 5, account=4)])
    assert s.book() == []
