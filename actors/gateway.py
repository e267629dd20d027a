"""``Gateway``: order entry in front of the backends, whatever the HTTP layer is.

One gateway runs inside each backend (:mod:`actors.gateway_app` serves it
over HTTP). It takes orders for any account: the part of a request whose
accounts another backend owns (``account % backends``) goes to that backend
through its client, the rest to its own backend directly, so a client may
send anything to any gateway. Orders without an id get one from the
gateway's own range, apart from every load generator's.

API keys map to the accounts they may trade (``"*"``: any). A key is checked
here, not in the HTTP layer, so that every transport that ever fronts a
gateway shares the rule; keys are compared in constant time and never logged.
"""

import asyncio
import hmac
from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

import numpy as np

from actors.partition import split
from actors.routing import ORDER_ID_BITS, backend_of_account, shard_of_symbol
from actors.wire import concat_records
from engine.messages import REPORT_DTYPE, Action

__all__ = ["Gateway", "GatewayLimits", "AuthError", "gateway_first_order_id", "ANY_ACCOUNT"]

ANY_ACCOUNT = "*"
#: Gateways number orders from here up: far above every generator's range.
_GATEWAY_RANGE = 1 << 20


def gateway_first_order_id(backend_id: int) -> int:
    return (_GATEWAY_RANGE + backend_id) << ORDER_ID_BITS


class GatewayLimits(NamedTuple):
    max_body_bytes: int = 1 << 20
    max_batch: int = 10_000


_DEFAULT_LIMITS = GatewayLimits()


class AuthError(Exception):
    """A request without a valid key (401) or for an account its key may not trade (403)."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class BackendClient(Protocol):
    async def submit(self, orders: np.ndarray, client: int | None = None) -> np.ndarray: ...


class ShardQuery(Protocol):
    async def book(self, symbol: int, depth: int) -> dict: ...

    async def order(self, symbol: int, order_id: int) -> dict | None: ...


class Gateway:
    def __init__(
        self,
        backend_id: int,
        backends: Sequence[BackendClient],
        shards: Sequence[ShardQuery],
        symbols: Sequence[str],
        api_keys: Mapping[str, Sequence[int] | str],
        limits: GatewayLimits = _DEFAULT_LIMITS,
        stores=None,
    ):
        self.backend_id = backend_id
        self.backends = list(backends)
        self.shards = list(shards)
        self.symbols = list(symbols)
        self.symbol_index = {name: i for i, name in enumerate(self.symbols)}
        self.limits = limits
        #: the backend's PlatformStores: with a cache, order states come from Redis
        self.stores = stores
        self._keys = {
            key.encode(): None if accounts == ANY_ACCOUNT else frozenset(accounts)
            for key, accounts in api_keys.items()
        }
        self._next_id = gateway_first_order_id(backend_id)

    # -- keys ------------------------------------------------------------------

    def accounts_of(self, key: str | None) -> frozenset | None:
        """The accounts ``key`` may trade (None: any); :class:`AuthError` 401 for a bad key."""
        if key:
            given = key.encode()
            for known, accounts in self._keys.items():
                if hmac.compare_digest(given, known):
                    return accounts
        raise AuthError(401, "a valid X-API-Key header is required")

    def check_accounts(self, key: str | None, accounts) -> None:
        """:class:`AuthError` 401 or 403 unless ``key`` may trade every one of ``accounts``."""
        allowed = self.accounts_of(key)
        if allowed is None:
            return
        values = accounts.tolist() if isinstance(accounts, np.ndarray) else list(accounts)
        foreign = sorted(set(values) - allowed)
        if foreign:
            raise AuthError(403, f"this key may not trade account {foreign[0]}")

    # -- orders ----------------------------------------------------------------

    def assign_ids(self, orders: np.ndarray) -> None:
        """Give every NEW order without an id (0) the gateway's next ids."""
        missing = np.flatnonzero((orders["order_id"] == 0) & (orders["action"] == Action.NEW))
        if len(missing):
            orders["order_id"][missing] = np.arange(len(missing)) + self._next_id
            self._next_id += len(missing)

    def next_order_id(self) -> int:
        """The gateway's next order id (for one NEW order without one)."""
        self._next_id += 1
        return self._next_id - 1

    async def submit(self, orders: np.ndarray, client: int | None = None) -> np.ndarray:
        """Reports for ``orders``, each part sent to the backend that owns its accounts."""
        n = len(self.backends)
        if n == 1:
            return await self.backends[self.backend_id].submit(orders, client)
        if len(orders) == 1:  # one order, one owner: no arrays to split
            owner = int(backend_of_account(int(orders["account"][0]), n))
            return await self.backends[owner].submit(orders, client)
        owners = backend_of_account(orders["account"], n)
        if (owners == self.backend_id).all():
            return await self.backends[self.backend_id].submit(orders, client)
        parts = split(orders, owners, n)
        answers = await asyncio.gather(*(self.backends[b].submit(p, client) for b, p in parts))
        return concat_records(answers) if answers else np.empty(0, REPORT_DTYPE)

    # -- queries ---------------------------------------------------------------

    async def book(self, symbol: int, depth: int) -> dict:
        shard = int(shard_of_symbol(symbol, len(self.shards)))
        return await self.shards[shard].book(symbol, depth)

    async def order(self, symbol: int, order_id: int) -> dict | None:
        """An order's current state: from the cache if there is one, else the shard's book."""
        if self.stores is not None and self.stores.spec.cache:
            await self.stores.open()
            return await self.stores.cache.get_order(symbol, order_id)
        shard = int(shard_of_symbol(symbol, len(self.shards)))
        return await self.shards[shard].order(symbol, order_id)
