"""actors.order_flow: the order flow's cancellation hazard keeps the book stationary, at the depth
its parameters predict, and an order that leaves the tracked pool is cancelled."""

import numpy as np
import pytest

from actors.order_flow import FlowParams, OrderFlow, expected_depth
from actors.report_digest import digest_reports
from engine import Action, MatchingEngine

RATE = 500_000  # messages/s of the flow's own clock
BATCH = 500


def play(params, batches, pool_size=1 << 20, seed=3):
    """The flow through one engine at RATE on a virtual clock; resting orders after each batch."""
    flow = OrderFlow(params, seed=seed, pool_size=pool_size)
    engine = MatchingEngine(params.symbols)
    step_ns = int(BATCH / RATE * 1e9)
    resting, actions = [], []
    for b in range(batches):
        messages = flow.next_batch(BATCH, now_ns=b * step_ns)
        actions.append(messages["action"])
        reports = engine.process(messages)
        flow.forget(digest_reports(reports, flow.mids).gone)
        resting.append(engine.n_resting)
    return np.array(resting), np.concatenate(actions), flow


def test_with_a_lifetime_the_book_levels_off_and_without_one_it_keeps_growing():
    with_hazard, _, _ = play(FlowParams(symbols=4, accounts=100, mean_lifetime_s=0.05), 600)
    without, _, _ = play(FlowParams(symbols=4, accounts=100), 600)
    # 0.6 s of the flow's clock is 12 lifetimes: the last third is stationary.
    assert with_hazard[400:].mean() < 1.1 * with_hazard[200:400].mean()
    assert without[-1] > 1.4 * without[400]
    assert without[-1] > 5 * with_hazard[-1]


@pytest.mark.parametrize(
    "params",
    [
        FlowParams(symbols=4, accounts=100, mean_lifetime_s=0.05),
        FlowParams(symbols=4, accounts=100, mean_lifetime_s=0.1),
        FlowParams(symbols=8, accounts=1000, mean_lifetime_s=0.05, mix=(0.7, 0.05, 0.05, 0.1, 0.1)),
        FlowParams(symbols=8, mean_lifetime_s=0.05, mix=(0.8, 0, 0, 0.1, 0.1), price_decay=0.8),
    ],
)
def test_the_stationary_depth_is_what_the_mix_and_lifetime_predict(params):
    resting, _, _ = play(params, 800)
    assert resting[400:].mean() == pytest.approx(expected_depth(params, RATE), rel=0.2)


def test_hazard_cancels_take_slots_of_the_flow_and_the_same_clock_gives_the_same_flow():
    params = FlowParams(symbols=4, accounts=100, mean_lifetime_s=0.01)
    _, first, flow = play(params, 50)
    _, again, _ = play(params, 50)
    assert len(first) == 50 * BATCH  # the rate is the flow's, hazard cancels included
    assert np.array_equal(first, again)
    no_hazard = play(FlowParams(symbols=4, accounts=100), 50)[1]
    share = np.count_nonzero(first == Action.CANCEL) / len(first)
    assert share > np.count_nonzero(no_hazard == Action.CANCEL) / len(no_hazard) + 0.05


def test_an_order_that_leaves_a_full_pool_is_cancelled_not_forgotten():
    params = FlowParams(symbols=4, accounts=100, mix=(1.0, 0, 0, 0, 0))  # limits only
    resting, actions, flow = play(params, 40, pool_size=64)
    assert resting.max() <= 64  # the engine holds no order the flow lost track of
    assert flow.tracked <= 64
    assert np.count_nonzero(actions == Action.CANCEL) > 0  # made room by cancelling
