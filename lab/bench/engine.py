"""``lab bench engine``: single-core engine throughput on the standard mix.

Standard mix: 8 symbols, 1,000 accounts, limit prices around a mid with a
geometric fall-off within about 50 ticks; 60% LIMIT, 5% MARKET, 5% IOC,
20% CANCEL and 10% MODIFY of the flow's own resting orders. All messages are
generated before the clock starts, and the clock runs only inside
``engine.process``: the reports are tallied between batches, off the clock.

The timed engine starts with pools for ``orders`` resting orders (by default
room for the book the 5M-message mix builds, about 655k orders), allocated
and faulted in before the clock starts, as an engine pre-allocates its pools
at startup; ``orders=0`` times the engine from its small default pools
instead, growing them as the book fills. The result says which, and its
memory figures are what the engine really holds.

The same run measures the machine probe (:mod:`lab.bench.probe`) after
the clock stops, over a working set of the timed engine's
``memory_bytes()`` then: for the default pre-sized engine that is its
pre-sized pools (the order pool never grows on the standard mix, and the
level pools add some tens of KiB), so for a given ``orders`` the probe is
nearly the same measurement on every day and at every ``messages``; with
``orders=0``, what the pools grew to. That rather than the resting book's
bytes, because the engine's cache-missing loads spread over its pools, not
just the resting rows: the order-id hash table is sized to the capacity,
not to the orders resting. ``loads_per_message`` and ``ops_per_message``
divide ``ns_per_message`` by the probe's two figures, so runs from
different days compare through them.
"""

import time

import numpy as np

from actors.order_flow import FlowParams, OrderFlow
from engine import MatchingEngine, ReportKind
from lab.bench.probe import measure_probe, relative_to_probe

__all__ = ["STANDARD_MIX", "DEFAULT_ORDERS", "run_engine_bench"]

#: Order-pool capacity of the timed engine: the 5M-message mix peaks at ~655k resting.
DEFAULT_ORDERS = 1 << 20

STANDARD_MIX = FlowParams(
    symbols=8,
    accounts=1000,
    mid_price=10_000,
    price_levels=50,
    price_decay=0.9,
    max_qty=100,
    mix=(0.6, 0.05, 0.05, 0.2, 0.1),
)


def standard_messages(messages: int, seed: int = 1, step: int = 4096) -> np.ndarray:
    """The standard mix, with cancels and modifies aimed at orders still resting.

    The flow is played through a scratch engine while it is generated, so the
    flow can forget orders that traded away, as a real participant would.
    """
    flow = OrderFlow(STANDARD_MIX, seed=seed)
    scratch = MatchingEngine(STANDARD_MIX.symbols)
    parts = []
    for lo in range(0, messages, step):
        part = flow.next_batch(min(step, messages - lo))
        scratch.process(part, copy=False)
        flow.keep_only(scratch.is_resting(*flow.live_orders))
        parts.append(part)
    msgs = np.concatenate(parts) if parts else flow.next_batch(0)
    msgs["seq"] = np.arange(len(msgs))
    return msgs


def run_engine_bench(
    messages: int = 5_000_000, seed: int = 1, batch: int = 65_536, orders: int = DEFAULT_ORDERS
) -> dict:
    """Time one engine over the standard mix; ``orders``: its starting pool capacity, 0 to grow."""
    if orders < 0:
        raise ValueError("orders must be 0 (grow from the default pools) or positive")
    msgs = standard_messages(messages, seed)
    # Compile (or load from cache) and warm up on a separate engine.
    MatchingEngine(STANDARD_MIX.symbols).process(msgs[: min(batch, messages)])

    if orders:
        engine = MatchingEngine(STANDARD_MIX.symbols, orders=orders, prefault=True)
    else:
        engine = MatchingEngine(STANDARD_MIX.symbols)
    start_orders = engine.order_capacity
    trades = rejects = 0
    elapsed = 0.0
    for lo in range(0, messages, batch):
        start = time.perf_counter()
        reports = engine.process(msgs[lo : lo + batch], copy=False)
        elapsed += time.perf_counter() - start
        # Tallied off the clock: the figure is the engine's, not this NumPy pass's.
        kinds = reports["kind"]
        trades += int(np.count_nonzero(kinds == ReportKind.FILL))
        rejects += int(np.count_nonzero(kinds == ReportKind.REJECT))
    resting = engine.n_resting
    probe = measure_probe(engine.memory_bytes())
    ns_per_message = round(elapsed / messages * 1e9, 2)
    return {
        "messages_per_s": int(messages / elapsed),
        "messages": messages,
        "seconds": round(elapsed, 4),
        "trades": trades,
        "rejects": rejects,
        "resting": resting,
        "start_order_capacity": start_orders,
        "prefaulted": bool(orders),
        "order_capacity": engine.order_capacity,
        "engine_bytes": engine.memory_bytes(),
        "bytes_per_resting_order": round(engine.memory_bytes() / max(resting, 1), 1),
        "ns_per_message": ns_per_message,
        **relative_to_probe(ns_per_message, probe, per="message"),
        "probe": probe,
    }
