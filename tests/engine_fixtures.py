"""Shared helpers for the engine tests: builders, the two-engine fixture, diffs.

- ``engine_factory`` runs one test against both implementations
  (``"reference"`` = the pure-Python oracle, ``"numba"`` = ``engine.MatchingEngine``).
- ``new`` / ``cancel`` / ``modify`` build single messages; ``ack`` / ``fill`` /
  ``reject_of`` / ... build the reports we expect, as dicts of their non-zero
  fields (``leaves`` included), which ``expected_reports`` turns into an array.
- ``Session`` sends messages one at a time with fresh seqs, checks the book
  invariants after every step, and compares reports field by field.
- The ``s`` and ``stp`` fixtures (import ``fixture_s`` / ``fixture_stp``) are
  sessions on a 2-symbol engine without and with self-trade prevention;
  ``rest`` sends orders that must only be acknowledged.
"""

from __future__ import annotations

import numpy as np
import pytest
from book_invariants import Ledger, check_invariants
from reference_book import ReferenceEngine

from engine.book import RESTING_DTYPE, TOP_DTYPE
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

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET, IOC, FOK = OrderType.LIMIT, OrderType.MARKET, OrderType.IOC, OrderType.FOK

IMPLEMENTATIONS = ["reference", "numba"]


def make_engine(kind: str, n_symbols: int = 1, stp: str = "none"):
    if kind == "reference":
        return ReferenceEngine(n_symbols, stp=stp)
    # Imported here so the reference tests still run while the engine is being built.
    from engine import MatchingEngine

    return MatchingEngine(n_symbols, stp=stp)


@pytest.fixture(params=IMPLEMENTATIONS)
def engine_factory(request):
    """``engine_factory(n_symbols=1, stp="none")`` builds the parametrized engine."""

    def factory(n_symbols: int = 1, stp: str = "none"):
        return make_engine(request.param, n_symbols, stp)

    return factory


# -- messages ---------------------------------------------------------------


def message(action, order_id=0, *, side=0, price=NO_PRICE, qty=0, type=0, account=0, symbol=0):
    return dict(
        action=action,
        order_id=order_id,
        side=side,
        price=price,
        qty=qty,
        type=type,
        account=account,
        symbol=symbol,
    )


def new(order_id, side, price, qty, *, type=LIMIT, account=1, symbol=0):
    return message(
        Action.NEW,
        order_id,
        side=side,
        price=price,
        qty=qty,
        type=type,
        account=account,
        symbol=symbol,
    )


def cancel(order_id, *, symbol=0, account=1, side=0):
    return message(Action.CANCEL, order_id, symbol=symbol, account=account, side=side)


def modify(order_id, price, qty, *, symbol=0, account=1, side=0):
    return message(
        Action.MODIFY, order_id, price=price, qty=qty, symbol=symbol, account=account, side=side
    )


def to_batch(msgs: list[dict], first_seq: int = 1) -> np.ndarray:
    batch = np.zeros(len(msgs), dtype=MESSAGE_DTYPE)
    for i, m in enumerate(msgs):
        batch[i]["seq"] = first_seq + i
        for name, value in m.items():
            batch[i][name] = value
    return batch


# -- expected reports -------------------------------------------------------


def ack(order_id, side, price, qty, *, account=1):
    return dict(
        kind=ReportKind.ACK,
        order_id=order_id,
        side=side,
        price=price,
        qty=qty,
        account=account,
        leaves=qty,
    )


def fill(order_id, side, price, qty, *, maker_id, leaves, maker_leaves, account=1, maker_account=1):
    """A FILL; ``leaves``/``maker_leaves`` are the taker's/maker's qty left after it."""
    return dict(
        kind=ReportKind.FILL,
        order_id=order_id,
        side=side,
        price=price,
        qty=qty,
        account=account,
        maker_id=maker_id,
        maker_account=maker_account,
        leaves=leaves,
        maker_leaves=maker_leaves,
    )


def expired(order_id, side, price, qty, *, account=1):
    return dict(
        kind=ReportKind.EXPIRED, order_id=order_id, side=side, price=price, qty=qty, account=account
    )


def canceled(order_id, side, price, qty, *, account=1, reason=Reason.NONE):
    return dict(
        kind=ReportKind.CANCELED,
        order_id=order_id,
        side=side,
        price=price,
        qty=qty,
        account=account,
        reason=reason,
    )


def modified(order_id, side, price, qty, *, was, account=1):
    """A MODIFIED report; ``was``: the qty that was open before the modify."""
    return dict(
        kind=ReportKind.MODIFIED,
        order_id=order_id,
        side=side,
        price=price,
        qty=qty,
        account=account,
        leaves=qty,
        maker_leaves=was,
    )


def reject_of(msg: dict, reason: int) -> dict:
    """The REJECT a message gets: its own fields copied, plus the reason."""
    return dict(
        kind=ReportKind.REJECT,
        reason=reason,
        **{k: msg[k] for k in ("order_id", "account", "side", "price", "qty")},
    )


def expected_reports(rows: list[dict], seq: int, symbol: int) -> np.ndarray:
    out = np.zeros(len(rows), dtype=REPORT_DTYPE)
    for i, row in enumerate(rows):
        out[i]["seq"] = seq
        out[i]["symbol"] = symbol
        for name, value in row.items():
            out[i][name] = value
    return out


# -- readable output ----------------------------------------------------------

_KIND = {v: k for k, v in vars(ReportKind).items() if k.isupper()}
_ACTION = {v: k for k, v in vars(Action).items() if k.isupper()}
_SIDE = {Side.BUY: "BUY", Side.SELL: "SELL"}
_TYPE = {v: k for k, v in vars(OrderType).items() if k.isupper()}


def _px(p) -> str:
    return "NO_PRICE" if int(p) == NO_PRICE else str(int(p))


def format_report(r) -> str:
    text = (
        f"seq={int(r['seq'])} sym={int(r['symbol'])} "
        f"{_KIND.get(int(r['kind']), int(r['kind']))} id={int(r['order_id'])} "
        f"acct={int(r['account'])} {_SIDE.get(int(r['side']), int(r['side']))} "
        f"px={_px(r['price'])} qty={int(r['qty'])} leaves={int(r['leaves'])}"
    )
    if int(r["maker_id"]) or int(r["maker_account"]) or int(r["maker_leaves"]):
        text += (
            f" maker={int(r['maker_id'])}/{int(r['maker_account'])}"
            f" maker_leaves={int(r['maker_leaves'])}"
        )
    if int(r["reason"]):
        text += f" reason={Reason.name_of(int(r['reason']))}"
    if int(r["_pad"]):
        text += f" _pad={int(r['_pad'])}"
    return text


def format_message(m) -> str:
    return (
        f"seq={int(m['seq'])} {_ACTION.get(int(m['action']), int(m['action']))} "
        f"sym={int(m['symbol'])} id={int(m['order_id'])} acct={int(m['account'])} "
        f"{_SIDE.get(int(m['side']), int(m['side']))} "
        f"{_TYPE.get(int(m['type']), int(m['type']))} px={_px(m['price'])} qty={int(m['qty'])}"
    )


def assert_same_reports(actual: np.ndarray, expected: np.ndarray, context: str = "") -> None:
    """Exact equality of two report arrays, with a line-per-report diff on failure."""
    assert actual.dtype == REPORT_DTYPE, f"report dtype {actual.dtype} != REPORT_DTYPE"
    if np.array_equal(actual, expected):
        return
    lines = [context, "reports differ (actual | expected):"]
    for i in range(max(len(actual), len(expected))):
        a = format_report(actual[i]) if i < len(actual) else "-"
        e = format_report(expected[i]) if i < len(expected) else "-"
        mark = "  " if i < len(actual) and i < len(expected) and actual[i] == expected[i] else "!!"
        lines.append(f"{mark} {a:<80} | {e}")
    raise AssertionError("\n".join(lines))


BOOK_FIELDS = ("symbol", "side", "order_id", "account", "price", "qty")


def book_rows(engine) -> list[tuple]:
    """``resting_orders()`` as plain tuples in the contract's field order."""
    rows = engine.resting_orders()
    return [tuple(int(r[f]) for f in BOOK_FIELDS) for r in rows]


class Session:
    """Drive one engine message by message, checking invariants after each."""

    def __init__(self, engine):
        self.engine = engine
        self.ledger = Ledger()
        self.seq = 0

    def send(self, *msgs: dict, expect: list[dict] | None = None) -> np.ndarray:
        """Process ``msgs`` as one batch; with ``expect``, require exactly those reports."""
        batch = to_batch(list(msgs), first_seq=self.seq + 1)
        self.seq += len(msgs)
        reports = self.engine.process(batch)
        if expect is not None:  # compared first: the clearest message if they differ
            want = expected_reports(expect, seq=self.seq, symbol=msgs[-1]["symbol"])
            assert_same_reports(reports, want, context=f"after {msgs[-1]}")
        self.ledger.consume(batch, reports)
        check_invariants(self.engine, self.ledger)
        return reports

    def expect(self, msg: dict, rows: list[dict]) -> np.ndarray:
        """Send one message and require exactly ``rows`` back (seq/symbol filled in)."""
        return self.send(msg, expect=rows)

    def book(self) -> list[tuple]:
        return book_rows(self.engine)


# -- sessions for the rule tests ---------------------------------------------
# Registered as ``s`` and ``stp``: test modules import ``fixture_s``/``fixture_stp``,
# so the tests' parameters do not shadow an imported name.


@pytest.fixture(name="s")
def fixture_s(engine_factory):
    """A session on a 2-symbol engine without self-trade prevention."""
    return Session(engine_factory(n_symbols=2))


@pytest.fixture(name="stp")
def fixture_stp(engine_factory):
    """A session on a 2-symbol engine with stp="cancel-newest"."""
    return Session(engine_factory(n_symbols=2, stp="cancel-newest"))


def rest(session, *msgs):
    """Send messages that must all just rest (each yields only its ACK)."""
    for m in msgs:
        session.expect(
            m, [ack(m["order_id"], m["side"], m["price"], m["qty"], account=m["account"])]
        )


def tops_from_resting(resting: np.ndarray, symbols) -> np.ndarray:
    """``TOP_DTYPE`` rows for ``symbols`` from ``MatchingEngine.resting_orders()``.

    The oracle for ``MatchingEngine.tops``: it reads the whole resting book
    where the engine reads its ladders' best levels.
    """
    if not isinstance(resting, np.ndarray) or resting.dtype != RESTING_DTYPE:
        raise TypeError("resting must be MatchingEngine.resting_orders()")
    symbols = np.asarray(symbols, np.int32)
    out = np.zeros(len(symbols), TOP_DTYPE)
    out["symbol"] = symbols
    for name, side in (("bid", Side.BUY), ("ask", Side.SELL)):
        # The dump is by symbol, bids then asks, best price first.
        rows = resting[resting["side"] == side]
        lo = np.searchsorted(rows["symbol"], symbols, side="left")
        hi = np.searchsorted(rows["symbol"], symbols, side="right")
        best = np.full(len(symbols), NO_PRICE, np.int64)
        qty = np.zeros(len(symbols), np.int64)
        for k in np.flatnonzero(hi > lo):
            prices = rows["price"][lo[k] : hi[k]]
            best[k] = prices[0]
            qty[k] = rows["qty"][lo[k] : hi[k]][prices == prices[0]].sum()
        out[f"{name}_price"] = best
        out[f"{name}_qty"] = qty
    return out
