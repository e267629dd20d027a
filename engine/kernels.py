"""Jitted matching kernels over flat arrays.

State lives in a ``BookState`` named tuple of NumPy arrays (see
:mod:`engine.state`). Orders sit in a pool of parallel arrays linked into
per-level FIFO lists; levels sit in a pool too, and each book side keeps the
ids of its levels sorted so that its best level is the *last* entry (the
common case, trading at the best price, pops from the end in O(1)). Order ids
are found through an open-addressing hash table keyed by (symbol, order id).

The kernels never allocate: before each message ``_process`` checks that the
pools can hold the worst case and, if not, stops and tells the caller which
pool to grow (``NEED_*`` bits); the caller grows it and calls again.
"""

import numpy as np

from engine.jit import njit, njit_inline

# Codes are repeated here as plain ints so Numba treats them as constants.
NEW, CANCEL, MODIFY = 1, 2, 3
BUY, SELL = 1, 2
LIMIT, MARKET, IOC, FOK = 1, 2, 3, 4
ACK, REJECT, FILL, CANCELED, EXPIRED, MODIFIED = 1, 2, 3, 4, 5, 6
R_NONE, R_DUP, R_QTY, R_PRICE, R_SIDE, R_TYPE, R_UNKNOWN, R_ACTION, R_SYMBOL, R_STP = range(10)
NO_PRICE = np.iinfo(np.int64).min

NEED_ORDERS, NEED_LEVELS, NEED_SIDE, NEED_HASH, NEED_REPORTS = 1, 2, 4, 8, 16

# Columns of ``st.orders`` (one 64-byte row per order: one cache line) and ``st.levels``.
O_ID, O_ACCOUNT, O_PRICE, O_QTY, O_NEXT, O_PREV, O_LEVEL, O_SYM = range(8)
L_PRICE, L_QTY, L_HEAD, L_TAIL, L_BOOK = range(5)

# Indices into ``st.counters``.
C_ORDER_FREE, C_ORDER_HW, C_LEVEL_FREE, C_LEVEL_HW, C_RESTING = 0, 1, 2, 3, 4

_H1 = np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15


@njit_inline
def _home(sym, oid, mask):
    # Keeps nearby ids in nearby slots (ids are usually handed out in sequence,
    # and recent orders are the ones cancelled and modified, so this stays in
    # cache), while the folded high bits spread strided id schemes.
    x = oid + sym * _H1
    x ^= (x >> 16) ^ (x >> 32)
    return x & mask


# The table is int64 [capacity, 2]: (order id, symbol << 32 | slot), with
# slot part -1 when empty. Keys live in the table so a probe touches one
# cache line, not the order pool.
_EMPTY = -1
_SLOT_MASK = 0xFFFFFFFF


@njit_inline
def _hash_find(st, sym, oid):
    """Slot in the order pool of resting (sym, oid), or -1."""
    h = st.h_table
    mask = h.shape[0] - 1
    i = _home(sym, oid, mask)
    while True:
        v = h[i, 1]
        if v == _EMPTY:
            return -1
        if h[i, 0] == oid and (v >> 32) == sym:
            return v & _SLOT_MASK
        i = (i + 1) & mask


@njit_inline
def _hash_insert(h, sym, oid, slot):
    mask = h.shape[0] - 1
    i = _home(sym, oid, mask)
    while h[i, 1] != _EMPTY:
        i = (i + 1) & mask
    h[i, 0] = oid
    h[i, 1] = (np.int64(sym) << 32) | slot


@njit_inline
def _hash_delete(st, sym, oid):
    # Backward-shift deletion keeps probe chains intact without tombstones.
    h = st.h_table
    mask = h.shape[0] - 1
    i = _home(sym, oid, mask)
    while not (h[i, 0] == oid and (h[i, 1] >> 32) == sym):
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        v = h[j, 1]
        if v == _EMPTY:
            break
        k = _home(v >> 32, h[j, 0], mask)
        if i <= j:
            if i < k <= j:
                continue
        elif i < k or k <= j:
            continue
        h[i, 0] = h[j, 0]
        h[i, 1] = v
        i = j
    h[i, 1] = _EMPTY


@njit
def rebuild_hash(st, h):
    """Insert every resting order of ``st`` into the empty table ``h``."""
    for s in range(st.counters[C_ORDER_HW]):
        if st.orders[s, O_LEVEL] >= 0:
            _hash_insert(h, st.orders[s, O_SYM], st.orders[s, O_ID], s)


@njit_inline
def _report_columns(out):
    # Field views: Numba writes to these far faster than through records.
    return (
        out["seq"],
        out["order_id"],
        out["account"],
        out["maker_id"],
        out["maker_account"],
        out["price"],
        out["qty"],
        out["symbol"],
        out["kind"],
        out["reason"],
        out["side"],
        out["leaves"],
        out["maker_leaves"],
        out["_pad"],
    )


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
    rep[0][n] = seq
    rep[1][n] = oid
    rep[2][n] = acct
    rep[3][n] = maker
    rep[4][n] = maker_acct
    rep[5][n] = price
    rep[6][n] = qty
    rep[7][n] = sym
    rep[8][n] = kind
    rep[9][n] = reason
    rep[10][n] = side
    rep[11][n] = leaves
    rep[12][n] = maker_leaves
    rep[13][n] = 0
    return n + 1


@njit_inline
def _key(price, bs):
    # Sort key within a side: ascending key puts the best price last.
    return price if (bs & 1) == 0 else -price


@njit_inline
def _level_pos(st, bs, price):
    """Position of ``price`` in the side's sorted level list (lower bound)."""
    lv = st.side_lvls[bs]
    lo, hi = 0, st.side_n[bs]
    key = _key(price, bs)
    # The best levels are at the end, where most activity is: probe there first.
    if hi > 0 and _key(st.levels[lv[hi - 1], L_PRICE], bs) < key:
        return hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if _key(st.levels[lv[mid], L_PRICE], bs) < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit_inline
def _remove_level(st, bs, level):
    n = st.side_n[bs]
    lv = st.side_lvls[bs]
    if lv[n - 1] == level:
        pos = n - 1
    else:
        pos = _level_pos(st, bs, st.levels[level, L_PRICE])
        for k in range(pos, n - 1):
            lv[k] = lv[k + 1]
    st.side_n[bs] = n - 1
    st.levels[level, L_HEAD] = st.counters[C_LEVEL_FREE]
    st.levels[level, L_TAIL] = -1
    st.counters[C_LEVEL_FREE] = level


@njit_inline
def _free_order(st, o, bs):
    _hash_delete(st, st.orders[o, O_SYM], st.orders[o, O_ID])
    st.orders[o, O_LEVEL] = -1
    st.orders[o, O_NEXT] = st.counters[C_ORDER_FREE]
    st.counters[C_ORDER_FREE] = o
    st.side_cnt[bs] -= 1
    st.counters[C_RESTING] -= 1


@njit_inline
def _unlink(st, o):
    """Take resting order ``o`` out of its level and the book (no report)."""
    level = st.orders[o, O_LEVEL]
    bs = st.levels[level, L_BOOK]
    p, q = st.orders[o, O_PREV], st.orders[o, O_NEXT]
    if p == -1:
        st.levels[level, L_HEAD] = q
    else:
        st.orders[p, O_NEXT] = q
    if q == -1:
        st.levels[level, L_TAIL] = p
    else:
        st.orders[q, O_PREV] = p
    st.levels[level, L_QTY] -= st.orders[o, O_QTY]
    _free_order(st, o, bs)
    if st.levels[level, L_HEAD] == -1:
        _remove_level(st, bs, level)


@njit_inline
def _rest(st, sym, side, oid, acct, price, qty):
    """Append a new resting order at the back of its price level."""
    bs = sym * 2 + side - 1
    pos = _level_pos(st, bs, price)
    lv = st.side_lvls[bs]
    n = st.side_n[bs]
    if pos < n and st.levels[lv[pos], L_PRICE] == price:
        level = lv[pos]
    else:
        level = st.counters[C_LEVEL_FREE]
        if level != -1:
            st.counters[C_LEVEL_FREE] = st.levels[level, L_HEAD]
        else:
            level = st.counters[C_LEVEL_HW]
            st.counters[C_LEVEL_HW] = level + 1
        st.levels[level, L_PRICE] = price
        st.levels[level, L_HEAD] = -1
        st.levels[level, L_TAIL] = -1
        st.levels[level, L_QTY] = 0
        st.levels[level, L_BOOK] = bs
        for k in range(n, pos, -1):
            lv[k] = lv[k - 1]
        lv[pos] = level
        st.side_n[bs] = n + 1
    o = st.counters[C_ORDER_FREE]
    if o != -1:
        st.counters[C_ORDER_FREE] = st.orders[o, O_NEXT]
    else:
        o = st.counters[C_ORDER_HW]
        st.counters[C_ORDER_HW] = o + 1
    st.orders[o, O_ID] = oid
    st.orders[o, O_ACCOUNT] = acct
    st.orders[o, O_PRICE] = price
    st.orders[o, O_QTY] = qty
    st.orders[o, O_SYM] = sym
    st.orders[o, O_LEVEL] = level
    st.orders[o, O_NEXT] = -1
    tail = st.levels[level, L_TAIL]
    st.orders[o, O_PREV] = tail
    if tail == -1:
        st.levels[level, L_HEAD] = o
    else:
        st.orders[tail, O_NEXT] = o
    st.levels[level, L_TAIL] = o
    st.levels[level, L_QTY] += qty
    st.side_cnt[bs] += 1
    st.counters[C_RESTING] += 1
    _hash_insert(st.h_table, sym, oid, o)


@njit_inline
def _acceptable(level_price, side, limit, is_market):
    if is_market:
        return True
    if side == BUY:
        return level_price <= limit
    return level_price >= limit


@njit_inline
def _fok_reachable(st, opp, side, limit, acct, qty, stp):
    """Whether ``qty`` can trade at once (before any self-trade stop)."""
    lv = st.side_lvls[opp]
    avail = 0
    for k in range(st.side_n[opp] - 1, -1, -1):
        level = lv[k]
        if not _acceptable(st.levels[level, L_PRICE], side, limit, False):
            return False
        if not stp:
            avail += st.levels[level, L_QTY]
        else:
            o = st.levels[level, L_HEAD]
            while o != -1:
                if st.orders[o, O_ACCOUNT] == acct:
                    return False
                avail += st.orders[o, O_QTY]
                if avail >= qty:
                    return True
                o = st.orders[o, O_NEXT]
        if avail >= qty:
            return True
    return False


@njit_inline
def _match(st, rep, n, seq, sym, side, oid, acct, limit, is_market, qty, stp):
    """Trade an incoming order against the opposite side.

    Returns (reports written, remaining qty, stopped by self-trade prevention).
    """
    opp = sym * 2 + (1 if side == BUY else 0)
    lv = st.side_lvls[opp]
    stopped = False
    while qty > 0 and st.side_n[opp] > 0:
        level = lv[st.side_n[opp] - 1]
        price = st.levels[level, L_PRICE]
        if not _acceptable(price, side, limit, is_market):
            break
        o = st.levels[level, L_HEAD]
        while o != -1 and qty > 0:
            if stp and st.orders[o, O_ACCOUNT] == acct:
                stopped = True
                break
            resting = st.orders[o, O_QTY]
            f = min(qty, resting)
            qty -= f
            n = _emit(
                rep,
                n,
                seq,
                FILL,
                sym,
                oid,
                acct,
                side,
                st.orders[o, O_ID],
                st.orders[o, O_ACCOUNT],
                price,
                f,
                R_NONE,
                qty,
                resting - f,
            )
            st.levels[level, L_QTY] -= f
            st.orders[o, O_QTY] = resting - f
            if resting == f:
                nxt = st.orders[o, O_NEXT]
                _free_order(st, o, opp)
                o = nxt
                if o != -1:
                    st.orders[o, O_PREV] = -1
        st.levels[level, L_HEAD] = o
        if o == -1:
            st.levels[level, L_TAIL] = -1
            _remove_level(st, opp, level)
        if stopped:
            break
    return n, qty, stopped


@njit_inline
def _enter(st, rep, n, seq, sym, side, typ, oid, acct, price, qty, stp):
    """Match an accepted order and rest, expire or cancel what remains."""
    is_market = typ == MARKET
    report_price = NO_PRICE if is_market else price
    if typ == FOK:
        opp = sym * 2 + (1 if side == BUY else 0)
        if not _fok_reachable(st, opp, side, price, acct, qty, stp):
            return _emit(
                rep, n, seq, EXPIRED, sym, oid, acct, side, 0, 0, report_price, qty, R_NONE
            )
    n, rem, stopped = _match(st, rep, n, seq, sym, side, oid, acct, price, is_market, qty, stp)
    if rem > 0:
        if stopped:
            n = _emit(rep, n, seq, CANCELED, sym, oid, acct, side, 0, 0, report_price, rem, R_STP)
        elif typ == LIMIT:
            _rest(st, sym, side, oid, acct, price, rem)
        else:
            n = _emit(rep, n, seq, EXPIRED, sym, oid, acct, side, 0, 0, report_price, rem, R_NONE)
    return n


@njit_inline
def _capacity_shortfall(st, capacity, n, sym, qty, n_symbols):
    """NEED_* bits for pools too small to take one more message in the worst case."""
    need = 0
    if st.counters[C_ORDER_FREE] == -1 and st.counters[C_ORDER_HW] >= st.orders.shape[0]:
        need |= NEED_ORDERS
    if st.counters[C_LEVEL_FREE] == -1 and st.counters[C_LEVEL_HW] >= st.levels.shape[0]:
        need |= NEED_LEVELS
    if 2 * (st.counters[C_RESTING] + 1) > st.h_table.shape[0]:
        need |= NEED_HASH
    fills = 0
    if 0 <= sym < n_symbols:
        if st.side_n[2 * sym] >= st.side_lvls.shape[1] - 1:
            need |= NEED_SIDE
        if st.side_n[2 * sym + 1] >= st.side_lvls.shape[1] - 1:
            need |= NEED_SIDE
        fills = min(max(qty, 0), st.side_cnt[2 * sym] + st.side_cnt[2 * sym + 1])
    if n + fills + 3 > capacity:
        need |= NEED_REPORTS
    return need


@njit
def process_batch(st, msgs, start, out, n, n_symbols, stp):
    """Process ``msgs[start:]`` writing reports from ``out[n]`` on.

    Returns (next message index, reports written, NEED_* bits). The index is
    ``len(msgs)`` when the batch is done; otherwise a pool needs to grow first.
    """
    rep = _report_columns(out)
    m_seq, m_id, m_acct = msgs["seq"], msgs["order_id"], msgs["account"]
    m_price, m_qty, m_sym = msgs["price"], msgs["qty"], msgs["symbol"]
    m_action, m_side, m_type = msgs["action"], msgs["side"], msgs["type"]
    capacity = out.shape[0]
    for i in range(start, msgs.shape[0]):
        seq, sym, oid, qty, price = m_seq[i], m_sym[i], m_id[i], m_qty[i], m_price[i]
        action = m_action[i]
        need = _capacity_shortfall(st, capacity, n, sym, qty, n_symbols)
        if need:
            return i, n, need
        reason = R_NONE
        if action != NEW and action != CANCEL and action != MODIFY:
            reason = R_ACTION
        elif sym < 0 or sym >= n_symbols:
            reason = R_SYMBOL
        elif action == NEW:
            side, typ = m_side[i], m_type[i]
            if side != BUY and side != SELL:
                reason = R_SIDE
            elif typ < LIMIT or typ > FOK:
                reason = R_TYPE
            elif qty <= 0:
                reason = R_QTY
            elif typ != MARKET and price <= 0:  # NO_PRICE is negative too
                reason = R_PRICE
            elif _hash_find(st, sym, oid) != -1:
                reason = R_DUP
            else:
                acct = m_acct[i]
                report_price = NO_PRICE if typ == MARKET else price
                n = _emit(
                    rep, n, seq, ACK, sym, oid, acct, side, 0, 0, report_price, qty, R_NONE, qty
                )
                n = _enter(st, rep, n, seq, sym, side, typ, oid, acct, price, qty, stp)
                continue
        elif action == MODIFY and qty < 0:
            reason = R_QTY
        else:
            o = _hash_find(st, sym, oid)
            if o == -1:
                reason = R_UNKNOWN
            else:
                n, reason = _amend(st, rep, n, seq, sym, oid, o, action, price, qty, stp)
        if reason != R_NONE:
            n = _emit(rep, n, seq, REJECT, sym, oid, m_acct[i], m_side[i], 0, 0, price, qty, reason)
    return msgs.shape[0], n, 0


@njit_inline
def _amend(st, rep, n, seq, sym, oid, o, action, price, qty, stp):
    """CANCEL or MODIFY resting order ``o``; returns (reports written, reject reason)."""
    bs = st.levels[st.orders[o, O_LEVEL], L_BOOK]
    side = (bs & 1) + 1
    acct = st.orders[o, O_ACCOUNT]
    old_price = st.orders[o, O_PRICE]
    old_qty = st.orders[o, O_QTY]
    if action == CANCEL or qty == 0:
        _unlink(st, o)
        return _emit(
            rep, n, seq, CANCELED, sym, oid, acct, side, 0, 0, old_price, old_qty, R_NONE
        ), R_NONE
    if price != NO_PRICE and price <= 0:
        return n, R_PRICE
    new_price = old_price if price == NO_PRICE else price
    n = _emit(rep, n, seq, MODIFIED, sym, oid, acct, side, 0, 0, new_price, qty, R_NONE, qty)
    if new_price == old_price and qty <= old_qty:
        st.orders[o, O_QTY] = qty
        st.levels[st.orders[o, O_LEVEL], L_QTY] -= old_qty - qty
    else:
        _unlink(st, o)
        n = _enter(st, rep, n, seq, sym, side, LIMIT, oid, acct, new_price, qty, stp)
    return n, R_NONE


@njit
def dump_resting(st, n_symbols, sym_out, side_out, id_out, acct_out, price_out, qty_out):
    """Write every resting order in book order; returns how many."""
    k = 0
    for sym in range(n_symbols):
        for side in (BUY, SELL):
            bs = sym * 2 + side - 1
            lv = st.side_lvls[bs]
            for j in range(st.side_n[bs] - 1, -1, -1):
                o = st.levels[lv[j], L_HEAD]
                while o != -1:
                    sym_out[k] = sym
                    side_out[k] = side
                    id_out[k] = st.orders[o, O_ID]
                    acct_out[k] = st.orders[o, O_ACCOUNT]
                    price_out[k] = st.orders[o, O_PRICE]
                    qty_out[k] = st.orders[o, O_QTY]
                    k += 1
                    o = st.orders[o, O_NEXT]
    return k


@njit
def resting_mask(st, syms, ids, out):
    """``out[i]`` = whether order ``ids[i]`` of symbol ``syms[i]`` is resting."""
    for i in range(ids.shape[0]):
        out[i] = _hash_find(st, syms[i], ids[i]) != -1
