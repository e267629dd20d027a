"""count_replies: the replies of a loop turn counted together give what each counted alone
gives, failed calls included."""

import numpy as np

from actors.reply_tally import Reply, Tally, count_replies
from actors.wire import ORDER_DTYPE
from engine.messages import REPORT_DTYPE, Reason, ReportKind


def reply(first_id, kinds, received_ns, send_ns=1_000, error=None):
    """A reply to one order per kind, with one report of that kind each (a FILL done)."""
    orders = np.zeros(len(kinds), ORDER_DTYPE)
    orders["order_id"] = first_id + np.arange(len(kinds))
    orders["send_ns"] = send_ns + np.arange(len(kinds))
    if error:
        return Reply(orders, None, error, received_ns)
    reports = np.zeros(len(kinds), REPORT_DTYPE)
    reports["order_id"] = orders["order_id"]
    reports["kind"] = kinds
    reports["maker_id"] = 9_000 + np.arange(len(kinds))
    reports["maker_leaves"] = 1  # makers keep resting
    reports["symbol"] = np.arange(len(kinds)) % 2
    reports["price"] = 100 + np.arange(len(kinds))
    reports["reason"] = np.where(np.asarray(kinds) == ReportKind.REJECT, Reason.BAD_QTY, 0)
    return Reply(orders, reports, None, received_ns)


REPLIES = [
    reply(1, [ReportKind.ACK, ReportKind.FILL], received_ns=5_000),
    reply(10, [ReportKind.REJECT], received_ns=6_000),
    reply(20, [ReportKind.ACK, ReportKind.ACK, ReportKind.ACK], 7_000, error="ConnectionError: x"),
    reply(30, [ReportKind.CANCELED, ReportKind.FILL, ReportKind.ACK], received_ns=9_000),
]


def test_replies_counted_together_give_what_each_counted_alone_gives():
    together, alone = Tally(), Tally()
    mids_together, mids_alone = np.zeros(2, np.int64), np.zeros(2, np.int64)
    gone = count_replies(REPLIES, (together,), mids_together)
    gone_alone = np.concatenate([count_replies([r], (alone,), mids_alone) for r in REPLIES])
    assert together.to_dict() == alone.to_dict()
    assert gone.tolist() == gone_alone.tolist()
    assert mids_together.tolist() == mids_alone.tolist()


def test_counts_latencies_errors_and_the_orders_gone():
    interval, total = Tally(), Tally()
    mids = np.zeros(2, np.int64)
    gone = count_replies(REPLIES, (interval, total), mids)
    for tally in (interval, total):
        assert tally.answered == 9 and tally.errors == 3
        assert tally.first_error == "ConnectionError: x"
        assert tally.rejects == 1 and tally.acked == 5 and tally.fills == 2
        assert tally.latency.count == 6  # the failed call's orders have no latency
    assert sorted(gone.tolist()) == [2, 10, 30, 31]  # filled (leaves 0), rejected, cancelled
    assert mids.tolist() == [0, 101]  # the last fill price of symbol 1; symbol 0 traded none


def test_only_failed_calls_count_as_answered_errors():
    tally = Tally()
    failed = [reply(1, [ReportKind.ACK] * 2, 5_000, error="HttpError: HTTP 503")]
    assert len(count_replies(failed, (tally,), np.zeros(2, np.int64))) == 0
    assert (tally.answered, tally.errors, tally.acked, tally.latency.count) == (2, 2, 0, 0)
