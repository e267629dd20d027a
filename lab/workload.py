"""A seeded zero-intelligence order flow that builds message batches.

Limit prices are drawn around the current mid with a geometric fall-off in
ticks; cancels and modifies target the generator's own earlier limit orders
(some of which will have traded away by then, as in real flow). Random draws
are made with NumPy's ``Generator`` and turned into messages by one jitted
kernel, so a batch of millions of orders takes a fraction of a second and the
same seed always gives the same flow.
"""

from typing import NamedTuple

import numpy as np

from engine.jit import njit
from engine.kernels import BUY, CANCEL, IOC, LIMIT, MARKET, MODIFY, NEW, NO_PRICE, SELL
from engine.messages import MESSAGE_DTYPE

__all__ = ["FlowParams", "OrderFlow"]

# Kinds of generated message, in the order of FlowParams' mix.
_LIMIT, _MARKET, _IOC, _CANCEL, _MODIFY = range(5)


class FlowParams(NamedTuple):
    symbols: int = 8
    accounts: int = 1000
    mid_price: int = 10_000
    price_levels: int = 50
    price_decay: float = 0.9
    max_qty: int = 100
    # limit, market, ioc, cancel, modify
    mix: tuple = (0.6, 0.05, 0.05, 0.2, 0.1)


@njit
def _build(
    out,
    kind,
    sym_u,
    acct,
    side_u,
    off,
    qty,
    pick,
    mids,
    first_id,
    pool_sym,
    pool_id,
    pool_acct,
    pool_price,
    pool_n,
    seq0,
    through,
):
    """Fill ``out`` from pre-drawn randoms; returns the live-pool size after it."""
    n = pool_n
    cap = pool_id.shape[0]
    oid = first_id
    for i in range(out.shape[0]):
        m = out[i]
        m.seq = seq0 + i
        m._pad = 0
        k = kind[i]
        if (k == _CANCEL or k == _MODIFY) and n == 0:
            k = _LIMIT
        if k == _CANCEL or k == _MODIFY:
            j = pick[i] % n
            m.symbol = pool_sym[j]
            m.order_id = pool_id[j]
            m.account = pool_acct[j]
            m.side = 0
            m.type = 0
            if k == _CANCEL:
                m.action = CANCEL
                m.price = NO_PRICE
                m.qty = 0
                n -= 1
                pool_sym[j], pool_id[j] = pool_sym[n], pool_id[n]
                pool_acct[j], pool_price[j] = pool_acct[n], pool_price[n]
            else:
                m.action = MODIFY
                step = off[i] % 3 - 1  # move the price by -1, 0 or +1 tick
                price = max(1, pool_price[j] + step)
                pool_price[j] = price
                m.price = price
                m.qty = qty[i]
            continue
        sym = sym_u[i]
        side = BUY if side_u[i] else SELL
        sign = 1 if side == BUY else -1
        m.action = NEW
        m.symbol = sym
        m.order_id = oid
        m.account = acct[i]
        m.side = side
        m.qty = qty[i]
        if k == _MARKET:
            m.type = MARKET
            m.price = NO_PRICE
        elif k == _IOC:
            m.type = IOC
            m.price = max(1, mids[sym] + sign * off[i])
        else:
            m.type = LIMIT
            # ``through`` ticks past the mid let some limits cross and trade.
            price = max(1, mids[sym] - sign * (off[i] - through))
            m.price = price
            j = n if n < cap else pick[i] % cap
            pool_sym[j], pool_id[j], pool_acct[j], pool_price[j] = sym, oid, acct[i], price
            if n < cap:
                n += 1
        oid += 1
    return n, oid


class OrderFlow:
    """Seeded, stateful generator of message batches for a set of symbols.

    ``symbol_ids`` maps the flow's symbols to engine symbol indices; order ids
    start at ``first_order_id`` so several generators never collide.
    """

    def __init__(
        self,
        params: FlowParams = FlowParams(),
        seed: int = 1,
        first_order_id: int = 1,
        pool_size: int = 1 << 16,
        through_ticks: int = 2,
    ):
        mix = np.asarray(params.mix, dtype=np.float64)
        if mix.shape != (5,) or (mix < 0).any() or abs(mix.sum() - 1.0) > 1e-6:
            raise ValueError("mix must be 5 non-negative fractions summing to 1")
        self.params = params
        self._rng = np.random.default_rng(seed)
        self._cum_mix = np.cumsum(mix)
        self._cum_mix[-1] = 1.0
        self.mids = np.full(params.symbols, params.mid_price, dtype=np.int64)
        self._next_id = int(first_order_id)
        self._seq = 0
        self._through = int(through_ticks)
        self._pool_sym = np.zeros(pool_size, dtype=np.int32)
        self._pool_id = np.zeros(pool_size, dtype=np.int64)
        self._pool_acct = np.zeros(pool_size, dtype=np.int64)
        self._pool_price = np.zeros(pool_size, dtype=np.int64)
        self._pool_n = 0

    @property
    def live_orders(self) -> tuple[np.ndarray, np.ndarray]:
        """(symbols, order ids) the flow believes are resting."""
        n = self._pool_n
        return self._pool_sym[:n], self._pool_id[:n]

    def keep_only(self, mask: np.ndarray) -> None:
        """Forget the live orders where ``mask`` is false (filled or gone)."""
        n = self._pool_n
        keep = np.flatnonzero(mask[:n])
        for arr in (self._pool_sym, self._pool_id, self._pool_acct, self._pool_price):
            arr[: len(keep)] = arr[keep]
        self._pool_n = len(keep)

    def next_batch(self, n: int) -> np.ndarray:
        """The next ``n`` messages of the flow."""
        p, rng = self.params, self._rng
        kind = np.searchsorted(self._cum_mix, rng.random(n), side="right").astype(np.int8)
        np.minimum(kind, _MODIFY, out=kind)
        sym = rng.integers(0, p.symbols, n, dtype=np.int32)
        acct = rng.integers(1, p.accounts + 1, n, dtype=np.int64)
        side = rng.random(n) < 0.5
        off = np.minimum(rng.geometric(1.0 - p.price_decay, n) - 1, p.price_levels)
        qty = rng.integers(1, p.max_qty + 1, n, dtype=np.int64)
        pick = rng.integers(0, 1 << 62, n, dtype=np.int64)
        out = np.empty(n, dtype=MESSAGE_DTYPE)
        self._pool_n, self._next_id = _build(
            out,
            kind,
            sym,
            acct,
            side,
            off.astype(np.int64),
            qty,
            pick,
            self.mids,
            self._next_id,
            self._pool_sym,
            self._pool_id,
            self._pool_acct,
            self._pool_price,
            self._pool_n,
            self._seq,
            self._through,
        )
        self._seq += n
        return out
