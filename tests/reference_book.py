"""A plain pure-Python matching engine: the oracle for the Numba engine.

``ReferenceEngine`` has the same API as :class:`engine.MatchingEngine`
(``process``, ``resting_orders``, ``n_resting``) and follows the engine
contract literally, one message at a time, with ordinary lists and dicts.
It is written to be obviously correct, not fast: every order is a small
object, and each side of a book is a dict ``price -> [orders, oldest first]``
plus a sorted list of its prices.
"""

from __future__ import annotations

from bisect import bisect_left, insort

import numpy as np

from engine.messages import (
    NO_PRICE,
    REPORT_DTYPE,
    Action,
    OrderType,
    Reason,
    ReportKind,
    Side,
)

__all__ = ["RESTING_DTYPE", "ReferenceEngine"]

#: Rows of ``resting_orders()``, in the contract's field order.
RESTING_DTYPE = np.dtype(
    [
        ("symbol", np.int32),
        ("side", np.int8),
        ("order_id", np.int64),
        ("account", np.int64),
        ("price", np.int64),
        ("qty", np.int64),
    ]
)

_ACTIONS = (Action.NEW, Action.CANCEL, Action.MODIFY)
_SIDES = (Side.BUY, Side.SELL)
_TYPES = (OrderType.LIMIT, OrderType.MARKET, OrderType.IOC, OrderType.FOK)
_STP_MODES = {"none": False, "cancel-newest": True}


class _Order:
    """One resting (or incoming) order; ``qty`` is what remains."""

    __slots__ = ("order_id", "account", "side", "price", "qty")

    def __init__(self, order_id: int, account: int, side: int, price: int, qty: int):
        self.order_id = order_id
        self.account = account
        self.side = side
        self.price = price
        self.qty = qty


class _BookSide:
    """One side of one symbol's book: FIFO queues keyed by price."""

    def __init__(self, is_bid: bool):
        self.is_bid = is_bid
        self.levels: dict[int, list[_Order]] = {}
        self.prices: list[int] = []  # ascending; best is last for bids, first for asks

    def prices_best_first(self) -> list[int]:
        return self.prices[::-1] if self.is_bid else list(self.prices)

    def best_order(self) -> _Order | None:
        if not self.prices:
            return None
        best = self.prices[-1] if self.is_bid else self.prices[0]
        return self.levels[best][0]

    def append(self, order: _Order) -> None:
        if order.price not in self.levels:
            self.levels[order.price] = []
            insort(self.prices, order.price)
        self.levels[order.price].append(order)

    def remove(self, order: _Order) -> None:
        level = self.levels[order.price]
        # Remove by identity: two orders never share an id in one book, but be exact.
        level.pop(next(i for i, o in enumerate(level) if o is order))
        if not level:
            del self.levels[order.price]
            self.prices.pop(bisect_left(self.prices, order.price))

    def orders_best_first(self):
        for price in self.prices_best_first():
            yield from self.levels[price]


class _Book:
    """Both sides of one symbol."""

    def __init__(self):
        self.bids = _BookSide(is_bid=True)
        self.asks = _BookSide(is_bid=False)

    def own(self, side: int) -> _BookSide:
        return self.bids if side == Side.BUY else self.asks

    def opposite(self, side: int) -> _BookSide:
        return self.asks if side == Side.BUY else self.bids


def _acceptable(taker_side: int, limit: int | None, maker_price: int) -> bool:
    """Can a taker with this limit (None = market) trade at ``maker_price``?"""
    if limit is None:
        return True
    return maker_price <= limit if taker_side == Side.BUY else maker_price >= limit


class ReferenceEngine:
    """Price-time-priority matching, one message at a time, per the contract."""

    def __init__(self, n_symbols: int, stp: str = "none"):
        if stp not in _STP_MODES:
            raise ValueError(f"unknown stp mode {stp!r}")
        self.n_symbols = n_symbols
        self.stp = stp
        self._stp_on = _STP_MODES[stp]
        self._books = [_Book() for _ in range(n_symbols)]
        #: (symbol, order_id) -> resting order
        self._resting: dict[tuple[int, int], _Order] = {}
        self._out: list[tuple] = []  # reports of the current batch, in dtype field order

    # -- public API -------------------------------------------------------

    @property
    def n_resting(self) -> int:
        return len(self._resting)

    def process(self, batch: np.ndarray) -> np.ndarray:
        self._out = []
        for m in batch:
            self._process_one(m)
        return np.array(self._out, dtype=REPORT_DTYPE)

    def resting_orders(self) -> np.ndarray:
        rows = []
        for symbol, book in enumerate(self._books):
            for side in (book.bids, book.asks):
                for o in side.orders_best_first():
                    rows.append((symbol, o.side, o.order_id, o.account, o.price, o.qty))
        return np.array(rows, dtype=RESTING_DTYPE)

    # -- one message ------------------------------------------------------

    def _emit(self, m, kind: int, **fields) -> None:
        """Append one report; fields not given are 0, seq and symbol come from ``m``."""
        fields.update(seq=int(m["seq"]), symbol=int(m["symbol"]), kind=kind)
        self._out.append(tuple(fields.get(name, 0) for name in REPORT_DTYPE.names))

    def _reject(self, m, reason: int) -> None:
        self._emit(
            m,
            ReportKind.REJECT,
            order_id=int(m["order_id"]),
            account=int(m["account"]),
            side=int(m["side"]),
            price=int(m["price"]),
            qty=int(m["qty"]),
            reason=reason,
        )

    def _process_one(self, m) -> None:
        action = int(m["action"])
        symbol = int(m["symbol"])
        if action not in _ACTIONS:
            return self._reject(m, Reason.BAD_ACTION)
        if not 0 <= symbol < self.n_symbols:
            return self._reject(m, Reason.BAD_SYMBOL)
        if action == Action.NEW:
            self._new(m)
        elif action == Action.CANCEL:
            self._cancel(m)
        else:
            self._modify(m)

    def _new(self, m) -> None:
        symbol, order_id = int(m["symbol"]), int(m["order_id"])
        side, otype = int(m["side"]), int(m["type"])
        price, qty = int(m["price"]), int(m["qty"])
        if side not in _SIDES:
            return self._reject(m, Reason.BAD_SIDE)
        if otype not in _TYPES:
            return self._reject(m, Reason.BAD_TYPE)
        if qty <= 0:
            return self._reject(m, Reason.BAD_QTY)
        if otype != OrderType.MARKET and (price == NO_PRICE or price <= 0):
            return self._reject(m, Reason.BAD_PRICE)
        if (symbol, order_id) in self._resting:
            return self._reject(m, Reason.DUPLICATE_ORDER_ID)

        shown_price = NO_PRICE if otype == OrderType.MARKET else price
        order = _Order(order_id, int(m["account"]), side, shown_price, qty)
        self._emit(
            m,
            ReportKind.ACK,
            order_id=order_id,
            account=order.account,
            side=side,
            price=shown_price,
            qty=qty,
            leaves=qty,
        )

        limit = None if otype == OrderType.MARKET else price
        book = self._books[symbol]
        if otype == OrderType.FOK and self._reachable(book, order, limit) < qty:
            return self._end(m, ReportKind.EXPIRED, order, Reason.NONE)

        stopped = self._match(m, book, order, limit)
        if order.qty == 0:
            return
        if stopped:
            self._end(m, ReportKind.CANCELED, order, Reason.SELF_TRADE)
        elif otype == OrderType.LIMIT:
            self._rest(symbol, order)
        else:  # MARKET / IOC remainder (FOK never gets here with qty left)
            self._end(m, ReportKind.EXPIRED, order, Reason.NONE)

    def _cancel(self, m) -> None:
        key = (int(m["symbol"]), int(m["order_id"]))
        if key not in self._resting:
            return self._reject(m, Reason.UNKNOWN_ORDER)
        if self._resting[key].account != int(m["account"]):
            return self._reject(m, Reason.NOT_OWNER)
        self._cancel_resting(m, key)

    def _modify(self, m) -> None:
        key = (int(m["symbol"]), int(m["order_id"]))
        new_price, new_qty = int(m["price"]), int(m["qty"])
        if new_qty < 0:
            return self._reject(m, Reason.BAD_QTY)
        if key not in self._resting:
            return self._reject(m, Reason.UNKNOWN_ORDER)
        if self._resting[key].account != int(m["account"]):
            return self._reject(m, Reason.NOT_OWNER)
        if new_qty == 0:
            return self._cancel_resting(m, key)
        if new_price != NO_PRICE and new_price <= 0:
            return self._reject(m, Reason.BAD_PRICE)

        order = self._resting[key]
        price = order.price if new_price == NO_PRICE else new_price
        self._emit(
            m,
            ReportKind.MODIFIED,
            order_id=order.order_id,
            account=order.account,
            side=order.side,
            price=price,
            qty=new_qty,
            leaves=new_qty,
            maker_leaves=order.qty,  # what was open before
        )
        if price == order.price and new_qty <= order.qty:
            order.qty = new_qty  # in place: keeps time priority
            return

        # Leave the book, then re-enter as a fresh LIMIT taker at the back of its level.
        book = self._books[key[0]]
        book.own(order.side).remove(order)
        del self._resting[key]
        order.price, order.qty = price, new_qty
        stopped = self._match(m, book, order, price)
        if order.qty == 0:
            return
        if stopped:
            self._end(m, ReportKind.CANCELED, order, Reason.SELF_TRADE)
        else:
            self._rest(key[0], order)

    # -- building blocks --------------------------------------------------

    def _cancel_resting(self, m, key) -> None:
        order = self._resting.pop(key)
        self._books[key[0]].own(order.side).remove(order)
        self._end(m, ReportKind.CANCELED, order, Reason.NONE)

    def _end(self, m, kind: int, order: _Order, reason: int) -> None:
        """Report the removal of ``order``'s remaining qty (CANCELED / EXPIRED)."""
        self._emit(
            m,
            kind,
            order_id=order.order_id,
            account=order.account,
            side=order.side,
            price=order.price,
            qty=order.qty,
            reason=reason,
        )

    def _rest(self, symbol: int, order: _Order) -> None:
        self._books[symbol].own(order.side).append(order)
        self._resting[(symbol, order.order_id)] = order

    def _self_trade(self, taker: _Order, maker: _Order) -> bool:
        return self._stp_on and maker.account == taker.account

    def _match(self, m, book: _Book, taker: _Order, limit: int | None) -> bool:
        """Trade ``taker`` against the opposite side; True if STP stopped it."""
        symbol = int(m["symbol"])
        opposite = book.opposite(taker.side)
        while taker.qty > 0:
            maker = opposite.best_order()
            if maker is None or not _acceptable(taker.side, limit, maker.price):
                return False
            if self._self_trade(taker, maker):
                return True
            qty = min(taker.qty, maker.qty)
            taker.qty -= qty
            maker.qty -= qty
            self._emit(
                m,
                ReportKind.FILL,
                order_id=taker.order_id,
                account=taker.account,
                side=taker.side,
                maker_id=maker.order_id,
                maker_account=maker.account,
                price=maker.price,
                qty=qty,
                leaves=taker.qty,
                maker_leaves=maker.qty,
            )
            if maker.qty == 0:
                opposite.remove(maker)
                del self._resting[(symbol, maker.order_id)]
        return False

    def _reachable(self, book: _Book, taker: _Order, limit: int | None) -> int:
        """Liquidity a FOK could take before hitting its limit or an STP stop."""
        total = 0
        for maker in book.opposite(taker.side).orders_best_first():
            if not _acceptable(taker.side, limit, maker.price) or self._self_trade(taker, maker):
                break
            total += maker.qty
            if total >= taker.qty:
                break
        return total
