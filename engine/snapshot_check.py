"""Checking a snapshot's state before an engine adopts it.

A snapshot is bytes from outside the process (a file, a peer), and the
kernels trust their state completely: they run without bounds checks, so an
index out of range is a crash or silent corruption, not an error. So
:func:`check_snapshot_state` checks everything the kernels rely on, and
raises :class:`SnapshotError` naming the first thing that is wrong:

1. in Python: every array is there, with its dtype and a shape that fits the
   symbol count, and the counters lie within the pools;
2. in one jitted pass (``_walk``), which checks each index before it reads
   through it: the free lists of both pools end, without cycles, and hold
   exactly the rows not in use; every side's sorted level list holds levels of
   that side, in price order, each with a FIFO of orders of that level and
   symbol whose links, quantities and tail agree; the ladder points only at
   levels of its side at their prices; and the id table holds exactly one
   entry, under the right tag, for every resting order.
"""

import numpy as np

from engine import kernels
from engine.jit import njit

__all__ = ["SnapshotError", "check_snapshot_state"]

_W = kernels.ROW_WIDTH
_O = kernels


class SnapshotError(ValueError):
    """A snapshot that cannot be restored: truncated, of another layout, or inconsistent."""


# Where ``_walk`` found the first inconsistency.
(
    _OK,
    _FREE_ORDERS,
    _FREE_LEVELS,
    _SIDE_LEVELS,
    _LEVEL,
    _LEVEL_ORDER,
    _LEVEL_SUMS,
    _SIDE_ORDERS,
    _COUNTS,
    _LADDER,
    _HASH,
) = range(11)

_PROBLEMS = {
    _FREE_ORDERS: "the free list of order rows is broken",
    _FREE_LEVELS: "the free list of level rows is broken",
    _SIDE_LEVELS: "a book side's level list is out of range or out of price order",
    _LEVEL: "a level is in use twice, free, or on another side",
    _LEVEL_ORDER: "an order in a level's queue is out of range, free, queued twice or mislinked",
    _LEVEL_SUMS: "a level's quantity, tail or price disagrees with its orders",
    _SIDE_ORDERS: "a book side's order count disagrees with its levels",
    _COUNTS: "the resting order or level counters disagree with the books",
    _LADDER: "the price ladder points at a level that is not there",
    _HASH: "the order id table disagrees with the resting orders",
}


@njit
def _free_list(pool, head, link, high_water, marks):
    """Mark the free rows of ``pool`` from ``head`` along column ``link`` with 1.

    -2 when the list ends cleanly; else the row where it left the pool or looped.
    """
    row = head
    while row != -1:
        if row < 0 or row >= high_water or marks[row] != 0:
            return row
        marks[row] = 1
        row = pool[row * _W + link]
    return -2


@njit
def _count(marks, value):
    n = 0
    for i in range(marks.shape[0]):
        n += marks[i] == value
    return n


@njit
def _walk(
    orders, levels, side_lvls, books, h_table, ladder, counters, n_sides, order_mark, level_mark
):
    """(problem code, index): ``_OK`` when the state is whole. Marks are scratch zeros."""
    order_hw = counters[_O.C_ORDER_HW]
    level_hw = counters[_O.C_LEVEL_HW]
    # Free rows: 1 in the marks.
    bad = _free_list(orders, counters[_O.C_ORDER_FREE], _O.O_NEXT, order_hw, order_mark)
    if bad != -2 or _count(order_mark, 1) != order_hw - counters[_O.C_RESTING]:
        return _FREE_ORDERS, bad
    bad = _free_list(levels, counters[_O.C_LEVEL_FREE], _O.L_HEAD, level_hw, level_mark)
    if bad != -2 or _count(level_mark, 1) != level_hw - counters[_O.C_LEVELS]:
        return _FREE_LEVELS, bad
    # Levels and their queues, side by side: 2 in the marks.
    resting = used_levels = 0
    for bs in range(n_sides):
        n = books[bs * _O.SIDE_WIDTH + _O.B_LEVELS]
        if n < 0 or n > side_lvls.shape[1]:
            return _SIDE_LEVELS, bs
        best = side_lvls[bs, n - 1] if n > 0 else -1
        if books[bs * _O.SIDE_WIDTH + _O.B_BEST] != best:
            return _SIDE_LEVELS, bs
        on_side = 0
        last_key = 0
        for k in range(n):
            lv = side_lvls[bs, k]
            if lv < 0 or lv >= level_hw:
                return _SIDE_LEVELS, bs
            if level_mark[lv] != 0 or levels[lv * _W + _O.L_BOOK] != bs:
                return _LEVEL, lv
            level_mark[lv] = 2
            used_levels += 1
            price = levels[lv * _W + _O.L_PRICE]
            key = price if (bs & 1) == 0 else -price  # ascending: the best last
            if k > 0 and key <= last_key:
                return _SIDE_LEVELS, bs
            last_key = key
            o = levels[lv * _W + _O.L_HEAD]
            prev, qty = -1, 0
            while o != -1:
                if o < 0 or o >= order_hw or order_mark[o] != 0:
                    return _LEVEL_ORDER, o
                row = o * _W
                if orders[row + _O.O_LEVEL] != lv or orders[row + _O.O_SYM] != bs >> 1:
                    return _LEVEL_ORDER, o
                if prev != -1 and orders[row + _O.O_PREV] != prev:
                    return _LEVEL_ORDER, o  # the head's PREV may be stale; the rest may not
                if orders[row + _O.O_QTY] <= 0 or orders[row + _O.O_PRICE] != price:
                    return _LEVEL_SUMS, lv
                order_mark[o] = 2
                qty += orders[row + _O.O_QTY]
                on_side += 1
                prev = o
                o = orders[row + _O.O_NEXT]
            if prev == -1 or levels[lv * _W + _O.L_TAIL] != prev:
                return _LEVEL_SUMS, lv  # a level in use is never empty
            if levels[lv * _W + _O.L_QTY] != qty:
                return _LEVEL_SUMS, lv
        if books[bs * _O.SIDE_WIDTH + _O.B_ORDERS] != on_side:
            return _SIDE_ORDERS, bs
        resting += on_side
    if resting != counters[_O.C_RESTING] or used_levels != counters[_O.C_LEVELS]:
        return _COUNTS, resting
    for bs in range(n_sides):
        base = books[bs * _O.SIDE_WIDTH + _O.B_BASE]
        for k in range(_O.LADDER_WIDTH):
            v = ladder[bs * _O.LADDER_WIDTH + k]
            if v == 0:
                continue
            lv = v - 1
            if lv < 0 or lv >= level_hw or level_mark[lv] != 2:
                return _LADDER, bs
            if levels[lv * _W + _O.L_BOOK] != bs or levels[lv * _W + _O.L_PRICE] != base + k:
                return _LADDER, bs
    # Every resting order once in the id table, under its own tag: 3 in the marks.
    entries = 0
    for i in range(h_table.shape[0]):
        e = h_table[i]
        if e == 0:
            continue
        o = (e & 0xFFFFFFFF) - 1
        if o < 0 or o >= order_hw or order_mark[o] != 2:
            return _HASH, i
        row = o * _W
        if (e >> 32) & 0xFFFFFFFF != kernels._tag(orders[row + _O.O_SYM], orders[row + _O.O_ID]):
            return _HASH, i
        order_mark[o] = 3
        entries += 1
    if entries != resting:
        return _HASH, entries
    return _OK, 0


def check_snapshot_state(arrays: dict, n_symbols: int) -> None:
    """Raise :class:`SnapshotError` unless ``arrays`` are a whole state for ``n_symbols``."""
    sides = 2 * n_symbols
    expected = {
        "orders": (np.int64, 1),
        "levels": (np.int64, 1),
        "side_lvls": (np.int32, 2),
        "books": (np.int64, 1),
        "h_table": (np.int64, 1),
        "ladder": (np.int32, 1),
        "counters": (np.int64, 1),
    }
    for name, (dtype, ndim) in expected.items():
        if name not in arrays:
            raise SnapshotError(f"snapshot lacks the array {name!r}")
        arr = arrays[name]
        if arr.dtype != dtype or arr.ndim != ndim:
            raise SnapshotError(
                f"snapshot array {name!r} is {arr.dtype} with {arr.ndim} dimension(s), "
                f"expected {np.dtype(dtype)} with {ndim}"
            )
    st = arrays
    sizes = {
        "books": sides * kernels.SIDE_WIDTH,
        "ladder": sides * kernels.LADDER_WIDTH,
        "counters": 8,
    }
    for name, size in sizes.items():
        if st[name].shape != (size,):
            raise SnapshotError(
                f"snapshot array {name!r} has {st[name].size} entries, expected {size}"
            )
    if st["side_lvls"].shape[0] != sides or st["side_lvls"].shape[1] < 1:
        raise SnapshotError(f"snapshot array 'side_lvls' does not fit {n_symbols} symbols")
    for name in ("orders", "levels"):
        if st[name].size % _W or st[name].size == 0:
            raise SnapshotError(f"snapshot array {name!r} is not a whole number of {_W}-word rows")
    table = st["h_table"].size
    if table < 16 or table & (table - 1):
        raise SnapshotError(f"the id table has {table} slots, not a power of two of at least 16")
    c = st["counters"]
    order_cap, level_cap = st["orders"].size // _W, st["levels"].size // _W
    bounds = [
        (kernels.C_ORDER_HW, 0, order_cap, "order high-water mark"),
        (kernels.C_LEVEL_HW, 0, level_cap, "level high-water mark"),
        (kernels.C_RESTING, 0, c[kernels.C_ORDER_HW], "resting order count"),
        (kernels.C_LEVELS, 0, c[kernels.C_LEVEL_HW], "level count"),
        (kernels.C_SIDE_MAX, 0, st["side_lvls"].shape[1], "most levels on a side"),
    ]
    for index, low, high, what in bounds:
        if not low <= c[index] <= high:
            raise SnapshotError(f"snapshot counter {what} {c[index]} is outside {low}..{high}")
    if c[kernels.C_RESTING] >= table:
        raise SnapshotError("the id table is too small for the resting orders")
    code, at = _walk(
        st["orders"],
        st["levels"],
        st["side_lvls"],
        st["books"],
        st["h_table"],
        st["ladder"],
        c,
        sides,
        np.zeros(order_cap, dtype=np.int8),
        np.zeros(level_cap, dtype=np.int8),
    )
    if code != _OK:
        raise SnapshotError(f"snapshot state is inconsistent: {_PROBLEMS[code]} (at {at})")
