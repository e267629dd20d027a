"""The heap of a stage's process, settled before a run starts."""

import gc

__all__ = ["settle_heap"]


def settle_heap() -> None:
    """Collect once and freeze what survives, before the run starts.

    The garbage collector's full passes otherwise walk every object the
    process holds (Ray's, NumPy's, Numba's): pauses of tens of ms that every
    order in flight at that moment waits out.
    """
    gc.collect()
    gc.freeze()
