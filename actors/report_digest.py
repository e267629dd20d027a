"""What a load generator takes from a batch of reports, in one pass.

Per batch a generator needs its REJECT and FILL counts, the orders that are
gone (filled, cancelled, expired or rejected, the makers of its fills
included), and the last trade price of each symbol. As NumPy expressions
that is six passes over the reports, with a temporary each; the kernel here
makes one.
"""

import numpy as np

from actors.wire import MAKER_DONE
from engine.jit import njit, read_only
from engine.messages import ReportKind

# Plain ints, which Numba folds into the kernels as constants.
CANCELED, EXPIRED, FILL, REJECT = (
    ReportKind.CANCELED,
    ReportKind.EXPIRED,
    ReportKind.FILL,
    ReportKind.REJECT,
)

__all__ = ["Digest", "digest_reports", "fills_and_rejects", "globalize"]


@njit
def _digest(kind, leaves, maker_leaves, symbol, price, order_id, maker_id, mids, gone):
    """Counts (rejects, fills, gone); writes gone ids to ``gone`` and last prices to ``mids``.

    ``gone`` needs room for two ids per report (a fill can finish both sides).
    """
    rejects = fills = n_gone = 0
    for i in range(kind.shape[0]):
        k = kind[i]
        if k == FILL:
            fills += 1
            if 0 <= symbol[i] < mids.shape[0]:  # no bounds checks in kernels
                mids[symbol[i]] = price[i]
            if leaves[i] == 0:
                gone[n_gone] = order_id[i]
                n_gone += 1
            # A maker of another flow is not in this flow's pool: forgetting
            # it costs nothing, and one of this flow's must not stay tracked.
            if maker_leaves[i] == 0:
                gone[n_gone] = maker_id[i]
                n_gone += 1
        elif k == CANCELED or k == EXPIRED or k == REJECT or k == MAKER_DONE:
            rejects += k == REJECT
            gone[n_gone] = order_id[i]
            n_gone += 1
    return rejects, fills, n_gone


@njit
def _fills_and_rejects(kind):
    fills = rejects = 0
    for i in range(kind.shape[0]):
        fills += kind[i] == FILL
        rejects += kind[i] == REJECT
    return fills, rejects


@njit
def _globalize(symbol, kind, shard, n_shards):
    fills = rejects = 0
    for i in range(kind.shape[0]):
        symbol[i] = symbol[i] * n_shards + shard
        fills += kind[i] == FILL
        rejects += kind[i] == REJECT
    return fills, rejects


def globalize(reports: np.ndarray, shard: int, n_shards: int) -> tuple[int, int]:
    """A shard's reports given global symbols, in place, and their FILL and REJECT counts.

    One pass where the shard made three (``routing.global_symbol``, then a count of
    each kind): a large batch's reports are tens of megabytes.
    """
    fills, rejects = _globalize(reports["symbol"], read_only(reports["kind"]), shard, n_shards)
    return int(fills), int(rejects)


def fills_and_rejects(reports: np.ndarray) -> tuple[int, int]:
    """How many FILL and REJECT reports ``reports`` holds (one pass, for the metrics)."""
    fills, rejects = _fills_and_rejects(read_only(reports["kind"]))
    return int(fills), int(rejects)


class Digest:
    """The reports' counts and the ids of the orders they finished."""

    def __init__(self, rejects: int, fills: int, gone: np.ndarray):
        self.rejects = rejects
        self.fills = fills
        self.gone = gone


def digest_reports(reports: np.ndarray, mids: np.ndarray) -> Digest:
    """Digest a batch of ``REPORT_DTYPE`` reports; moves ``mids`` to their last fill prices."""
    gone = np.empty(2 * len(reports), dtype=np.int64)
    fields = ("kind", "leaves", "maker_leaves", "symbol", "price", "order_id", "maker_id")
    rejects, fills, n_gone = _digest(
        *(read_only(reports[f]) for f in fields),
        mids,
        gone,
    )
    return Digest(int(rejects), int(fills), gone[:n_gone])
