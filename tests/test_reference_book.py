"""The oracle itself: a few direct cases for ``ReferenceEngine`` and the checks.

The rules are covered (for both engines) in ``test_engine_validation.py`` and
``test_engine_semantics.py``; here we check the reference's own bookkeeping,
and that ``check_invariants`` really fails on broken books, so a passing
differential run means something.
"""

import numpy as np
import pytest
from book_invariants import Ledger, check_invariants
from engine_fixtures import BUY, IOC, SELL, Session, cancel, modify, new, to_batch
from reference_book import RESTING_DTYPE, ReferenceEngine

from engine.messages import REPORT_DTYPE, ReportKind


def test_rejects_unknown_stp_mode():
    with pytest.raises(ValueError):
        ReferenceEngine(1, stp="cancel-oldest")


def test_process_returns_report_dtype_and_lists_in_contract_order():
    eng = ReferenceEngine(2)
    reports = eng.process(
        to_batch([new(1, SELL, 101, 2, symbol=1), new(2, BUY, 99, 3), new(3, BUY, 100, 1)])
    )
    assert reports.dtype == REPORT_DTYPE
    assert list(reports["kind"]) == [ReportKind.ACK] * 3
    assert list(reports["seq"]) == [1, 2, 3]
    rows = eng.resting_orders()
    assert rows.dtype == RESTING_DTYPE
    assert rows.tolist() == [(0, BUY, 3, 1, 100, 1), (0, BUY, 2, 1, 99, 3), (1, SELL, 1, 1, 101, 2)]
    assert eng.n_resting == 3


def test_levels_are_dropped_when_emptied():
    eng = ReferenceEngine(1)
    s = Session(eng)
    s.send(new(1, SELL, 100, 2), new(2, SELL, 101, 2), new(3, SELL, 100, 2))
    s.send(cancel(1), new(4, BUY, 100, 2))  # 100 level empties (3 filled)
    side = eng._books[0].asks
    assert side.prices == [101] and list(side.levels) == [101]
    s.send(modify(2, 102, 2))
    assert side.prices == [102] and eng.n_resting == 1


def test_sweep_of_many_levels_keeps_the_ledger_balanced():
    s = Session(ReferenceEngine(1))
    s.send(*[new(i, SELL, 100 + i % 7, 1 + i % 3) for i in range(1, 50)])
    reports = s.send(new(99, BUY, 103, 10_000, type=IOC))
    fills = reports[reports["kind"] == ReportKind.FILL]
    assert list(fills["price"]) == sorted(fills["price"])  # best price first
    assert s.ledger.filled == int(fills["qty"].sum()) > 0
    assert s.ledger.expired == 10_000 - s.ledger.filled


class _FakeEngine:
    """An engine whose book we set by hand, to see the checks fail."""

    def __init__(self, rows):
        self.rows = np.array(rows, dtype=RESTING_DTYPE)
        self.n_resting = len(self.rows)

    def resting_orders(self):
        return self.rows


def _ledger_with_two_bids() -> Ledger:
    ledger = Ledger()
    batch = to_batch([new(1, BUY, 100, 5), new(2, BUY, 100, 5)])
    ledger.consume(batch, ReferenceEngine(1).process(batch))
    return ledger


def test_invariants_catch_fifo_violation():
    ledger = _ledger_with_two_bids()
    check_invariants(_FakeEngine([(0, BUY, 1, 1, 100, 5), (0, BUY, 2, 1, 100, 5)]), ledger)
    with pytest.raises(AssertionError, match="FIFO"):
        check_invariants(_FakeEngine([(0, BUY, 2, 1, 100, 5), (0, BUY, 1, 1, 100, 5)]), ledger)


def test_invariants_catch_lost_or_changed_orders():
    ledger = _ledger_with_two_bids()
    with pytest.raises(AssertionError, match="differ"):
        check_invariants(_FakeEngine([(0, BUY, 1, 1, 100, 5)]), ledger)
    with pytest.raises(AssertionError, match="differ"):
        check_invariants(_FakeEngine([(0, BUY, 1, 1, 100, 5), (0, BUY, 2, 1, 100, 4)]), ledger)


def test_invariants_catch_crossed_and_misordered_books():
    ledger = Ledger()
    with pytest.raises(AssertionError, match="crossed"):
        check_invariants(_FakeEngine([(0, BUY, 1, 1, 101, 5), (0, SELL, 2, 1, 100, 5)]), ledger)
    with pytest.raises(AssertionError, match="contract order"):
        check_invariants(_FakeEngine([(0, BUY, 1, 1, 99, 5), (0, BUY, 2, 1, 100, 5)]), ledger)


def test_ledger_rejects_inconsistent_reports():
    batch = to_batch([new(1, BUY, 100, 5, type=IOC)])
    reports = ReferenceEngine(1).process(batch)
    Ledger().consume(batch, reports)
    with pytest.raises(AssertionError):
        Ledger().consume(batch, reports[:1])  # IOC remainder neither expired nor resting
