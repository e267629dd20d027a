"""The engine's state: a named tuple of flat arrays, and how its pools grow.

Pools are zeroed blocks straight from the OS (``np.zeros``), aligned so that
each 64-byte row is one cache line (a row straddling two lines costs a
second miss per order touched). Their pages are paid for (page faults, which
are slow on the VMs this runs on) when first written, so capacity the book
never reaches costs little, and growth copies only the rows in use; or, with
``prefault``, all at once when the state is made, as engines that
pre-allocate their pools at startup do, to keep faults off the hot path.
"""

from typing import NamedTuple

import numpy as np

from engine import kernels

__all__ = ["BookState", "new_state", "grow", "state_from_arrays"]

_W = kernels.ROW_WIDTH


class BookState(NamedTuple):
    #: Order pool, int64 [capacity * 8], 8-word rows, columns ``kernels.O_*``:
    #: one row per resting order, linked FIFO within its level (NEXT also
    #: links free rows). Rows at or above ``counters[C_ORDER_HW]`` were never used.
    orders: np.ndarray
    #: Level pool, int64 [capacity * 8], 8-word rows, columns ``kernels.L_*``
    #: (HEAD also links free rows).
    levels: np.ndarray
    #: Per book side (symbol * 2 + side - 1): level ids sorted with the best last.
    side_lvls: np.ndarray  # int32 [sides, capacity]
    #: Per book side, int64 [sides * 4], columns ``kernels.B_*``.
    books: np.ndarray
    #: (symbol, order id) -> order row, open addressing, int64 [capacity]
    #: entries ``tag << 32 | (row + 1)``, 0 when empty (see kernels).
    h_table: np.ndarray
    #: Per side, level id + 1 of each price in [base, base + LADDER_WIDTH)
    #: (base: the side's ``B_BASE``), 0 for no level: int32 [sides * LADDER_WIDTH].
    ladder: np.ndarray
    counters: np.ndarray  # int64, see kernels.C_*


_LINE = 64
_PAGE = 4096


def _zeros(shape, dtype=np.int64) -> np.ndarray:
    """``np.zeros(shape, dtype)`` starting on a cache-line boundary."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    raw = np.zeros(size + _LINE // dtype.itemsize, dtype=dtype)
    skip = (-raw.ctypes.data % _LINE) // dtype.itemsize
    return raw[skip : skip + size].reshape(shape)


def _prefault(arr: np.ndarray) -> None:
    """Fault in every page of a zeroed array now, by writing a zero into each."""
    flat = arr.reshape(-1)
    flat[:: _PAGE // flat.itemsize] = 0


def _hash_size(orders: int) -> int:
    return 1 << max(4, int(2 * orders - 1).bit_length())


def new_state(
    n_symbols: int,
    orders: int = 1024,
    levels: int = 256,
    side_levels: int = 64,
    prefault: bool = False,
) -> BookState:
    """An empty book with pools for ``orders`` orders and ``levels`` levels (they grow)."""
    sides = 2 * n_symbols
    books = np.zeros((sides, kernels.SIDE_WIDTH), dtype=np.int64)
    books[:, kernels.B_BEST] = -1
    counters = np.zeros(8, dtype=np.int64)
    counters[kernels.C_ORDER_FREE] = -1
    counters[kernels.C_LEVEL_FREE] = -1
    st = BookState(
        orders=_zeros(orders * _W),
        levels=_zeros(levels * _W),
        side_lvls=np.zeros((sides, side_levels), dtype=np.int32),
        books=books.reshape(-1),
        h_table=_zeros(_hash_size(orders)),
        ladder=np.zeros(sides * kernels.LADDER_WIDTH, dtype=np.int32),
        counters=counters,
    )
    if prefault:
        for arr in (st.orders, st.levels, st.h_table):
            _prefault(arr)
    return st


def _doubled(rows: np.ndarray, used: int) -> np.ndarray:
    out = _zeros(2 * len(rows), rows.dtype)
    out[: used * _W] = rows[: used * _W]
    return out


def grow(st: BookState, need: int) -> BookState:
    """A copy of ``st`` with the pools named by the ``NEED_*`` bits doubled."""
    changes = {}
    if need & kernels.NEED_ORDERS:
        changes["orders"] = _doubled(st.orders, int(st.counters[kernels.C_ORDER_HW]))
    if need & kernels.NEED_LEVELS:
        changes["levels"] = _doubled(st.levels, int(st.counters[kernels.C_LEVEL_HW]))
    if need & kernels.NEED_SIDE:
        sides, cap = st.side_lvls.shape
        lv = np.zeros((sides, 2 * cap), dtype=np.int32)
        lv[:, :cap] = st.side_lvls
        changes["side_lvls"] = lv
    if need & kernels.NEED_HASH:
        # Entries keep 32 bits of hash: enough for any table that fits in memory.
        table = _zeros(2 * st.h_table.shape[0])
        kernels.rebuild_hash(st.h_table, table)
        changes["h_table"] = table
    return st._replace(**changes)


def _aligned_copy(arr: np.ndarray) -> np.ndarray:
    out = _zeros(arr.shape, arr.dtype)
    out[...] = arr
    return out


def state_from_arrays(arrays) -> BookState:
    return BookState(**{name: _aligned_copy(arrays[name]) for name in BookState._fields})
