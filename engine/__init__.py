"""Numba price-time-priority matching engine.

``MatchingEngine`` (in :mod:`engine.book`) owns flat NumPy arrays for every
symbol's book and calls the jitted kernels in :mod:`engine.kernels`. Messages
and reports are NumPy structured arrays defined in :mod:`engine.messages`.
"""

from engine.book import MatchingEngine, SnapshotError, stp_mode
from engine.messages import (
    MESSAGE_DTYPE,
    NO_PRICE,
    REPORT_DTYPE,
    Action,
    OrderType,
    Reason,
    ReportKind,
    Side,
    empty_messages,
)

__all__ = [
    "MatchingEngine",
    "SnapshotError",
    "stp_mode",
    "MESSAGE_DTYPE",
    "REPORT_DTYPE",
    "NO_PRICE",
    "Action",
    "Side",
    "OrderType",
    "ReportKind",
    "Reason",
    "empty_messages",
]
