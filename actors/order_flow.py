"""A seeded zero-intelligence order flow that builds message batches.

Limit prices are drawn around the current mid with a geometric fall-off in
ticks; cancels and modifies target the generator's own earlier limit orders
(some of which will have traded away by then, as in real flow). Random draws
are made with NumPy's ``Generator`` and turned into messages by one jitted
kernel, so a batch of millions of orders takes a fraction of a second and the
same seed always gives the same flow.

The book the flow builds is stationary, as in the zero-intelligence model of
Smith, Farmer et al. (2003), because every resting order the flow tracks has
a cancellation hazard: with ``mean_lifetime_s`` = L, each is cancelled at rate
1/L on the flow's clock (its generator's monotonic clock). The hazard is
memoryless, so per batch the flow draws how many of its N tracked orders are
due, Poisson(N·Δt/L), and cancels that many picked at random; those cancels
take slots of the batch, so the flow's rate stays the configured one. An
order that must leave the tracked pool to make room (the pool is full) is
cancelled too, never silently forgotten: the resting orders of a flow are
bounded by its pool. :func:`expected_depth` gives the stationary depth.
"""

from typing import NamedTuple

import numpy as np

from engine.jit import njit, njit_inline
from engine.messages import MESSAGE_DTYPE, NO_PRICE, Action, OrderType, Side

# Plain ints, which Numba folds into the kernels as constants.
NEW, CANCEL, MODIFY = Action.NEW, Action.CANCEL, Action.MODIFY
BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET, IOC = OrderType.LIMIT, OrderType.MARKET, OrderType.IOC

__all__ = ["FlowParams", "OrderFlow", "resting_share", "expected_depth", "MAKERS_PER_TAKER"]

_FIELDS = ("seq", "order_id", "account", "price", "qty", "symbol", "action", "side", "type")

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
    #: mean lifetime of a resting order (the cancellation hazard is its inverse); 0: no hazard
    mean_lifetime_s: float = 0.0


@njit
def _build(
    cols,
    u,
    cum_mix,
    symbols,
    accounts,
    log_decay,
    levels,
    max_qty,
    mids,
    first_id,
    pool_sym,
    pool_id,
    pool_acct,
    pool_price,
    pool_n,
    seq0,
    through,
    due,
):
    """Fill the message columns from pre-drawn randoms; returns (pool size, next id, due).

    ``cols`` are field views (seq, order_id, account, price, qty, symbol,
    action, side, type): Numba writes through them far faster than through
    records. ``due`` hazard cancels go out first, each of a random tracked
    order; the count still due when the pool is empty is returned. A limit
    order that finds the pool full becomes a cancel of a random tracked
    order instead, which makes room.
    """
    o_seq, o_id, o_acct, o_price, o_qty, o_sym, o_action, o_side, o_type = cols
    n = pool_n
    cap = pool_id.shape[0]
    oid = first_id
    for i in range(o_seq.shape[0]):
        o_seq[i] = seq0 + i
        # Six uniforms per message: kind, symbol, account, side, price offset, qty;
        # the pick of a live order reuses the account's uniform.
        k = 0
        while k < _MODIFY and u[0, i] >= cum_mix[k]:
            k += 1
        sym = np.int32(u[1, i] * symbols)
        acct = 1 + np.int64(u[2, i] * accounts)
        buy = u[3, i] < 0.5
        # Geometric fall-off by inverse transform: P(off = j) ~ decay**j.
        off = min(np.int64(np.log1p(-u[4, i]) / log_decay), levels)
        qty = 1 + np.int64(u[5, i] * max_qty)
        pick = np.int64(u[2, i] * 4503599627370496.0)  # 2**52
        if due > 0 and n > 0:
            k = _CANCEL  # a cancel the hazard drew
            due -= 1
        elif k == _LIMIT and n == cap:
            k = _CANCEL  # the pool is full: the order leaving it is cancelled
        if (k == _CANCEL or k == _MODIFY) and n == 0:
            k = _LIMIT
        if k == _CANCEL or k == _MODIFY:
            j = pick % n
            o_sym[i] = pool_sym[j]
            o_id[i] = pool_id[j]
            o_acct[i] = pool_acct[j]
            o_side[i] = 0
            o_type[i] = 0
            if k == _CANCEL:
                o_action[i] = CANCEL
                o_price[i] = NO_PRICE
                o_qty[i] = 0
                n -= 1
                pool_sym[j], pool_id[j] = pool_sym[n], pool_id[n]
                pool_acct[j], pool_price[j] = pool_acct[n], pool_price[n]
            else:
                o_action[i] = MODIFY
                step = off % 3 - 1  # move the price by -1, 0 or +1 tick
                price = max(1, pool_price[j] + step)
                pool_price[j] = price
                o_price[i] = price
                o_qty[i] = qty
            continue
        side = BUY if buy else SELL
        sign = 1 if side == BUY else -1
        o_action[i] = NEW
        o_sym[i] = sym
        o_id[i] = oid
        o_acct[i] = acct
        o_side[i] = side
        o_qty[i] = qty
        if k == _MARKET:
            o_type[i] = MARKET
            o_price[i] = NO_PRICE
        elif k == _IOC:
            o_type[i] = IOC
            o_price[i] = max(1, mids[sym] + sign * off)
        else:
            o_type[i] = LIMIT
            # ``through`` ticks past the mid let some limits cross and trade.
            price = max(1, mids[sym] - sign * (off - through))
            o_price[i] = price
            pool_sym[n], pool_id[n], pool_acct[n], pool_price[n] = sym, oid, acct, price
            n += 1
        oid += 1
    return n, oid, due


_NO_ID = np.iinfo(np.int64).min  # an empty slot of ``_forget``'s table


@njit_inline
def _slot(table, key):
    """Where ``key`` is in ``_forget``'s table, or the empty slot it would take."""
    mask = table.shape[0] - 1
    h = key & mask
    while table[h] != _NO_ID and table[h] != key:
        h = (h + 1) & mask
    return h


@njit
def _forget(pool_sym, pool_id, pool_acct, pool_price, n, gone, table):
    """Drop pool entries whose id is in ``gone``; returns the new size.

    ``table`` is scratch: a power of two over twice ``len(gone)`` slots, all
    ``_NO_ID``. The ids go into it as an open-addressed set, so the pass over
    the pool costs one probe per entry, not a binary search (ids are
    sequential per flow, so their low bits spread them well).
    """
    for g in gone:
        table[_slot(table, g)] = g
    k = 0
    for i in range(n):
        if table[_slot(table, pool_id[i])] == pool_id[i]:
            continue
        pool_sym[k], pool_id[k] = pool_sym[i], pool_id[i]
        pool_acct[k], pool_price[k] = pool_acct[i], pool_price[i]
        k += 1
    return k


#: Resting orders a taking order (market, IOC, or a limit that crosses) removes on average,
#: measured on the engine with this module's quantities (uniform 1..max_qty on both sides).
MAKERS_PER_TAKER = 0.8


def resting_share(params: FlowParams, through_ticks: int = 2) -> float:
    """r: resting orders the flow adds per message of its mix, net of what it removes.

    A limit order rests when its price stays at least ``through_ticks`` on its
    own side of the mid (probability decay**through_ticks); the others, and
    market and IOC orders, take on average :data:`MAKERS_PER_TAKER` resting
    orders away; each cancel of the mix removes one.
    """
    limit, market, ioc, cancel, _ = params.mix
    rests = params.price_decay**through_ticks
    takers = market + ioc + limit * (1 - rests)
    return limit * rests - cancel - MAKERS_PER_TAKER * takers


def expected_depth(params: FlowParams, rate: float, through_ticks: int = 2) -> float:
    """Resting orders a flow of ``rate`` messages/s keeps in the stationary book.

    With the hazard's cancels (N/L per second) taking slots of the flow, the
    mix sends X − N/L messages per second and adds r of a resting order with
    each; the hazard removes N/L. Balance gives N = r·X·L / (1 + r) (Little's
    law with the lifetime L). 0 when the mix removes more than it adds (r ≤ 0),
    None without a hazard, where the book grows as r·X per second instead.
    """
    if not params.mean_lifetime_s:
        return None
    r = resting_share(params, through_ticks)
    return max(0.0, r * rate * params.mean_lifetime_s / (1 + r))


#: Forgotten ids that wait for one pass over the pool (see ``OrderFlow.forget``).
FORGET_BATCH = 256


class OrderFlow:
    """Seeded, stateful generator of message batches for a set of symbols.

    ``symbol_ids`` maps the flow's symbols to engine symbol indices; order ids
    start at ``first_order_id`` so several generators never collide.
    """

    def __init__(
        self,
        params: FlowParams | None = None,
        seed: int = 1,
        first_order_id: int = 1,
        pool_size: int = 1 << 16,
        through_ticks: int = 2,
    ):
        params = FlowParams() if params is None else params
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
        self._gone: list[np.ndarray] = []  # ids waiting to be forgotten
        self._gone_n = 0
        self._lifetime_ns = float(params.mean_lifetime_s) * 1e9
        self._clock_ns: int | None = None  # the flow's clock at its last batch
        self._due = 0  # hazard cancels drawn but not yet sent

    @property
    def live_orders(self) -> tuple[np.ndarray, np.ndarray]:
        """(symbols, order ids) the flow believes are resting, waiting forgets applied."""
        self.forget_now()
        n = self._pool_n
        return self._pool_sym[:n], self._pool_id[:n]

    def keep_only(self, mask: np.ndarray) -> None:
        """Forget the live orders where ``mask`` is false (filled or gone)."""
        n = self._pool_n
        keep = np.flatnonzero(mask[:n])
        for arr in (self._pool_sym, self._pool_id, self._pool_acct, self._pool_price):
            arr[: len(keep)] = arr[keep]
        self._pool_n = len(keep)

    def forget(self, order_ids: np.ndarray) -> None:
        """Forget these orders (they traded away, were cancelled or rejected).

        Dropping ids costs a pass over the whole pool, so a few ids at a time
        (one order per call) wait until ``FORGET_BATCH`` have gathered: the
        flow may meanwhile aim a cancel at an order that is already gone,
        which the engine rejects as unknown, as it would a real client's.
        """
        if len(order_ids):
            self._gone.append(np.asarray(order_ids, dtype=np.int64))
            self._gone_n += len(order_ids)
        if self._gone_n >= FORGET_BATCH:
            self.forget_now()

    def forget_now(self) -> None:
        """Apply every forget still waiting."""
        if self._gone_n and self._pool_n:
            slots = 1 << (2 * self._gone_n).bit_length()
            self._pool_n = _forget(
                self._pool_sym,
                self._pool_id,
                self._pool_acct,
                self._pool_price,
                self._pool_n,
                np.concatenate(self._gone),
                np.full(slots, _NO_ID, dtype=np.int64),
            )
        self._gone, self._gone_n = [], 0

    @property
    def tracked(self) -> int:
        """How many orders the flow believes are resting (waiting forgets not yet applied)."""
        return self._pool_n

    def next_batch(
        self, n: int, dtype: np.dtype = MESSAGE_DTYPE, now_ns: int | None = None
    ) -> np.ndarray:
        """The next ``n`` messages of the flow, as an array of ``dtype``.

        ``dtype`` must hold the message fields; any other field is zeroed.
        ``now_ns`` is the flow's clock for the cancellation hazard (ns, any
        monotonic origin); without it no hazard cancels are drawn.
        """
        self._draw_hazard(now_ns)
        p = self.params
        out = np.zeros(n, dtype=dtype)
        cols = tuple(out[name] for name in _FIELDS)
        self._pool_n, self._next_id, self._due = _build(
            cols,
            self._rng.random((6, n)),
            self._cum_mix,
            p.symbols,
            p.accounts,
            np.log(p.price_decay),
            p.price_levels,
            p.max_qty,
            self.mids,
            self._next_id,
            self._pool_sym,
            self._pool_id,
            self._pool_acct,
            self._pool_price,
            self._pool_n,
            self._seq,
            self._through,
            self._due,
        )
        self._seq += n
        return out

    def _draw_hazard(self, now_ns: int | None) -> None:
        """Add the hazard cancels due since the last batch: Poisson(N·Δt/L)."""
        if not self._lifetime_ns or now_ns is None:
            return
        if self._clock_ns is not None and now_ns > self._clock_ns:
            # Forgets still waiting are not applied here (a pass over the pool per
            # batch); they are only subtracted from N.
            resting = max(self._pool_n - self._gone_n, 0)
            expected = resting * (now_ns - self._clock_ns) / self._lifetime_ns
            self._due = min(self._due + int(self._rng.poisson(expected)), self._pool_n)
        self._clock_ns = now_ns if self._clock_ns is None else max(self._clock_ns, now_ns)
