"""Book invariants, checked after every batch against any engine.

``Ledger`` replays an engine's own reports (with the messages that caused
them) into a small model of the resting orders: which orders rest, with what
price and qty, and *when* each one last (re)entered its level. It also keeps
the quantity totals of the conservation law. ``check_invariants`` then holds
the engine's ``resting_orders()`` against that model and the contract:

- the book is never crossed;
- ``resting_orders()`` is in contract order, and within a level the orders
  are oldest-(re)entry first (FIFO);
- the resting orders are exactly the ones the reports imply;
- quantity is conserved.

Conservation, as the contract writes it, counts "filled qty" once, but one
fill consumes its qty from two orders (the taker's and the maker's), so the
identity only balances with the filled qty counted once *per side*:
``new + modify deltas == 2 * filled + resting + canceled + expired``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.messages import NO_PRICE, OrderType, Reason, ReportKind, Side

__all__ = ["Ledger", "check_invariants"]


@dataclass
class _Tracked:
    side: int
    account: int
    price: int
    qty: int
    entered: int  # ledger clock when the order last (re)entered its level


@dataclass
class Ledger:
    """Report-driven model of the book plus the conservation totals."""

    new_qty: int = 0  #: sum of accepted NEW qty (ACK qty)
    modify_delta: int = 0  #: sum of Q - remaining-before over accepted non-zero MODIFYs
    filled: int = 0  #: sum of FILL qty (each fill once)
    canceled: int = 0  #: qty removed by CANCEL, MODIFY-to-0 and STP
    expired: int = 0  #: qty removed as EXPIRED (MARKET/IOC remainder, FOK)
    resting: dict[tuple[int, int], _Tracked] = field(default_factory=dict)
    clock: int = 0

    def consume(self, batch: np.ndarray, reports: np.ndarray) -> None:
        """Apply one processed batch; ``batch`` must have distinct ``seq`` values."""
        seqs = batch["seq"]
        assert len(np.unique(seqs)) == len(seqs), "ledger needs distinct seqs within a batch"
        cursor = 0
        for m in batch:
            start = cursor
            while cursor < len(reports) and reports[cursor]["seq"] == m["seq"]:
                cursor += 1
            group = reports[start:cursor]
            assert len(group) >= 1, f"message seq={int(m['seq'])} produced no report"
            self._apply(m, group)
        assert cursor == len(reports), "reports left over or out of causal order"

    def _apply(self, m, group: np.ndarray) -> None:
        symbol = int(m["symbol"])
        for r in group:
            _check_fields(r, m)
        first = group[0]
        kind = int(first["kind"])
        if kind == ReportKind.REJECT:
            assert len(group) == 1, "a REJECT must be the message's only report"
            return
        if kind == ReportKind.CANCELED:  # CANCEL or MODIFY to qty 0
            assert len(group) == 1
            order = self.resting.pop((symbol, int(first["order_id"])))
            assert int(first["qty"]) == order.qty, "CANCELED qty != remaining qty"
            self.canceled += order.qty
            return
        qty, price = int(first["qty"]), int(first["price"])
        key = (symbol, int(first["order_id"]))
        if kind == ReportKind.ACK:
            self.new_qty += qty
            taker = _Tracked(int(first["side"]), int(first["account"]), price, qty, -1)
            may_rest = int(m["type"]) == OrderType.LIMIT
        elif kind == ReportKind.MODIFIED:
            before = self.resting[key]
            assert int(first["maker_leaves"]) == before.qty, "MODIFIED: not the qty replaced"
            self.modify_delta += qty - before.qty
            if price == before.price and qty <= before.qty:
                assert len(group) == 1, "an in-place MODIFY cannot trade"
                before.qty = qty  # keeps its entry time
                return
            del self.resting[key]
            taker = _Tracked(before.side, before.account, price, qty, -1)
            may_rest = True
        else:
            raise AssertionError(f"unexpected first report kind {kind}")
        self._take(symbol, key, taker, group[1:], may_rest)

    def _take(self, symbol, key, taker: _Tracked, rest: np.ndarray, may_rest: bool) -> None:
        """FILLs, then at most one EXPIRED/CANCELED; what is left rests (if it may)."""
        for i, r in enumerate(rest):
            kind, qty = int(r["kind"]), int(r["qty"])
            if kind == ReportKind.FILL:
                maker_key = (symbol, int(r["maker_id"]))
                maker = self.resting[maker_key]
                assert maker.side != taker.side and 0 < qty <= min(maker.qty, taker.qty)
                maker.qty -= qty
                taker.qty -= qty
                assert int(r["leaves"]) == taker.qty, "FILL leaves != taker's remaining qty"
                assert int(r["maker_leaves"]) == maker.qty, "FILL maker_leaves != maker's rest"
                self.filled += qty
                if maker.qty == 0:
                    del self.resting[maker_key]
                continue
            assert i == len(rest) - 1, "nothing may follow an EXPIRED/CANCELED"
            assert qty == taker.qty > 0, "the closing report must remove the whole remainder"
            if kind == ReportKind.EXPIRED:
                self.expired += qty
            else:
                assert kind == ReportKind.CANCELED and int(r["reason"]) == Reason.SELF_TRADE
                self.canceled += qty
            return
        if taker.qty > 0:
            assert may_rest, "a MARKET/IOC/FOK remainder must be reported, not rest"
            self.clock += 1
            taker.entered = self.clock
            self.resting[key] = taker

    def resting_qty(self) -> int:
        return sum(o.qty for o in self.resting.values())


def _check_fields(r, m) -> None:
    """Per-report field rules that need no book: echoes, zeros and ``leaves``."""
    kind = int(r["kind"])
    assert r["seq"] == m["seq"] and r["symbol"] == m["symbol"] and r["_pad"] == 0
    if kind != ReportKind.FILL:
        assert r["maker_id"] == r["maker_account"] == 0, "maker fields set"
    if kind not in (ReportKind.FILL, ReportKind.MODIFIED):  # MODIFIED: the qty it replaced
        assert r["maker_leaves"] == 0, "maker_leaves set"
    if kind in (ReportKind.ACK, ReportKind.MODIFIED):
        assert r["leaves"] == r["qty"], "ACK/MODIFIED leaves != qty"
    elif kind != ReportKind.FILL:
        assert r["leaves"] == 0, "REJECT/CANCELED/EXPIRED leaves != 0"


def _sort_key(row) -> tuple:
    symbol, side, price = int(row["symbol"]), int(row["side"]), int(row["price"])
    # Bids best (highest) first, then asks best (lowest) first.
    return (symbol, 0 if side == Side.BUY else 1, -price if side == Side.BUY else price)


def check_invariants(engine, ledger: Ledger) -> None:
    """Assert every book invariant of ``engine`` against ``ledger``'s model."""
    rows = engine.resting_orders()
    assert engine.n_resting == len(rows)
    assert np.all(rows["qty"] > 0), "a resting order has no quantity"
    assert np.all(rows["price"] > 0) and not np.any(rows["price"] == NO_PRICE)

    keys = [_sort_key(r) for r in rows]
    assert keys == sorted(keys), "resting_orders() is not in contract order"

    # Never crossed.
    for symbol in np.unique(rows["symbol"]):
        mine = rows[rows["symbol"] == symbol]
        bids, asks = mine[mine["side"] == Side.BUY], mine[mine["side"] == Side.SELL]
        if len(bids) and len(asks):
            assert bids["price"].max() < asks["price"].min(), f"symbol {symbol} is crossed"

    # Exactly the orders the reports imply.
    actual = {
        (int(r["symbol"]), int(r["order_id"])): (
            int(r["side"]),
            int(r["account"]),
            int(r["price"]),
            int(r["qty"]),
        )
        for r in rows
    }
    assert len(actual) == len(rows), "an order id rests twice in one symbol"
    expected = {k: (o.side, o.account, o.price, o.qty) for k, o in ledger.resting.items()}
    assert actual == expected, _diff_books(actual, expected)

    # FIFO: within one (symbol, side, price), oldest (re)entry first.
    previous = None
    for r, key in zip(rows, keys, strict=True):
        entered = ledger.resting[(int(r["symbol"]), int(r["order_id"]))].entered
        if previous is not None and previous[0] == key:
            assert previous[1] < entered, f"FIFO broken at level {key}"
        previous = (key, entered)

    resting = int(rows["qty"].sum())
    lhs = ledger.new_qty + ledger.modify_delta
    rhs = 2 * ledger.filled + resting + ledger.canceled + ledger.expired
    assert lhs == rhs, (
        f"qty not conserved: new {ledger.new_qty} + modify {ledger.modify_delta} != "
        f"2*filled {ledger.filled} + resting {resting} + canceled {ledger.canceled} "
        f"+ expired {ledger.expired}"
    )


def _diff_books(actual: dict, expected: dict) -> str:
    lines = ["resting orders differ from what the reports imply (side, account, price, qty):"]
    for k in sorted(set(actual) | set(expected)):
        if actual.get(k) != expected.get(k):
            lines.append(f"  {k}: engine {actual.get(k)} vs reports {expected.get(k)}")
    return "\n".join(lines)
