"""A load generator's client of one gateway over HTTP (``topology.transport: http``).

It keeps one keep-alive connection pool per gateway, with as many requests in
flight as the generator sends, and posts every batch (one order or many) to
``POST /v1/orders/batch``, whose answer comes back as columns: one pass per
report field rebuilds the reports array the generator digests, as over the
other transports. The generator names itself (``?client=``) so that the
answers carry its MAKER_DONE notices too.
"""

import aiohttp
import numpy as np
import orjson

from actors.http_models import ACTION_NAMES, SIDE_NAMES, TYPE_NAMES, columns_to_reports
from engine.messages import Action

__all__ = ["HttpBackendClient", "HttpError", "orders_json", "http_clients"]


class HttpError(RuntimeError):
    """The gateway answered with an error status (its status and detail)."""


def orders_json(orders: np.ndarray, symbols: list[str]) -> bytes:
    """The ``POST /v1/orders/batch`` body of an ORDER_DTYPE array."""
    rows = []
    columns = zip(
        orders["symbol"].tolist(),
        orders["account"].tolist(),
        orders["order_id"].tolist(),
        orders["price"].tolist(),
        orders["qty"].tolist(),
        orders["action"].tolist(),
        orders["side"].tolist(),
        orders["type"].tolist(),
        strict=True,
    )
    for symbol, account, order_id, price, qty, action, side, otype in columns:
        row = {"symbol": symbols[symbol], "account": account, "action": ACTION_NAMES[action]}
        if order_id:
            row["order_id"] = order_id
        if price > 0:
            row["price"] = price
        if qty > 0:
            row["qty"] = qty
        if action == Action.NEW:
            row["side"] = SIDE_NAMES[side]
            row["type"] = TYPE_NAMES[otype]
        rows.append(row)
    return orjson.dumps({"orders": rows})


class HttpBackendClient:
    def __init__(self, url: str, api_key: str, symbols: list[str], connections: int = 64):
        self.url = url.rstrip("/") + "/v1/orders/batch"
        self.symbols = list(symbols)
        self._headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def submit(self, orders: np.ndarray, client: int | None = None) -> np.ndarray:
        if self._session is None:  # made on the loop that uses it
            connector = aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(connector=connector)
        params = None if client is None else {"client": str(client)}
        body = orders_json(orders, self.symbols)
        async with self._session.post(
            self.url, data=body, headers=self._headers, params=params
        ) as answer:
            payload = await answer.read()
            if answer.status != 200:
                raise HttpError(f"HTTP {answer.status}: {payload[:500].decode(errors='replace')}")
        return columns_to_reports(orjson.loads(payload)["reports"])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def http_clients(gateways: dict) -> list[HttpBackendClient]:
    """One client per gateway URL of ``{"urls", "api_key", "symbols"}`` (a run's gateways)."""
    key, symbols = gateways["api_key"], gateways["symbols"]
    return [HttpBackendClient(url, key, symbols) for url in gateways["urls"]]
