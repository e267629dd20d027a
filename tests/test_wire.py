"""The record copies every stage makes of order and report batches."""

import numpy as np
import pytest

from actors.wire import ORDER_DTYPE, concat_records, copy_records, take, to_messages
from engine.messages import MESSAGE_DTYPE, REPORT_DTYPE


def _orders(n: int) -> np.ndarray:
    out = np.zeros(n, ORDER_DTYPE)
    for k, name in enumerate(ORDER_DTYPE.names):
        out[name] = (np.arange(n) * 7 + k) % 101 - 50  # every field its own values
    return out


@pytest.mark.parametrize("view", ["whole", "strided", "read-only", "one read-only", "empty"])
def test_to_messages_keeps_every_message_field_in_an_array_of_its_own(view):
    orders = _orders(1000)
    if view == "strided":
        orders = orders[::3]
    elif view == "empty":
        orders = orders[:0]
    elif view == "one read-only":
        orders = orders[:1]
    if "read-only" in view:  # as a batch that arrived over Ray
        orders.flags.writeable = False
    messages = to_messages(orders)
    assert messages.dtype == MESSAGE_DTYPE and messages.shape == orders.shape
    assert messages.flags.c_contiguous and messages.flags.writeable
    assert not np.shares_memory(messages, orders)
    for name in MESSAGE_DTYPE.names:
        np.testing.assert_array_equal(messages[name], orders[name])


def test_copies_and_joins_are_whole_records_of_their_own():
    reports = np.zeros(50, REPORT_DTYPE)
    for k, name in enumerate(REPORT_DTYPE.names):
        reports[name] = np.arange(50) + k
    copy = copy_records(reports[::2])
    assert copy.dtype == REPORT_DTYPE and (copy == reports[::2]).all()
    copy["qty"] = -1  # a copy: the source is untouched
    assert (reports["qty"] >= 0).all()

    parts = [reports[:10], reports[10:10], reports[30:]]
    joined = concat_records(parts)
    assert joined.dtype == REPORT_DTYPE and (joined == np.concatenate(parts)).all()
    alone = concat_records([reports])
    alone["qty"] = -1  # one part still gives a new array
    assert (reports["qty"] >= 0).all()

    index = np.array([4, 0, 4, 49])
    assert (take(reports, index) == reports[index]).all()
