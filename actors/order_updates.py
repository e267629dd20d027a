"""Each order's state after a batch, as the records the cache's Redis script reads.

Every report becomes an event for its order (a FILL also one for its maker),
in report order; an order's last event gives its status and leaves, its last
ACK or MODIFIED its price and qty, and its ACK the rest. A REJECT counts only
for a NEW (its message found by ``seq``), not for a duplicate id, and only
where the batch has nothing else for that id (of several such, the first:
the script writes a rejected NEW only into a key that does not exist yet).

One kernel builds the records, bytes and all: under load a backend writes a
few orders at a time, where the four dozen NumPy passes this took before
cost 160 us a batch, more than the Redis round trip.
"""

import numpy as np

from engine.jit import njit, read_only
from engine.messages import MESSAGE_DTYPE, NO_PRICE, REPORT_DTYPE, Action, Reason, ReportKind

__all__ = ["RECORD_DTYPE", "STATUSES", "NUMBERS", "DIGITS", "LEVELS", "order_updates"]

#: Status words, indexed by the codes the script receives (1-based in Lua).
STATUSES = ("open", "filled", "canceled", "expired", "rejected")
_OPEN, _FILLED, _CANCELED, _EXPIRED, _REJECTED = range(5)

# What a state update writes: status and leaves; also price and qty (a
# modify); every field (an ACK); every field but only into a key that does not
# exist yet (a rejected NEW: its id may belong to another, live order).
_STATUS, _PRICED, _FULL, _REJECT = 0, 1, 2, 3
LEVELS = {"status": _STATUS, "priced": _PRICED, "full": _FULL, "reject": _REJECT}

DIGITS = 20  # int64 as decimal text: sign and 19 digits
# One order's update as the script reads it: small fields, the lengths of the
# decimal fields, then the decimal fields right-aligned in 20 bytes each.
# Decimal text, not int64, because Lua numbers are doubles (exact to 2**53).
NUMBERS = ("order_id", "account", "price", "qty", "leaves")
RECORD_DTYPE = np.dtype(
    [("symbol", "<i4"), ("level", "u1"), ("status", "u1"), ("side", "u1")]
    + [(f"n_{name}", "u1") for name in NUMBERS]
    + [(name, f"S{DIGITS}") for name in NUMBERS]
)
_LENGTHS_AT = RECORD_DTYPE.fields["n_order_id"][1]
_TEXT_AT = RECORD_DTYPE.fields["order_id"][1]
assert all(RECORD_DTYPE.fields[f"n_{n}"][1] == _LENGTHS_AT + k for k, n in enumerate(NUMBERS))
assert all(RECORD_DTYPE.fields[n][1] == _TEXT_AT + DIGITS * k for k, n in enumerate(NUMBERS))

# Plain ints, which Numba folds into the kernels as constants.
_ACK, _FILL, _REJECT_KIND = ReportKind.ACK, ReportKind.FILL, ReportKind.REJECT
_CANCELED_KIND, _EXPIRED_KIND, _MODIFIED = (
    ReportKind.CANCELED,
    ReportKind.EXPIRED,
    ReportKind.MODIFIED,
)
_DUPLICATE, _NEW = Reason.DUPLICATE_ORDER_ID, Action.NEW
_ZERO, _MINUS = ord("0"), ord("-")


@njit
def _write_decimal(raw, row, field, value):
    """``value`` right-aligned in number field ``field`` of record ``row``, and its length."""
    at = _TEXT_AT + DIGITS * field
    magnitude = np.uint64(-value) if value < 0 else np.uint64(value)  # int64 min stays exact
    end = at + DIGITS
    for k in range(at, end):
        raw[row, k] = _ZERO
    length = 0
    while True:
        length += 1
        raw[row, end - length] = _ZERO + np.uint8(magnitude % np.uint64(10))
        magnitude //= np.uint64(10)
        if magnitude == 0:
            break
    if value < 0:
        length += 1
        raw[row, end - length] = _MINUS
    raw[row, _LENGTHS_AT + field] = length


# Rows of the events array: an event is one report's word on one order.
_SYMBOL, _ID, _STATE, _LEAVES, _LEVEL, _SRC = range(6)


@njit
def _events(
    m_seq, m_order_id, m_action, r_seq, r_order_id, r_maker_id, r_leaves, r_maker_leaves,
    r_symbol, r_kind, r_reason, by_seq, events,
):  # fmt: skip
    """Fill ``events`` (6 rows, room for two per report) in report order; returns how many.

    Each report's own order, then a fill's maker. ``by_seq``: the messages'
    indices in ``seq`` order, where a REJECT finds its message.
    """
    k = 0
    for i in range(r_kind.shape[0]):
        kind = r_kind[i]
        status, level = -1, _STATUS  # -1: the report says nothing about its order
        if kind == _ACK:
            status, level = _OPEN, _FULL
        elif kind == _MODIFIED:
            status, level = _OPEN, _PRICED
        elif kind == _CANCELED_KIND:
            status = _CANCELED
        elif kind == _EXPIRED_KIND:
            status = _EXPIRED
        elif kind == _FILL:
            status = _FILLED if r_leaves[i] == 0 else _OPEN
        elif kind == _REJECT_KIND and r_reason[i] != _DUPLICATE and by_seq.shape[0] > 0:
            lo, hi = 0, by_seq.shape[0]  # the first message with this seq
            while lo < hi:
                mid = (lo + hi) // 2
                if m_seq[by_seq[mid]] < r_seq[i]:
                    lo = mid + 1
                else:
                    hi = mid
            m = by_seq[min(lo, by_seq.shape[0] - 1)]
            if m_seq[m] == r_seq[i] and m_order_id[m] == r_order_id[i] and m_action[m] == _NEW:
                status, level = _REJECTED, _REJECT
        if status >= 0:
            events[_SYMBOL, k], events[_ID, k], events[_STATE, k] = (
                r_symbol[i],
                r_order_id[i],
                status,
            )
            events[_LEAVES, k] = 0 if status >= _CANCELED else r_leaves[i]
            events[_LEVEL, k], events[_SRC, k] = level, i
            k += 1
        if kind == _FILL:
            events[_SYMBOL, k], events[_ID, k] = r_symbol[i], r_maker_id[i]
            events[_STATE, k] = _FILLED if r_maker_leaves[i] == 0 else _OPEN
            events[_LEAVES, k], events[_LEVEL, k], events[_SRC, k] = r_maker_leaves[i], _STATUS, i
            k += 1
    return k


@njit
def _records(events, order, r_account, r_price, r_qty, r_side, raw):
    """One record per order in ``raw`` (records as bytes); returns how many.

    ``order``: the events sorted by order (symbol, then id), each order's in report order.
    """
    k = order.shape[0]
    out = g = 0
    while g < k:
        symbol, order_id = events[_SYMBOL, order[g]], events[_ID, order[g]]
        h, rejects_only = g, True
        while h < k and events[_SYMBOL, order[h]] == symbol and events[_ID, order[h]] == order_id:
            rejects_only &= events[_LEVEL, order[h]] == _REJECT
            h += 1
        last = priced = full = -1
        for j in range(g, h):
            e = order[j]
            level = events[_LEVEL, e]
            if level == _REJECT and not rejects_only:
                continue  # a rejected NEW whose id the batch also uses otherwise
            if rejects_only and last >= 0:
                break  # of several rejected NEWs of one id, the first writes (into no key)
            last = e
            if level >= _PRICED:
                priced = events[_SRC, e]
            if level >= _FULL:
                full = e
        level = events[_LEVEL, full] if full >= 0 else (_PRICED if priced >= 0 else _STATUS)
        source = events[_SRC, full] if full >= 0 else -1
        price = r_price[priced] if priced >= 0 else NO_PRICE
        for b in range(4):
            raw[out, b] = (symbol >> (8 * b)) & 0xFF
        raw[out, 4] = level
        raw[out, 5] = events[_STATE, last]
        raw[out, 6] = r_side[source] if source >= 0 else 0
        _write_decimal(raw, out, 0, order_id)
        _write_decimal(raw, out, 1, r_account[source] if source >= 0 else 0)
        _write_decimal(raw, out, 2, 0 if price == NO_PRICE else price)
        _write_decimal(raw, out, 3, r_qty[priced] if priced >= 0 else 0)
        _write_decimal(raw, out, 4, events[_LEAVES, last])
        if price == NO_PRICE:
            raw[out, _LENGTHS_AT + 2] = 0  # a market order: no price field
        out += 1
        g = h
    return out


_MESSAGE_FIELDS = ("seq", "order_id", "action")
_EVENT_FIELDS = (
    "seq", "order_id", "maker_id", "leaves", "maker_leaves", "symbol", "kind", "reason",
)  # fmt: skip
_RECORD_FIELDS = ("account", "price", "qty", "side")


def order_updates(messages: np.ndarray, reports: np.ndarray) -> np.ndarray:
    """The script's records (``RECORD_DTYPE``): each order's state after the batch, by order.

    ``messages``: the batch's ``MESSAGE_DTYPE`` messages (at least those with a
    REJECT among the reports, whose NEWs are found by ``seq``); ``reports``:
    every report of the batch, in the order the engine made them.
    """
    if not isinstance(messages, np.ndarray) or messages.dtype != MESSAGE_DTYPE:
        raise TypeError("messages must be a NumPy array of MESSAGE_DTYPE")
    if not isinstance(reports, np.ndarray) or reports.dtype != REPORT_DTYPE:
        raise TypeError("reports must be a NumPy array of REPORT_DTYPE")
    events = np.empty((6, 2 * len(reports)), np.int64)
    k = _events(
        *(read_only(messages[f]) for f in _MESSAGE_FIELDS),
        *(read_only(reports[f]) for f in _EVENT_FIELDS),
        read_only(np.argsort(messages["seq"], kind="stable")),
        events,
    )
    order = np.lexsort((events[_ID, :k], events[_SYMBOL, :k]))  # stable: report order kept
    records = np.zeros(k, RECORD_DTYPE)
    raw = records.view(np.uint8).reshape(k, RECORD_DTYPE.itemsize)
    n = _records(events, order, *(read_only(reports[f]) for f in _RECORD_FIELDS), raw)
    return records[:n]


def warm_up() -> None:
    """Compile (or load) the kernel for every layout a batch's fields can have."""
    from engine.jit import WARM_UP_SIZES

    for n in WARM_UP_SIZES:
        for n_reports in WARM_UP_SIZES:
            order_updates(np.zeros(n, MESSAGE_DTYPE), np.zeros(n_reports, REPORT_DTYPE))
