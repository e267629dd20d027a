"""LoadGenerator (in-process): Poisson open loop, no coordinated omission, warm-up, closed loop."""

import asyncio
import time

import numpy as np

from actors.load_generator import LoadGenerator, RunWindow
from lab.histogram import LatencyHistogram
from lab.workload import FORGET_BATCH, FlowParams, OrderFlow
from tests.pipeline_fixtures import LocalBackend, build


class StallingBackend:
    """Answers at once, except that one call, at ``stall_at_s``, hangs for ``stall_s``."""

    def __init__(self, inner, stall_at_s: float, stall_s: float):
        self.inner = inner
        self.stall_at_ns = time.time_ns() + int(stall_at_s * 1e9)
        self.stall_s = stall_s
        self.stalled = False

    async def submit(self, orders):
        if not self.stalled and time.time_ns() >= self.stall_at_ns:
            self.stalled = True
            await asyncio.sleep(self.stall_s)
        return await self.inner.submit(orders)


def generator(backends, rate, batch_size=64, wait_s=0.002, max_in_flight=1000):
    flow = OrderFlow(FlowParams(symbols=4, accounts=100), seed=5)
    return LoadGenerator(0, backends, flow, rate, batch_size, wait_s, max_in_flight, seed=5)


def run(gen, warmup_s, duration_s):
    window = RunWindow(time.time_ns() + 50_000_000, warmup_s, duration_s)
    return asyncio.run(gen.run(window)), window


def test_open_loop_sends_a_poisson_stream_at_the_target_rate():
    _, (backend,) = build(n_shards=1, n_symbols=4)
    gen = generator([LocalBackend(backend)], rate=3000.0)
    tally, _ = run(gen, warmup_s=0.0, duration_s=1.5)
    expected = 3000 * 1.5
    assert abs(tally["sent"] - expected) < 5 * expected**0.5  # 5 standard deviations
    assert tally["acked"] + tally["rejects"] == tally["sent"]
    assert tally["errors"] == 0


def test_a_stall_is_counted_for_every_order_intended_during_it():
    _, (backend,) = build(n_shards=1, n_symbols=4)
    stalling = StallingBackend(LocalBackend(backend), stall_at_s=0.5, stall_s=0.3)
    gen = generator([stalling], rate=2000.0, max_in_flight=1)
    tally, _ = run(gen, warmup_s=0.0, duration_s=1.2)
    latency = LatencyHistogram.from_dict(tally["latency"])
    # With one batch in flight the sender waits out the stall; the orders it should have
    # sent meanwhile still carry their intended times, so their latency shows the stall.
    assert latency.count == tally["sent"]  # every order got its latency
    assert latency.max >= 0.25e9
    slow_share = 1 - _share_below(latency, 0.1e9)
    assert slow_share > 0.1  # ~0.3 s of 1.2 s of orders waited


def test_warmup_orders_are_left_out_of_the_measured_tally():
    _, (backend,) = build(n_shards=1, n_symbols=4)
    gen = generator([LocalBackend(backend)], rate=2000.0)
    tally, _ = run(gen, warmup_s=0.5, duration_s=1.0)
    assert abs(tally["sent"] - 1000) < 5 * 1000**0.5


def test_closed_loop_keeps_batches_in_flight_and_counts_every_order():
    _, backends = build(n_shards=2, n_backends=2, n_symbols=4)
    gen = generator([LocalBackend(b) for b in backends], rate=None, batch_size=256, max_in_flight=2)
    tally, _ = run(gen, warmup_s=0.0, duration_s=0.5)
    assert tally["sent"] >= 256
    assert tally["acked"] + tally["rejects"] == tally["sent"]
    assert tally["fills"] > 0
    interval = gen.take_stats()
    assert interval["sent"] >= tally["sent"]
    assert interval["stage"]["batches"] > 0


def test_failed_calls_count_as_errors_and_the_generator_goes_on():
    class Broken:
        async def submit(self, orders):
            raise RuntimeError("backend down")

    gen = generator([Broken()], rate=1000.0)
    tally, _ = run(gen, warmup_s=0.0, duration_s=0.3)
    assert tally["errors"] == tally["sent"] > 0


def _share_below(hist: LatencyHistogram, value_ns: float) -> float:
    lo, hi = 0.0, 100.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if hist.percentile(mid) < value_ns:
            lo = mid
        else:
            hi = mid
    return lo / 100


def test_forgotten_orders_leave_the_flow_in_groups_and_all_at_once_when_read():
    flow = OrderFlow(FlowParams(symbols=2, accounts=10, mix=(1, 0, 0, 0, 0)), seed=3)
    flow.next_batch(1000)
    ids = flow.live_orders[1].copy()  # a view of the pool otherwise
    live = len(ids)
    flow.forget(ids[:3])
    assert flow._pool_n == live  # a few ids wait for a group
    flow.forget(ids[3:FORGET_BATCH])
    assert flow._pool_n == live - FORGET_BATCH  # a full group goes at once
    flow.forget(ids[-2:])
    _, now = flow.live_orders  # reading applies what still waits
    assert len(now) == live - FORGET_BATCH - 2
    assert not set(now.tolist()) & set(ids[:FORGET_BATCH].tolist() + ids[-2:].tolist())


def test_forgetting_drops_exactly_the_gone_ids_and_keeps_the_pool_order():
    flow = OrderFlow(FlowParams(symbols=2, accounts=10, mix=(1, 0, 0, 0, 0)), seed=4)
    flow.next_batch(3000)
    ids = flow.live_orders[1].copy()
    rng = np.random.default_rng(9)
    gone = rng.choice(ids, size=400, replace=False)
    # Ids the flow does not hold, some equal to held ones modulo any table
    # size (they probe the same slots), and repeats.
    strangers = np.concatenate((ids[:50] + (1 << 20), ids[:50] - (1 << 30), [-5, 0]))
    flow.forget(np.concatenate((gone, gone[:30], strangers)))
    _, now = flow.live_orders
    assert now.tolist() == [i for i in ids.tolist() if i not in set(gone.tolist())]
