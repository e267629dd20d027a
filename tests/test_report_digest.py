"""digest_reports: one pass over a batch's reports gives what the NumPy expressions give."""

import numpy as np

from actors.report_digest import digest_reports, fills_and_rejects
from engine import MatchingEngine, ReportKind
from engine.messages import REPORT_DTYPE
from lab.workload import FlowParams, OrderFlow


def _reports(*rows):
    out = np.zeros(len(rows), dtype=REPORT_DTYPE)
    names = ("kind", "order_id", "symbol", "price", "leaves")
    for name, column in zip(names, zip(*rows, strict=True), strict=True):
        out[name] = column
    return out


def test_finished_orders_counts_and_last_fill_prices():
    K = ReportKind
    reports = _reports(
        (K.ACK, 1, 0, 100, 5),
        (K.FILL, 2, 0, 101, 3),  # partly filled: still open
        (K.FILL, 3, 0, 102, 0),  # filled: gone; the last price of symbol 0
        (K.CANCELED, 4, 1, 0, 0),
        (K.EXPIRED, 5, 1, 0, 0),
        (K.REJECT, 6, 1, 0, 0),
        (K.MODIFIED, 7, 1, 99, 2),
        (K.FILL, 8, 9, 500, 0),  # a symbol the flow does not have: no mid moves
    )
    mids = np.array([10, 20], dtype=np.int64)
    digest = digest_reports(reports, mids)
    assert (digest.rejects, digest.fills) == (1, 3)
    assert digest.gone.tolist() == [3, 4, 5, 6, 8]
    assert mids.tolist() == [102, 20]
    assert fills_and_rejects(reports) == (3, 1)


def test_matches_the_numpy_expressions_on_an_engine_s_reports():
    flow = OrderFlow(FlowParams(symbols=4, accounts=50), seed=11)
    engine = MatchingEngine(4)
    for _ in range(10):
        reports = engine.process(flow.next_batch(2000))
        reports.flags.writeable = False  # as they arrive over Ray
        kinds = reports["kind"]
        fill = kinds == ReportKind.FILL
        want_mids = flow.mids.copy()
        want_mids[reports["symbol"][fill]] = reports["price"][fill]
        gone = (fill & (reports["leaves"] == 0)) | np.isin(
            kinds, [ReportKind.CANCELED, ReportKind.EXPIRED, ReportKind.REJECT]
        )
        digest = digest_reports(reports, flow.mids)
        assert digest.rejects == np.count_nonzero(kinds == ReportKind.REJECT)
        assert digest.fills == np.count_nonzero(fill) > 0
        assert np.array_equal(digest.gone, reports["order_id"][gone])
        assert np.array_equal(flow.mids, want_mids)
        assert fills_and_rejects(reports) == (digest.fills, digest.rejects)
