"""The engine's state: a named tuple of flat arrays, and how its pools grow."""

from typing import NamedTuple

import numpy as np

from engine import kernels

__all__ = ["BookState", "new_state", "grow", "state_from_arrays"]


class BookState(NamedTuple):
    #: Order pool, int64 [capacity, 8], columns ``kernels.O_*``: one row per
    #: resting order, linked FIFO within its level (NEXT also links free rows).
    orders: np.ndarray
    #: Level pool, int64 [capacity, 5], columns ``kernels.L_*`` (HEAD also
    #: links free rows).
    levels: np.ndarray
    #: Per book side (symbol * 2 + side - 1): level ids sorted with the best last.
    side_lvls: np.ndarray  # int32 [sides, capacity]
    side_n: np.ndarray  # int32, levels on the side
    side_cnt: np.ndarray  # int64, resting orders on the side
    #: (symbol, order id) -> order row, open addressing, int64 [capacity, 2].
    h_table: np.ndarray
    counters: np.ndarray  # int64, see kernels.C_*


def _order_rows(n: int) -> np.ndarray:
    rows = np.zeros((n, 8), dtype=np.int64)
    rows[:, kernels.O_LEVEL] = -1  # marks a free row
    return rows


def _level_rows(n: int) -> np.ndarray:
    rows = np.zeros((n, 5), dtype=np.int64)
    rows[:, kernels.L_HEAD] = -1
    rows[:, kernels.L_TAIL] = -1
    return rows


def new_state(n_symbols: int, orders: int = 1024, levels: int = 256, side_levels: int = 16):
    hash_size = 1 << max(4, int(2 * orders - 1).bit_length())
    counters = np.zeros(8, dtype=np.int64)
    counters[kernels.C_ORDER_FREE] = -1
    counters[kernels.C_LEVEL_FREE] = -1
    return BookState(
        orders=_order_rows(orders),
        levels=_level_rows(levels),
        side_lvls=np.full((2 * n_symbols, side_levels), -1, dtype=np.int32),
        side_n=np.zeros(2 * n_symbols, dtype=np.int32),
        side_cnt=np.zeros(2 * n_symbols, dtype=np.int64),
        h_table=np.full((hash_size, 2), -1, dtype=np.int64),
        counters=counters,
    )


def _doubled(rows: np.ndarray, make) -> np.ndarray:
    out = make(2 * rows.shape[0])
    out[: rows.shape[0]] = rows
    return out


def grow(st: BookState, need: int) -> BookState:
    """A copy of ``st`` with the pools named by the ``NEED_*`` bits doubled."""
    changes = {}
    if need & kernels.NEED_ORDERS:
        changes["orders"] = _doubled(st.orders, _order_rows)
    if need & kernels.NEED_LEVELS:
        changes["levels"] = _doubled(st.levels, _level_rows)
    if need & kernels.NEED_SIDE:
        sides, cap = st.side_lvls.shape
        lv = np.full((sides, 2 * cap), -1, dtype=np.int32)
        lv[:, :cap] = st.side_lvls
        changes["side_lvls"] = lv
    st = st._replace(**changes)
    if need & kernels.NEED_HASH:
        table = np.full((2 * st.h_table.shape[0], 2), -1, dtype=np.int64)
        kernels.rebuild_hash(st, table)
        st = st._replace(h_table=table)
    return st


def state_from_arrays(arrays) -> BookState:
    return BookState(**{name: np.ascontiguousarray(arrays[name]) for name in BookState._fields})
