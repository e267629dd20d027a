"""Shards and backends wired in-process (no Ray) and order rows, for tests of stage logic.

The wiring uses the in-process clients of :mod:`actors.local`, the same the
``inprocess`` layout runs on.
"""

import time

import numpy as np

from actors.backend import Backend
from actors.engine_shard import EngineShard
from actors.local import LocalShardClient
from actors.risk import RiskLimits
from actors.wire import ORDER_DTYPE
from engine import NO_PRICE, Action, OrderType, Side


def build(
    n_shards=2,
    n_backends=1,
    n_symbols=4,
    n_accounts=100,
    limits=RiskLimits(),
    stp="none",
    journal=False,
    clock=time.monotonic,
):
    """Shards and backends wired together in-process; ``clock``: the backends' risk clock."""
    shards = [
        EngineShard(i, n_shards, n_symbols, n_backends=n_backends, stp=stp, journal=journal)
        for i in range(n_shards)
    ]
    backends = [
        Backend(
            i,
            n_backends,
            [LocalShardClient(s) for s in shards],
            n_symbols,
            n_accounts,
            limits,
            clock=clock,
        )
        for i in range(n_backends)
    ]
    for stage in shards + backends:  # as the actors do: nothing compiles mid-run
        stage.warm_up()
    return shards, backends


def orders(*rows):
    """An order batch from (action, order_id, account, symbol, side, type, price, qty) rows."""
    out = np.zeros(len(rows), dtype=ORDER_DTYPE)
    for i, (action, oid, account, symbol, side, typ, price, qty) in enumerate(rows):
        out[i] = (
            i,
            oid,
            account,
            NO_PRICE if price is None else price,
            qty,
            symbol,
            action,
            side,
            typ,
            0,
            0,
        )
    return out


def new(oid, account, symbol, side, price, qty, typ=OrderType.LIMIT):
    return (Action.NEW, oid, account, symbol, side, typ, price, qty)


def cancel(oid, account, symbol):
    return (Action.CANCEL, oid, account, symbol, 0, 0, None, 0)


def modify(oid, account, symbol, price, qty):
    return (Action.MODIFY, oid, account, symbol, 0, 0, price, qty)


BUY, SELL = Side.BUY, Side.SELL
