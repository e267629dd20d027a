"""A load generator's client of one gateway over HTTP (``topology.transport: http``).

It keeps one keep-alive connection pool per gateway
(:mod:`actors.http_connection`), with as many requests in flight as the
generator sends, and posts every batch (one order or many) to
``POST /v1/orders/batch``, whose answer comes back as columns: one pass per
report field rebuilds the reports array the generator digests, as over the
other transports. The generator names itself (``?client=``) so that the
answers carry its MAKER_DONE notices too.
"""

from urllib.parse import urlsplit

import numpy as np
import orjson

from actors.http_connection import ConnectionPool, HttpError
from actors.http_models import ACTION_NAMES, SIDE_NAMES, TYPE_NAMES, columns_to_reports
from engine.messages import Action

__all__ = ["HttpBackendClient", "HttpError", "orders_json", "http_clients"]


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
        self._pool = ConnectionPool(url, connections)
        self._target = b"POST " + urlsplit(self.url).path.encode()  # under any path prefix
        self._head = (
            f"Host: {self._pool.authority}\r\nX-API-Key: {api_key}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()

    async def submit(self, orders: np.ndarray, client: int | None = None) -> np.ndarray:
        body = orders_json(orders, self.symbols)
        target = self._target if client is None else b"%s?client=%d" % (self._target, client)
        request = b"%s HTTP/1.1\r\n%s%d\r\n\r\n%s" % (target, self._head, len(body), body)
        status, payload = await self._pool.request(request)
        if status != 200:
            raise HttpError(f"HTTP {status}: {payload[:500].decode(errors='replace')}")
        return columns_to_reports(orjson.loads(payload)["reports"])

    async def close(self) -> None:
        await self._pool.close()


def http_clients(gateways: dict) -> list[HttpBackendClient]:
    """One client per gateway URL of ``{"urls", "api_key", "symbols"}`` (a run's gateways)."""
    key, symbols = gateways["api_key"], gateways["symbols"]
    return [HttpBackendClient(url, key, symbols) for url in gateways["urls"]]
