"""Split a batch into per-destination parts in one pass (a counting sort).

Boolean masks cost one full pass per destination; this costs one pass in
all, and each part is a view of one reordered copy. Order within a part is
kept, so a destination sees its messages in the sender's order.
"""

import numpy as np

from actors.wire import copy_records, take
from engine.jit import njit

__all__ = ["split"]


@njit
def _counting_order(route, n_parts, order, bounds, fill):
    # Kernels do not allocate (engine.jit): ``fill`` is scratch from the caller.
    for i in range(route.shape[0]):
        bounds[route[i] + 1] += 1
    for p in range(n_parts):
        bounds[p + 1] += bounds[p]
        fill[p] = bounds[p]
    for i in range(route.shape[0]):
        p = route[i]
        order[fill[p]] = i
        fill[p] += 1


def split(batch: np.ndarray, route: np.ndarray, n_parts: int) -> list[tuple[int, np.ndarray]]:
    """``[(destination, part)]`` for every destination that gets at least one element."""
    route = np.ascontiguousarray(route, dtype=np.int64)
    if len(route) and route.min() == route.max():  # one destination (always, for one order)
        return [(int(route[0]), copy_records(batch))]
    order = np.empty(len(route), dtype=np.int64)
    bounds = np.zeros(n_parts + 1, dtype=np.int64)
    _counting_order(route, n_parts, order, bounds, np.empty(n_parts, dtype=np.int64))
    ordered = take(batch, order)
    return [
        (p, ordered[bounds[p] : bounds[p + 1]]) for p in range(n_parts) if bounds[p + 1] > bounds[p]
    ]
