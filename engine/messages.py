"""Wire format of the engine: message and report dtypes, and their codes.

Everything that talks to the engine (the replay command, the actors, the
tests) builds batches with these dtypes and reads reports with these codes.
"""

import numpy as np

__all__ = [
    "MESSAGE_DTYPE",
    "REPORT_DTYPE",
    "NO_PRICE",
    "Action",
    "Side",
    "OrderType",
    "ReportKind",
    "Reason",
    "STP_NONE",
    "STP_CANCEL_NEWEST",
    "empty_messages",
]

#: Sentinel for "no price given" (MARKET and CANCEL; MODIFY keeps its price).
NO_PRICE = np.iinfo(np.int64).min


class Action:
    NEW = 1
    CANCEL = 2
    MODIFY = 3


class Side:
    BUY = 1
    SELL = 2


class OrderType:
    LIMIT = 1
    MARKET = 2
    IOC = 3
    FOK = 4


class ReportKind:
    ACK = 1
    REJECT = 2
    FILL = 3
    CANCELED = 4
    EXPIRED = 5
    MODIFIED = 6


class Reason:
    """Why a message was rejected or an order cancelled (0 = no reason)."""

    NONE = 0
    DUPLICATE_ORDER_ID = 1
    BAD_QTY = 2
    BAD_PRICE = 3
    BAD_SIDE = 4
    BAD_TYPE = 5
    UNKNOWN_ORDER = 6
    BAD_ACTION = 7
    BAD_SYMBOL = 8
    SELF_TRADE = 9
    NOT_OWNER = 10  #: a CANCEL or MODIFY from an account that does not own the order
    # Gateway (backend) risk checks.
    MAX_ORDER_QTY = 20
    MAX_OPEN_ORDERS = 21
    MAX_POSITION = 22
    MAX_ORDER_RATE = 23
    MALFORMED = 24
    BAD_ACCOUNT = 25

    @classmethod
    def name_of(cls, code: int) -> str:
        for name, value in vars(cls).items():
            if name.isupper() and value == code:
                return name
        return f"REASON_{code}"


STP_NONE = 0
STP_CANCEL_NEWEST = 1

#: One inbound message. ``symbol`` is the engine's symbol index; ``seq`` is
#: echoed on every report the message causes.
MESSAGE_DTYPE = np.dtype(
    [
        ("seq", np.int64),
        ("order_id", np.int64),
        ("account", np.int64),
        ("price", np.int64),
        ("qty", np.int64),
        ("symbol", np.int32),
        ("action", np.int8),
        ("side", np.int8),
        ("type", np.int8),
        ("_pad", np.int8),
    ]
)

#: One execution report. For FILL, ``order_id``/``account`` are the taker's and
#: ``maker_id``/``maker_account`` the resting order's; ``price`` is the fill price.
#: For ACK and MODIFIED, ``price``/``qty`` are the order's (new) price and quantity;
#: for CANCELED and EXPIRED, ``qty`` is the quantity removed.
#: ``leaves`` is what remains open of ``order_id`` after the report (ACK: its qty;
#: FILL: the taker's rest; MODIFIED: the new qty; otherwise 0) and, for FILL,
#: ``maker_leaves`` what remains of the maker (0: the maker order is done); for
#: MODIFIED, ``maker_leaves`` is the qty that was open before the modify.
REPORT_DTYPE = np.dtype(
    [
        ("seq", np.int64),
        ("order_id", np.int64),
        ("account", np.int64),
        ("maker_id", np.int64),
        ("maker_account", np.int64),
        ("price", np.int64),
        ("qty", np.int64),
        ("leaves", np.int64),
        ("maker_leaves", np.int64),
        ("symbol", np.int32),
        ("kind", np.int8),
        ("reason", np.int8),
        ("side", np.int8),
        ("_pad", np.int8),
    ]
)


def empty_messages(n: int) -> np.ndarray:
    """A zeroed batch of ``n`` messages with prices set to ``NO_PRICE``."""
    batch = np.zeros(n, dtype=MESSAGE_DTYPE)
    batch["price"] = NO_PRICE
    return batch
