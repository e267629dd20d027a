"""Pure routing functions: symbol -> engine shard, account -> backend.

Every actor computes routes with these functions and nothing else, so that a
symbol's orders always meet in one shard and an account's risk state lives
in one backend.
"""

import numpy as np

__all__ = [
    "ORDER_ID_BITS",
    "first_order_id",
    "generator_of_order",
    "shard_of_symbol",
    "backend_of_account",
    "local_symbol",
    "global_symbol",
    "symbols_of_shard",
]


def shard_of_symbol(symbols, n_shards: int):
    """The engine shard that owns each symbol."""
    return np.asarray(symbols) % n_shards


def backend_of_account(accounts, n_backends: int):
    """The backend that owns each account's risk state."""
    return np.asarray(accounts) % n_backends


def local_symbol(symbols, n_shards: int):
    """A symbol's index inside its shard's engine."""
    return np.asarray(symbols) // n_shards


def global_symbol(local, shard: int, n_shards: int):
    """The inverse of :func:`local_symbol` for one shard."""
    return np.asarray(local) * n_shards + shard


def symbols_of_shard(shard: int, n_shards: int, n_symbols: int) -> list[int]:
    """Global symbols owned by ``shard``."""
    return list(range(shard, n_symbols, n_shards))


#: Load generator g numbers its orders from ``(g + 1) << ORDER_ID_BITS``, so an order id
#: names the generator that placed it (and so whom to tell when it is filled away).
ORDER_ID_BITS = 40


def first_order_id(generator: int) -> int:
    """The first order id of load generator ``generator``."""
    return (generator + 1) << ORDER_ID_BITS


def generator_of_order(order_ids):
    """The load generator that placed each order; -1 for ids below every generator's range."""
    return (np.asarray(order_ids) >> ORDER_ID_BITS) - 1
