"""digest_reports: one pass over a batch's reports gives what the NumPy expressions give."""

import numpy as np

from actors.order_flow import FlowParams, OrderFlow
from actors.report_digest import digest_reports, fills_and_rejects, globalize
from actors.routing import global_symbol
from engine import MatchingEngine, ReportKind
from engine.messages import REPORT_DTYPE


def _reports(*rows):
    out = np.zeros(len(rows), dtype=REPORT_DTYPE)
    out["maker_leaves"] = 1  # makers still open unless a row says otherwise
    names = ("kind", "order_id", "symbol", "price", "leaves", "maker_id", "maker_leaves")
    for name, column in zip(names, zip(*rows, strict=True), strict=True):
        out[name] = column
    return out


def test_finished_orders_counts_and_last_fill_prices():
    K = ReportKind
    reports = _reports(
        (K.ACK, 1, 0, 100, 5, 0, 0),
        (K.FILL, 2, 0, 101, 3, 90, 4),  # taker partly filled, maker still open
        (K.FILL, 3, 0, 102, 0, 91, 0),  # both done: both gone; symbol 0's last price
        (K.CANCELED, 4, 1, 0, 0, 0, 0),
        (K.EXPIRED, 5, 1, 0, 0, 0, 0),
        (K.REJECT, 6, 1, 0, 0, 0, 0),
        (K.MODIFIED, 7, 1, 99, 2, 0, 0),
        (K.FILL, 8, 9, 500, 0, 92, 2),  # a symbol the flow does not have: no mid moves
        (K.FILL, 9, 1, 98, 5, 93, 0),  # the maker is done, the taker rests on
    )
    mids = np.array([10, 20], dtype=np.int64)
    digest = digest_reports(reports, mids)
    assert (digest.rejects, digest.fills) == (1, 4)
    assert digest.gone.tolist() == [3, 91, 4, 5, 6, 8, 93]
    assert mids.tolist() == [102, 98]
    assert fills_and_rejects(reports) == (4, 1)


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
        makers_done = fill & (reports["maker_leaves"] == 0)
        digest = digest_reports(reports, flow.mids)
        assert digest.rejects == np.count_nonzero(kinds == ReportKind.REJECT)
        assert digest.fills == np.count_nonzero(fill) > 0
        # Per report in order: the order's own id, then a finished maker's.
        ids = np.stack([reports["order_id"], reports["maker_id"]], axis=1)
        want = ids[np.stack([gone, makers_done], axis=1)]
        assert makers_done.any()
        assert np.array_equal(digest.gone, want)
        assert np.array_equal(flow.mids, want_mids)
        assert fills_and_rejects(reports) == (digest.fills, digest.rejects)


def test_globalize_gives_the_routing_functions_global_symbols_and_counts_in_one_pass():
    flow = OrderFlow(FlowParams(symbols=4, accounts=50), seed=12)
    engine = MatchingEngine(4)
    for size in (1, 2, 3000):  # one report's field view is contiguous, more are strided
        reports = engine.process(flow.next_batch(size))
        want_symbols = global_symbol(reports["symbol"], 2, 3)
        want_counts = fills_and_rejects(reports)
        assert globalize(reports, 2, 3) == want_counts
        assert np.array_equal(reports["symbol"], want_symbols)
