"""Starting capacities and prefaulting: speed options only, never a change in behaviour.

An engine whose pools start big (and are faulted in up front) must give the
same reports and book as one that starts small and grows, and it must still
grow when the book outruns its capacity; pools must sit on cache lines.
"""

import numpy as np
import pytest
from engine_fixtures import BUY, MARKET, SELL, assert_same_reports, new, to_batch

from engine import MatchingEngine, ReportKind
from lab.bench.engine import STANDARD_MIX, standard_messages

N_SYMBOLS = STANDARD_MIX.symbols


@pytest.fixture(scope="module")
def flow() -> np.ndarray:
    """The bench's standard mix: trades, cancels and modifies on a growing book."""
    return standard_messages(30_000, seed=3)


def run(engine: MatchingEngine, msgs: np.ndarray, batch: int = 4096) -> np.ndarray:
    return np.concatenate(
        [engine.process(msgs[lo : lo + batch]) for lo in range(0, len(msgs), batch)]
    )


def test_presized_engines_match_the_default(flow):
    default = MatchingEngine(N_SYMBOLS)
    want = run(default, flow)
    for kwargs in (
        {"orders": 1 << 16, "levels": 1 << 12, "prefault": True},
        {"orders": 1 << 16, "prefault": False},
        {"orders": 1, "levels": 1, "prefault": True},
    ):
        engine = MatchingEngine(N_SYMBOLS, **kwargs)
        assert_same_reports(run(engine, flow), want)
        assert engine.state_hash() == default.state_hash()


def test_presized_engine_grows_past_its_capacity(flow):
    engine = MatchingEngine(N_SYMBOLS, orders=256, levels=16, prefault=True)
    assert engine.order_capacity == 256
    reference = MatchingEngine(N_SYMBOLS)
    assert_same_reports(run(engine, flow), run(reference, flow))
    assert engine.n_resting == reference.n_resting > 256
    assert engine.order_capacity >= engine.n_resting
    assert engine.state_hash() == reference.state_hash()


def test_pools_start_on_cache_lines(flow):
    def check(engine):
        st = engine._st
        for pool in (st.orders, st.levels, st.h_table):
            assert pool.ctypes.data % 64 == 0

    engine = MatchingEngine(N_SYMBOLS, orders=3, levels=1, prefault=True)
    check(engine)
    run(engine, flow[:5000])  # grows every pool
    assert engine.order_capacity > 3
    check(engine)
    clone = MatchingEngine.from_snapshot(engine.snapshot())
    check(clone)
    assert clone.state_hash() == engine.state_hash()


@pytest.mark.parametrize("kwargs", [{"orders": 0}, {"levels": 0}, {"orders": -8}])
def test_capacities_must_be_positive(kwargs):
    with pytest.raises(ValueError):
        MatchingEngine(1, **kwargs)


def test_reports_a_caller_keeps_are_its_own():
    """Later batches, one outgrowing the report buffer, leave earlier reports as they were."""
    engine = MatchingEngine(1)
    kept = [engine.process(to_batch([new(i, SELL, 100 + i % 5, 1) for i in range(1, 301)]))]
    kept.append(engine.process(to_batch([new(1000, BUY, 0, 300, type=MARKET)])))  # 300 fills
    kept.append(engine.process(to_batch([new(2000, BUY, 90, 7)])))
    before = [r.copy() for r in kept]
    engine.process(to_batch([new(3000, SELL, 90, 7), new(3001, BUY, 90, 1)]))
    assert int(np.count_nonzero(kept[1]["kind"] == ReportKind.FILL)) == 300
    for got, want in zip(kept, before, strict=True):
        assert np.array_equal(got, want)
