"""Jitted matching kernels over flat arrays.

State lives in a ``BookState`` named tuple of NumPy arrays (see
:mod:`engine.state`). Orders are 64-byte rows (one cache line) linked into
per-level FIFO lists; levels sit in a pool too. Each book side keeps the ids
of its levels sorted with the best last, its best level apart, and a price
ladder: a window of prices around the best that maps a price straight to its
level, so finding an order's level is O(1) rather than a binary search
(prices outside the window fall back to the sorted list). Order ids are found
through an open-addressing hash table keyed by (symbol, order id).

The kernels never allocate: ``process_batch`` checks, once per chunk of
messages, that the pools can hold the chunk's worst case and, if not, stops
and tells the caller which pool to grow (``NEED_*`` bits); the caller grows
it and calls again.

The book is far larger than the caches, so the batch loop prefetches what the
coming messages will touch (see "prefetching" below); and hot code indexes
flat arrays with unsigned indices (``_u``, ``_row``) because that is what
Numba compiles best.

Why one long module: Numba's on-disk cache of ``process_batch`` is invalidated
only by this file's own timestamp, and every helper here is inlined into it,
so splitting the helpers out would let an edit to them run stale kernels.
"""

import numpy as np

from engine.jit import njit, njit_inline, prefetch

# Codes are repeated here as plain ints so Numba treats them as constants.
NEW, CANCEL, MODIFY = 1, 2, 3
BUY, SELL = 1, 2
LIMIT, MARKET, IOC, FOK = 1, 2, 3, 4
ACK, REJECT, FILL, CANCELED, EXPIRED, MODIFIED = 1, 2, 3, 4, 5, 6
R_NONE, R_DUP, R_QTY, R_PRICE, R_SIDE, R_TYPE, R_UNKNOWN, R_ACTION, R_SYMBOL, R_STP = range(10)
R_NOT_OWNER = 10
NO_PRICE = np.iinfo(np.int64).min

NEED_ORDERS, NEED_LEVELS, NEED_SIDE, NEED_HASH, NEED_REPORTS = 1, 2, 4, 8, 16

# The pools are flat int64 arrays of 8-word rows (64 bytes: one cache line),
# indexed through ``_row``: a constant row width spares Numba loading a shape
# and multiplying by it on every access. Columns of an order row, a level row:
O_ID, O_ACCOUNT, O_PRICE, O_QTY, O_NEXT, O_PREV, O_LEVEL, O_SYM = range(8)
L_PRICE, L_QTY, L_HEAD, L_TAIL, L_BOOK = range(5)
ROW_WIDTH = 8
# Columns of a book side's row in ``st.books`` (side = symbol * 2 + side - 1):
# its level count, resting order count, the price at the ladder's index 0, and
# its best level (-1 if none; the last of its sorted list, kept apart so that
# the hot paths read one word instead of the list).
B_LEVELS, B_ORDERS, B_BASE, B_BEST = range(4)
SIDE_WIDTH = 4
#: Prices per side covered by the price ladder (a window around the best).
LADDER_WIDTH = 512

# Indices into ``st.counters``. C_RESTING counts order rows in use, C_LEVELS
# level rows in use; C_SIDE_MAX bounds every side's level count from above.
C_ORDER_FREE, C_ORDER_HW, C_LEVEL_FREE, C_LEVEL_HW, C_RESTING, C_LEVELS, C_SIDE_MAX = range(7)

#: Messages per capacity check (the pools must hold this many messages' worst
#: case) and per prefetch stage.
CHUNK = 16
#: Rows of messages and reports as int64 words (see ``_unpack`` and ``_emit``).
MESSAGE_WORDS, REPORT_WORDS = 6, 10
#: Messages noted in the prefetch scratch (a power of two, over 4 chunks),
#: and its size in words: per message 2 notes, and 4 lists (see "prefetching").
PIPE = 128
PIPE_MASK = PIPE - 1
PIPE_WORDS = 6 * PIPE

#: Index arrays through ``_u(i)``: Numba wraps negative signed indices (three
#: more instructions per access, a sixth of the kernel's); unsigned ones it
#: takes as they are. Indices here are never negative.
_u = np.uint64


@njit_inline
def _row(row, col):
    """Index of column ``col`` of row ``row`` in a flat pool of 8-word rows."""
    return _u(row * ROW_WIDTH + col)


@njit_inline
def _side(bs, col):
    """Index of column ``col`` of book side ``bs`` in ``st.books``."""
    return _u(bs * SIDE_WIDTH + col)


_H1 = np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15
_LOW = 0xFFFFFFFF

# -- order id table ----------------------------------------------------------------
#
# int64 entries ``tag << 32 | (slot + 1)``, 0 when empty. ``tag`` is a 32-bit
# hash of (symbol, order id) whose low bits are also the home position, so the
# table can move entries (deletion, growth) without reading the order rows, and
# a probe only reads a row when the tags match.


@njit_inline
def _tag(sym, oid):
    # Keeps nearby ids in nearby slots (ids are usually handed out in sequence,
    # and recent orders are the ones cancelled and modified, so this stays in
    # cache), while the folded high bits spread strided id schemes.
    x = oid + sym * _H1
    x ^= (x >> 16) ^ (x >> 32)
    return x & _LOW


@njit_inline
def _hash_find(st, sym, oid, tag):
    """Slot in the order pool of resting (sym, oid), or -1."""
    h = st.h_table
    mask = h.shape[0] - 1
    key = tag << 32
    i = tag & mask
    while True:
        e = h[_u(i)]
        if e == 0:
            return -1
        if (e ^ key) >> 32 == 0:
            s = (e & _LOW) - 1
            if st.orders[_row(s, O_ID)] == oid and st.orders[_row(s, O_SYM)] == sym:
                return s
        i = (i + 1) & mask


@njit_inline
def _hash_peek(h, tag):
    """Slot of the first entry with ``tag`` (unverified: for prefetching only), or -1."""
    mask = h.shape[0] - 1
    key = tag << 32
    i = tag & mask
    while True:
        e = h[_u(i)]
        if e == 0:
            return -1
        if (e ^ key) >> 32 == 0:
            return (e & _LOW) - 1
        i = (i + 1) & mask


@njit_inline
def _hash_insert(h, tag, slot):
    mask = h.shape[0] - 1
    i = tag & mask
    while h[_u(i)] != 0:
        i = (i + 1) & mask
    h[_u(i)] = (tag << 32) | (slot + 1)


@njit_inline
def _hash_delete(h, tag, slot):
    # Backward-shift deletion keeps probe chains intact without tombstones.
    mask = h.shape[0] - 1
    e = (tag << 32) | (slot + 1)
    i = tag & mask
    while h[_u(i)] != e:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        v = h[_u(j)]
        if v == 0:
            break
        k = (v >> 32) & mask
        if i <= j:
            if i < k <= j:
                continue
        elif i < k or k <= j:
            continue
        h[_u(i)] = v
        i = j
    h[_u(i)] = 0


@njit
def rebuild_hash(old, new):
    """Insert every entry of table ``old`` into the empty table ``new``."""
    for i in range(old.shape[0]):
        e = old[_u(i)]
        if e != 0:
            _hash_insert(new, (e >> 32) & _LOW, (e & _LOW) - 1)


# -- reports -----------------------------------------------------------------------


@njit_inline
def _emit(
    rep,
    n,
    seq,
    kind,
    sym,
    oid,
    acct,
    side,
    maker,
    maker_acct,
    price,
    qty,
    reason,
    leaves=0,
    maker_leaves=0,
):
    # ``rep`` is the report buffer seen as int64 words (book.py checks the
    # layout): the nine int64 fields in order, then symbol, kind, reason, side
    # and padding packed little-endian into the last word.
    rep[_u(n * REPORT_WORDS + 0)] = seq
    rep[_u(n * REPORT_WORDS + 1)] = oid
    rep[_u(n * REPORT_WORDS + 2)] = acct
    rep[_u(n * REPORT_WORDS + 3)] = maker
    rep[_u(n * REPORT_WORDS + 4)] = maker_acct
    rep[_u(n * REPORT_WORDS + 5)] = price
    rep[_u(n * REPORT_WORDS + 6)] = qty
    rep[_u(n * REPORT_WORDS + 7)] = leaves
    rep[_u(n * REPORT_WORDS + 8)] = maker_leaves
    rep[_u(n * REPORT_WORDS + 9)] = (
        (np.int64(sym) & _LOW)
        | (np.int64(kind) << 32)
        | (np.int64(reason) << 40)
        | ((np.int64(side) & 0xFF) << 48)
    )
    return n + 1


# -- levels ------------------------------------------------------------------------


@njit_inline
def _key(price, bs):
    # Sort key within a side: ascending key puts the best price last.
    return price if (bs & 1) == 0 else -price


@njit_inline
def _level_pos(st, bs, price):
    """Position of ``price`` in the side's sorted level list (lower bound)."""
    lv = st.side_lvls[_u(bs)]
    lo, hi = 0, st.books[_side(bs, B_LEVELS)]
    key = _key(price, bs)
    # The best levels are at the end, where most activity is: probe there first.
    if hi > 0 and _key(st.levels[_row(lv[_u(hi - 1)], L_PRICE)], bs) < key:
        return hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if _key(st.levels[_row(lv[_u(mid)], L_PRICE)], bs) < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit_inline
def _find_level(st, bs, price):
    """Level id of ``price`` on side ``bs``, or -1."""
    d = price - st.books[_side(bs, B_BASE)]
    if 0 <= d < LADDER_WIDTH:
        return st.ladder[_u(bs * LADDER_WIDTH + d)] - 1  # the ladder is exact inside its window
    pos = _level_pos(st, bs, price)
    if pos < st.books[_side(bs, B_LEVELS)]:
        level = st.side_lvls[_u(bs), _u(pos)]
        if st.levels[_row(level, L_PRICE)] == price:
            return level
    return -1


@njit_inline
def _ladder_set(st, bs, price, value):
    d = price - st.books[_side(bs, B_BASE)]
    if 0 <= d < LADDER_WIDTH:
        st.ladder[_u(bs * LADDER_WIDTH + d)] = value


@njit
def _recentre(st, bs, centre):
    """Move side ``bs``'s ladder window to be centred on ``centre`` (a rare path)."""
    for d in range(LADDER_WIDTH):
        st.ladder[_u(bs * LADDER_WIDTH + d)] = 0
    st.books[_side(bs, B_BASE)] = centre - (LADDER_WIDTH >> 1)
    for k in range(st.books[_side(bs, B_LEVELS)]):
        level = st.side_lvls[_u(bs), _u(k)]
        _ladder_set(st, bs, st.levels[_row(level, L_PRICE)], level + 1)


@njit_inline
def _new_level(st, bs, price):
    """Create the (absent) level ``price`` on side ``bs``; returns its id."""
    n = st.books[_side(bs, B_LEVELS)]
    lv = st.side_lvls[_u(bs)]
    d = price - st.books[_side(bs, B_BASE)]
    if not (0 <= d < LADDER_WIDTH):
        # Outside the window: re-centre it on the side's best price when that
        # brings ``price`` in (prices drift), else leave ``price`` to the
        # sorted list alone (far outliers).
        best = price if n == 0 else st.levels[_row(st.books[_side(bs, B_BEST)], L_PRICE)]
        if abs(price - best) < (LADDER_WIDTH >> 1):
            if n == 0:
                st.books[_side(bs, B_BASE)] = best - (LADDER_WIDTH >> 1)  # the window is empty
            else:
                _recentre(st, bs, best)
    level = st.counters[C_LEVEL_FREE]
    if level != -1:
        st.counters[C_LEVEL_FREE] = st.levels[_row(level, L_HEAD)]
    else:
        level = st.counters[C_LEVEL_HW]
        st.counters[C_LEVEL_HW] = level + 1
    st.levels[_row(level, L_PRICE)] = price
    st.levels[_row(level, L_HEAD)] = -1
    st.levels[_row(level, L_TAIL)] = -1
    st.levels[_row(level, L_QTY)] = 0
    st.levels[_row(level, L_BOOK)] = bs
    pos = _level_pos(st, bs, price)
    for k in range(n, pos, -1):
        lv[_u(k)] = lv[_u(k - 1)]
    lv[_u(pos)] = level
    if pos == n:
        st.books[_side(bs, B_BEST)] = level
    st.books[_side(bs, B_LEVELS)] = n + 1
    if n + 1 > st.counters[C_SIDE_MAX]:
        st.counters[C_SIDE_MAX] = n + 1
    st.counters[C_LEVELS] += 1
    _ladder_set(st, bs, price, level + 1)
    return level


@njit_inline
def _remove_level(st, bs, level):
    n = st.books[_side(bs, B_LEVELS)]
    lv = st.side_lvls[_u(bs)]
    price = st.levels[_row(level, L_PRICE)]
    if lv[_u(n - 1)] != level:
        for k in range(_level_pos(st, bs, price), n - 1):
            lv[_u(k)] = lv[_u(k + 1)]
    else:
        st.books[_side(bs, B_BEST)] = lv[_u(n - 2)] if n > 1 else -1
    st.books[_side(bs, B_LEVELS)] = n - 1
    _ladder_set(st, bs, price, 0)
    st.levels[_row(level, L_HEAD)] = st.counters[C_LEVEL_FREE]
    st.counters[C_LEVEL_FREE] = level
    st.counters[C_LEVELS] -= 1


# -- orders ------------------------------------------------------------------------


@njit_inline
def _free_order(st, o, sym, bs):
    """Forget order row ``o`` (already out of its level): id table, pool, counts."""
    _hash_delete(st.h_table, _tag(sym, st.orders[_row(o, O_ID)]), o)
    st.orders[_row(o, O_NEXT)] = st.counters[C_ORDER_FREE]
    st.counters[C_ORDER_FREE] = o
    st.books[_side(bs, B_ORDERS)] -= 1
    st.counters[C_RESTING] -= 1


@njit_inline
def _detach(st, o, level, bs):
    """Take order ``o`` out of its level's FIFO; drop the level if it empties."""
    # Only the head's PREV may be stale (matching does not reset it), so the
    # head is recognised by the level, not by PREV == -1.
    q = st.orders[_row(o, O_NEXT)]
    if st.levels[_row(level, L_HEAD)] == o:
        st.levels[_row(level, L_HEAD)] = q
        if q == -1:
            st.levels[_row(level, L_TAIL)] = -1
    else:
        p = st.orders[_row(o, O_PREV)]
        st.orders[_row(p, O_NEXT)] = q
        if q == -1:
            st.levels[_row(level, L_TAIL)] = p
        else:
            st.orders[_row(q, O_PREV)] = p
    st.levels[_row(level, L_QTY)] -= st.orders[_row(o, O_QTY)]
    if st.levels[_row(level, L_HEAD)] == -1:
        _remove_level(st, bs, level)


@njit_inline
def _append(st, o, bs, price, qty):
    """Put order row ``o`` at the back of its price level (creating the level)."""
    level = _find_level(st, bs, price)
    if level == -1:
        level = _new_level(st, bs, price)
    st.orders[_row(o, O_PRICE)] = price
    st.orders[_row(o, O_QTY)] = qty
    st.orders[_row(o, O_LEVEL)] = level
    st.orders[_row(o, O_NEXT)] = -1
    tail = st.levels[_row(level, L_TAIL)]
    st.orders[_row(o, O_PREV)] = tail
    if tail == -1:
        st.levels[_row(level, L_HEAD)] = o
    else:
        st.orders[_row(tail, O_NEXT)] = o
    st.levels[_row(level, L_TAIL)] = o
    st.levels[_row(level, L_QTY)] += qty


@njit_inline
def _rest(st, sym, side, oid, tag, acct, price, qty):
    """Add a new resting order at the back of its price level."""
    bs = sym * 2 + side - 1
    o = st.counters[C_ORDER_FREE]
    if o != -1:
        st.counters[C_ORDER_FREE] = st.orders[_row(o, O_NEXT)]
    else:
        o = st.counters[C_ORDER_HW]
        st.counters[C_ORDER_HW] = o + 1
    st.orders[_row(o, O_ID)] = oid
    st.orders[_row(o, O_ACCOUNT)] = acct
    st.orders[_row(o, O_SYM)] = sym
    _append(st, o, bs, price, qty)
    st.books[_side(bs, B_ORDERS)] += 1
    st.counters[C_RESTING] += 1
    _hash_insert(st.h_table, tag, o)


# -- matching ----------------------------------------------------------------------


@njit_inline
def _acceptable(level_price, side, limit, is_market):
    # Without branches: the side is a coin flip for the branch predictor.
    buy = side == BUY
    return is_market | (buy & (level_price <= limit)) | ((not buy) & (level_price >= limit))


@njit_inline
def _fok_reachable(st, opp, side, limit, acct, qty, stp):
    """Whether ``qty`` can trade at once (before any self-trade stop)."""
    lv = st.side_lvls[_u(opp)]
    avail = 0
    for k in range(st.books[_side(opp, B_LEVELS)] - 1, -1, -1):
        level = lv[_u(k)]
        if not _acceptable(st.levels[_row(level, L_PRICE)], side, limit, False):
            return False
        if not stp:
            avail += st.levels[_row(level, L_QTY)]
        else:
            o = st.levels[_row(level, L_HEAD)]
            while o != -1:
                if st.orders[_row(o, O_ACCOUNT)] == acct:
                    return False
                avail += st.orders[_row(o, O_QTY)]
                if avail >= qty:
                    return True
                o = st.orders[_row(o, O_NEXT)]
        if avail >= qty:
            return True
    return False


@njit_inline
def _match(st, rep, n, seq, sym, side, oid, acct, limit, is_market, qty, stp):
    """Trade an incoming order against the opposite side.

    Returns (reports written, remaining qty, stopped by self-trade prevention).
    """
    opp = sym * 2 + (1 if side == BUY else 0)
    stopped = False
    while qty > 0:
        level = st.books[_side(opp, B_BEST)]
        if level < 0:
            break
        price = st.levels[_row(level, L_PRICE)]
        if not _acceptable(price, side, limit, is_market):
            break
        o = st.levels[_row(level, L_HEAD)]
        traded = 0
        while o != -1 and qty > 0:
            if stp and st.orders[_row(o, O_ACCOUNT)] == acct:
                stopped = True
                break
            resting = st.orders[_row(o, O_QTY)]
            f = min(qty, resting)
            qty -= f
            traded += f
            n = _emit(
                rep,
                n,
                seq,
                FILL,
                sym,
                oid,
                acct,
                side,
                st.orders[_row(o, O_ID)],
                st.orders[_row(o, O_ACCOUNT)],
                price,
                f,
                R_NONE,
                qty,
                resting - f,
            )
            if resting == f:
                nxt = st.orders[_row(o, O_NEXT)]
                _free_order(st, o, sym, opp)
                o = nxt
            else:
                st.orders[_row(o, O_QTY)] = resting - f
        # The new head's PREV is left stale: see _detach.
        st.levels[_row(level, L_HEAD)] = o
        st.levels[_row(level, L_QTY)] -= traded
        if o == -1:
            _remove_level(st, opp, level)
        if stopped:
            break
    return n, qty, stopped


@njit_inline
def _enter(st, rep, n, seq, sym, side, typ, oid, acct, price, qty, stp):
    """Match an accepted order; returns (reports written, qty left to rest).

    What remains is expired or cancelled here (and 0 returned) unless the
    order is a LIMIT free to rest.
    """
    is_market = typ == MARKET
    report_price = NO_PRICE if is_market else price
    if typ == FOK:
        opp = sym * 2 + (1 if side == BUY else 0)
        if not _fok_reachable(st, opp, side, price, acct, qty, stp):
            n = _emit(rep, n, seq, EXPIRED, sym, oid, acct, side, 0, 0, report_price, qty, R_NONE)
            return n, 0
    # Most orders do not cross: settle that before setting up the matching loop.
    best = st.books[_side(sym * 2 + (1 if side == BUY else 0), B_BEST)]
    if best < 0 or not _acceptable(st.levels[_row(best, L_PRICE)], side, price, is_market):
        if typ == LIMIT:
            return n, qty
        n = _emit(rep, n, seq, EXPIRED, sym, oid, acct, side, 0, 0, report_price, qty, R_NONE)
        return n, 0
    n, rem, stopped = _match(st, rep, n, seq, sym, side, oid, acct, price, is_market, qty, stp)
    if rem > 0:
        if stopped:
            n = _emit(rep, n, seq, CANCELED, sym, oid, acct, side, 0, 0, report_price, rem, R_STP)
            return n, 0
        if typ != LIMIT:
            n = _emit(rep, n, seq, EXPIRED, sym, oid, acct, side, 0, 0, report_price, rem, R_NONE)
            return n, 0
    return n, rem


@njit_inline
def _amend(st, rep, n, seq, sym, oid, tag, o, action, price, qty, stp):
    """CANCEL or MODIFY resting order ``o``; returns (reports written, reject reason)."""
    level = st.orders[_row(o, O_LEVEL)]
    bs = st.levels[_row(level, L_BOOK)]
    side = (bs & 1) + 1
    acct = st.orders[_row(o, O_ACCOUNT)]
    old_price = st.orders[_row(o, O_PRICE)]
    old_qty = st.orders[_row(o, O_QTY)]
    if action == CANCEL or qty == 0:
        _detach(st, o, level, bs)
        _free_order(st, o, sym, bs)
        n = _emit(rep, n, seq, CANCELED, sym, oid, acct, side, 0, 0, old_price, old_qty, R_NONE)
        return n, R_NONE
    if price != NO_PRICE and price <= 0:
        return n, R_PRICE
    new_price = old_price if price == NO_PRICE else price
    # ``maker_leaves`` of a MODIFIED carries what was open before it, for the risk books.
    n = _emit(
        rep, n, seq, MODIFIED, sym, oid, acct, side, 0, 0, new_price, qty, R_NONE, qty, old_qty
    )
    if new_price == old_price and qty <= old_qty:
        st.orders[_row(o, O_QTY)] = qty
        st.levels[_row(level, L_QTY)] -= old_qty - qty
        return n, R_NONE
    # Re-entry: the order keeps its row and id-table entry while it trades as
    # the taker (nothing looks its id up meanwhile), and rests on in the same row.
    _detach(st, o, level, bs)
    n, rem = _enter(st, rep, n, seq, sym, side, LIMIT, oid, acct, new_price, qty, stp)
    if rem > 0:
        _append(st, o, bs, new_price, rem)
    else:
        _free_order(st, o, sym, bs)
    return n, R_NONE


# -- the batch loop ----------------------------------------------------------------


@njit_inline
def _capacity_shortfall(st, capacity, n, sym, qty, n_symbols):
    """NEED_* bits for pools too small to take one more message in the worst case."""
    need = 0
    if st.counters[C_RESTING] >= st.orders.shape[0] // ROW_WIDTH:
        need |= NEED_ORDERS
    if st.counters[C_LEVELS] >= st.levels.shape[0] // ROW_WIDTH:
        need |= NEED_LEVELS
    if 2 * (st.counters[C_RESTING] + 1) > st.h_table.shape[0]:
        need |= NEED_HASH
    fills = 0
    if 0 <= sym < n_symbols:
        if st.books[_side(2 * sym, B_LEVELS)] >= st.side_lvls.shape[1] - 1:
            need |= NEED_SIDE
        if st.books[_side(2 * sym + 1, B_LEVELS)] >= st.side_lvls.shape[1] - 1:
            need |= NEED_SIDE
        both = st.books[_side(2 * sym, B_ORDERS)] + st.books[_side(2 * sym + 1, B_ORDERS)]
        fills = min(max(qty, 0), both)
    if n + fills + 3 > capacity:
        need |= NEED_REPORTS
    return need


@njit_inline
def _chunk_shortfall(st, k):
    """NEED_* bits for pools that might not take ``k`` more messages."""
    need = 0
    resting = st.counters[C_RESTING]
    # A message adds at most one order row, one level and one id.
    if resting + k > st.orders.shape[0] // ROW_WIDTH:
        need |= NEED_ORDERS
    if st.counters[C_LEVELS] + k > st.levels.shape[0] // ROW_WIDTH:
        need |= NEED_LEVELS
    if 2 * (resting + k) > st.h_table.shape[0]:
        need |= NEED_HASH
    if st.counters[C_SIDE_MAX] + k >= st.side_lvls.shape[1]:
        # The bound only grows between checks: tighten it before asking for more.
        top = 0
        for bs in range(st.side_lvls.shape[0]):
            top = max(top, st.books[_side(bs, B_LEVELS)])
        st.counters[C_SIDE_MAX] = top
        if st.counters[C_SIDE_MAX] + k >= st.side_lvls.shape[1]:
            need |= NEED_SIDE
    return need


@njit_inline
def _word(msgs, j):
    """The last word of message ``j``: symbol, action, side and type, packed."""
    return msgs[_u(j * MESSAGE_WORDS + 5)]


@njit_inline
def _unpack(w):
    """(symbol, action, side, type), sign-extended, from a message's last word."""
    return (w << 32) >> 32, (w << 24) >> 56, (w << 16) >> 56, (w << 8) >> 56


# -- prefetching -------------------------------------------------------------------
#
# A CANCEL or MODIFY walks a chain of three cache misses (hash bucket, order
# row, its FIFO neighbours), and a NEW that trades two (the head order of the
# level it trades with, then that order's bucket and successor when it
# fills). Done one message at a time that latency is paid in full, so the
# batch loop walks the chains of later messages ahead of time, one link per
# pass, each pass finding its addresses through lines the pass before
# fetched: buckets 3 chunks ahead, order rows 2 ahead, neighbours and trade
# heads 1 ahead, the heads' buckets and successors for the chunk about to
# run. Prefetching never changes the state, and a stale note (the book moves
# on meanwhile) only costs bandwidth. The messages themselves stream in from
# memory, and the hardware prefetcher does not keep ahead of them: the first
# pass fetches them 4 chunks before it reads them.
#
# Whether a message is a NEW, and whether a NEW crosses, are coin flips that
# a branch predictor misses a third of the time, so the passes do not test
# them: the first pass lists the other messages ("amends": CANCEL, MODIFY)
# and the NEWs apart, without branching, the NEW pass lists the crossing
# ones the same way, and each later pass walks only its list.
# ``pipe`` holds, per message ``j``, its tag and amended row (``_note``), and
# the lists as rings of ``PIPE`` entries (``_ring``), counted from 0 on each
# call of ``process_batch``; no list has over 4 chunks unread, so none overruns.

P_TAG, P_ROW = 0, 1
# The rings, as blocks of ``pipe`` after the notes' two: message indices, and
# the head row each crossing NEW trades with.
RING_AMENDS, RING_NEWS, RING_CROSSING, RING_HEADS = 2, 3, 4, 5


@njit_inline
def _note(j, k):
    return _u((j & PIPE_MASK) * 2 + k)


@njit_inline
def _ring(r, k):
    return _u(r * PIPE + (k & PIPE_MASK))


@njit_inline
def _pass_buckets(st, msgs, pipe, lo, hi, n_amends, n_news):
    """Tags of messages [lo, hi), noted, their hash buckets fetched, and each listed.

    Returns the lists' new lengths.
    """
    h = st.h_table
    hmask = h.shape[0] - 1
    for j in range(lo, hi):
        w = _word(msgs, j)
        tag = _tag((w << 32) >> 32, msgs[_u(j * MESSAGE_WORDS + 1)])
        pipe[_note(j, P_TAG)] = tag
        prefetch(h, tag & hmask)
        prefetch(msgs, _u((j + 4 * CHUNK) * MESSAGE_WORDS))  # harmless past the end
        is_new = np.int64((w << 24) >> 56 == NEW)
        pipe[_ring(RING_AMENDS, n_amends)] = j
        pipe[_ring(RING_NEWS, n_news)] = j
        n_amends += 1 - is_new
        n_news += is_new
    return n_amends, n_news


@njit_inline
def _pass_rows(st, pipe, hi, k, n_amends):
    """Rows of the orders that the listed amends before message ``hi`` amend, from entry ``k``."""
    h = st.h_table
    while k < n_amends:
        j = pipe[_ring(RING_AMENDS, k)]
        if j >= hi:
            break
        s = _hash_peek(h, pipe[_note(j, P_TAG)])
        prefetch(st.orders, _row(max(s, 0), 0))
        pipe[_note(j, P_ROW)] = s
        k += 1
    return k


@njit_inline
def _pass_neighbours(st, pipe, hi, k, n_amends):
    """FIFO neighbours of those rows."""
    while k < n_amends:
        j = pipe[_ring(RING_AMENDS, k)]
        if j >= hi:
            break
        s = pipe[_note(j, P_ROW)]
        if s >= 0:
            q, p = st.orders[_row(s, O_NEXT)], st.orders[_row(s, O_PREV)]
            prefetch(st.orders, _row(max(q, 0), 0))
            prefetch(st.orders, _row(max(p, 0), 0))
        k += 1
    return k


@njit_inline
def _pass_heads(st, msgs, pipe, hi, k, n_news, n_cross, n_symbols):
    """Heads that the listed NEWs before message ``hi`` trade with; lists the crossing NEWs."""
    while k < n_news:
        j = pipe[_ring(RING_NEWS, k)]
        if j >= hi:
            break
        sym, _, side, typ = _unpack(_word(msgs, j))
        if _u(sym) < _u(n_symbols):
            level = st.books[_side(sym * 2 + (1 if side == BUY else 0), B_BEST)]
            if level >= 0:
                limit = msgs[_u(j * MESSAGE_WORDS + 3)]
                crosses = np.int64(
                    _acceptable(st.levels[_row(level, L_PRICE)], side, limit, typ == MARKET)
                )
                head = st.levels[_row(level, L_HEAD)]
                prefetch(st.orders, _row(head * crosses, 0))  # row 0, cached, if not
                pipe[_ring(RING_CROSSING, n_cross)] = j
                pipe[_ring(RING_HEADS, n_cross)] = head
                n_cross += crosses
        k += 1
    return k, n_cross


@njit_inline
def _pass_trades(st, pipe, hi, k, n_cross):
    """Bucket and successor of the heads that the listed crossings before ``hi`` trade with."""
    h = st.h_table
    hmask = h.shape[0] - 1
    while k < n_cross:
        if pipe[_ring(RING_CROSSING, k)] >= hi:
            break
        o = pipe[_ring(RING_HEADS, k)]
        prefetch(h, _tag(st.orders[_row(o, O_SYM)], st.orders[_row(o, O_ID)]) & hmask)
        prefetch(st.orders, _row(max(st.orders[_row(o, O_NEXT)], 0), 0))
        k += 1
    return k


@njit_inline
def _process_one(st, rep, n, seq, sym, oid, tag, acct, price, qty, action, side, typ, n_sym, stp):
    """Apply one message (``tag``: its id's hash tag); returns the reports written so far."""
    reason = R_NONE
    if action != NEW and action != CANCEL and action != MODIFY:
        reason = R_ACTION
    elif sym < 0 or sym >= n_sym:
        reason = R_SYMBOL
    elif action == NEW:
        if side != BUY and side != SELL:
            reason = R_SIDE
        elif typ < LIMIT or typ > FOK:
            reason = R_TYPE
        elif qty <= 0:
            reason = R_QTY
        elif typ != MARKET and price <= 0:  # NO_PRICE is negative too
            reason = R_PRICE
        elif _hash_find(st, sym, oid, tag) != -1:
            reason = R_DUP
        else:
            report_price = NO_PRICE if typ == MARKET else price
            n = _emit(rep, n, seq, ACK, sym, oid, acct, side, 0, 0, report_price, qty, R_NONE, qty)
            n, rem = _enter(st, rep, n, seq, sym, side, typ, oid, acct, price, qty, stp)
            if rem > 0:
                _rest(st, sym, side, oid, tag, acct, price, rem)
            return n
    elif action == MODIFY and qty < 0:
        reason = R_QTY
    else:
        o = _hash_find(st, sym, oid, tag)
        if o == -1:
            reason = R_UNKNOWN
        elif st.orders[_row(o, O_ACCOUNT)] != acct:
            reason = R_NOT_OWNER  # only the order's own account may cancel or modify it
        else:
            n, reason = _amend(st, rep, n, seq, sym, oid, tag, o, action, price, qty, stp)
    if reason != R_NONE:
        n = _emit(rep, n, seq, REJECT, sym, oid, acct, side, 0, 0, price, qty, reason)
    return n


@njit
def process_batch(st, msgs, start, rep, n, n_symbols, stp, pipe):
    """Process messages ``start:`` writing reports from ``rep[n]`` on.

    ``msgs`` and ``rep`` are the message batch and the report buffer seen as
    flat int64 words, ``MESSAGE_WORDS`` and ``REPORT_WORDS`` a row; ``pipe`` is
    prefetch scratch, int64 ``[PIPE_WORDS]``. Returns (next message index,
    reports written, NEED_* bits). The index is the batch length when the
    batch is done; otherwise a pool needs to grow first.
    """
    capacity = rep.shape[0] // REPORT_WORDS
    n_msgs = msgs.shape[0] // MESSAGE_WORDS
    i = start
    # How far the prefetch passes have got (see "prefetching"): the first pass
    # by message, the others by entry in their list.
    ahead = start
    n_amends = n_news = n_cross = 0
    at_rows = at_neighbours = at_heads = at_trades = 0
    while i < n_msgs:
        end = min(i + CHUNK, n_msgs)
        need = _chunk_shortfall(st, end - i)
        if need:
            return i, n, need
        # Reports: at most 3 per message plus one per fill, and a message
        # cannot fill more than its qty or the orders resting.
        bound = st.counters[C_RESTING] + (end - i)
        worst = n
        for j in range(i, end):
            worst += 3 + min(max(msgs[_u(j * MESSAGE_WORDS + 4)], 0), bound)
        if worst > capacity:
            # Near the end of the buffer: check message by message.
            sym = (_word(msgs, i) << 32) >> 32
            qty = msgs[_u(i * MESSAGE_WORDS + 4)]
            need = _capacity_shortfall(st, capacity, n, sym, qty, n_symbols)
            if need:
                return i, n, need
            end = i + 1
        to = min(end + 3 * CHUNK, n_msgs)
        n_amends, n_news = _pass_buckets(st, msgs, pipe, ahead, to, n_amends, n_news)
        ahead = to
        at_rows = _pass_rows(st, pipe, min(end + 2 * CHUNK, n_msgs), at_rows, n_amends)
        to = min(end + CHUNK, n_msgs)
        at_neighbours = _pass_neighbours(st, pipe, to, at_neighbours, n_amends)
        at_heads, n_cross = _pass_heads(st, msgs, pipe, to, at_heads, n_news, n_cross, n_symbols)
        at_trades = _pass_trades(st, pipe, end, at_trades, n_cross)
        for j in range(i, end):
            sym, action, side, typ = _unpack(_word(msgs, j))
            m = j * MESSAGE_WORDS
            n = _process_one(
                st,
                rep,
                n,
                msgs[_u(m)],
                sym,
                msgs[_u(m + 1)],
                pipe[_note(j, P_TAG)],
                msgs[_u(m + 2)],
                msgs[_u(m + 3)],
                msgs[_u(m + 4)],
                action,
                side,
                typ,
                n_symbols,
                stp,
            )
        i = end
    return n_msgs, n, 0


# -- reading the book --------------------------------------------------------------


@njit
def dump_resting(st, n_symbols, sym_out, side_out, id_out, acct_out, price_out, qty_out):
    """Write every resting order in book order; returns how many."""
    k = 0
    for sym in range(n_symbols):
        for side in (BUY, SELL):
            bs = sym * 2 + side - 1
            lv = st.side_lvls[_u(bs)]
            for j in range(st.books[_side(bs, B_LEVELS)] - 1, -1, -1):
                o = st.levels[_row(lv[_u(j)], L_HEAD)]
                while o != -1:
                    sym_out[k] = sym
                    side_out[k] = side
                    id_out[k] = st.orders[_row(o, O_ID)]
                    acct_out[k] = st.orders[_row(o, O_ACCOUNT)]
                    price_out[k] = st.orders[_row(o, O_PRICE)]
                    qty_out[k] = st.orders[_row(o, O_QTY)]
                    k += 1
                    o = st.orders[_row(o, O_NEXT)]
    return k


@njit
def resting_mask(st, syms, ids, out):
    """``out[i]`` = whether order ``ids[i]`` of symbol ``syms[i]`` is resting."""
    for i in range(ids.shape[0]):
        out[i] = _hash_find(st, syms[i], ids[i], _tag(syms[i], ids[i])) != -1
