"""The HTTP gateway served by uvicorn over in-process shards and backends: every endpoint,
every refusal, and that nothing refused reaches the engine or takes a stage down."""

import asyncio
import json
import time

import aiohttp
import pytest

from actors.gateway import Gateway, GatewayLimits
from actors.gateway_app import create_app
from actors.http_server import HttpServer
from actors.local import LocalBackendClient, LocalShardClient
from actors.risk import RiskLimits
from engine import ReportKind
from tests.pipeline_fixtures import build

KEY, TRADER = "test-key-any", "test-key-7"
SYMBOLS = ["AAPL", "MSFT", "IBM", "ORCL"]


SMALL = GatewayLimits(max_body_bytes=64 * 1024, max_batch=100)


def serve(test, limits=SMALL, risk=RiskLimits(), clock=time.monotonic):
    """Run ``test(http, shards)`` against a gateway on a free port, on one event loop."""

    async def main():
        shards, backends = build(n_shards=2, n_backends=2, n_symbols=4, limits=risk, clock=clock)
        peers = [LocalBackendClient(b) for b in backends]
        queries = [LocalShardClient(s) for s in shards]
        keys = {KEY: "*", TRADER: [7]}
        server = HttpServer(create_app(Gateway(0, peers, queries, SYMBOLS, keys, limits)))
        port = await server.start("127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
                await test(http, shards)
        finally:
            await server.close()

    asyncio.run(main())


async def call(http, method, path, body=None, key=KEY, **kwargs):
    headers = {"X-API-Key": key} if key else {}
    if body is not None:
        kwargs["data"] = json.dumps(body)
        headers["Content-Type"] = "application/json"
    async with http.request(method, path, headers=headers, **kwargs) as answer:
        return answer.status, await answer.json()


def order(**fields):
    return {"symbol": "MSFT", "side": "B", "price": 100, "qty": 5, "account": 7, **fields}


def engine_messages(shards) -> int:
    return sum(s.stats.take()["messages"] for s in shards)


def test_an_order_is_acknowledged_then_filled_queried_and_its_book_shown():
    async def test(http, shards):
        status, body = await call(http, "POST", "/v1/orders", order(order_id=1))
        assert status == 200 and body["order_id"] == 1
        assert [r["kind"] for r in body["reports"]] == ["ACK"]
        assert body["reports"][0]["symbol"] == "MSFT" and body["reports"][0]["leaves"] == 5
        status, body = await call(http, "GET", "/v1/orders/MSFT/1")
        assert status == 200
        assert body == {
            "symbol": "MSFT",
            "order_id": 1,
            "status": "resting",
            "side": "B",
            "price": 100,
            "leaves": 5,
            "account": 7,
        }
        await call(http, "POST", "/v1/orders", order(order_id=2, price=99, qty=1, account=8))
        status, book = await call(http, "GET", "/v1/book/MSFT?depth=1")
        assert status == 200
        assert book == {
            "symbol": "MSFT",
            "bids": [{"price": 100, "qty": 5, "orders": 1}],
            "asks": [],
        }
        # A sell of another account (on the other backend) crosses: the answer holds the fill.
        sell = order(side="S", qty=3, account=9)
        status, body = await call(http, "POST", "/v1/orders", sell)
        assert status == 200 and body["order_id"] > 0  # the gateway gave it an id
        fills = [r for r in body["reports"] if r["kind"] == "FILL"]
        assert [(f["maker_id"], f["qty"], f["price"]) for f in fills] == [(1, 3, 100)]
        status, body = await call(http, "GET", "/v1/orders/MSFT/1")
        assert body["leaves"] == 2

    serve(test)


def test_cancel_and_modify_by_the_owner_and_refused_for_anyone_else():
    async def test(http, shards):
        await call(http, "POST", "/v1/orders", order(order_id=5))
        status, body = await call(http, "DELETE", "/v1/orders/MSFT/5?account=8")
        assert status == 403 and "NOT_OWNER" in body["detail"]
        status, body = await call(
            http, "PATCH", "/v1/orders/MSFT/5", {"qty": 1, "price": 90, "account": 8}
        )
        assert status == 403 and "NOT_OWNER" in body["detail"]
        # A key that may trade only account 7 cannot act for account 8 at all.
        status, body = await call(
            http, "PATCH", "/v1/orders/MSFT/5", {"qty": 1, "price": 90, "account": 8}, key=TRADER
        )
        assert status == 403 and "account 8" in body["detail"]
        status, body = await call(http, "GET", "/v1/orders/MSFT/5")
        assert (body["price"], body["leaves"]) == (100, 5)  # the refused modifies changed nothing
        status, body = await call(
            http, "PATCH", "/v1/orders/MSFT/5", {"qty": 3, "price": 101, "account": 7}
        )
        assert status == 200 and body["reports"][0]["kind"] == "MODIFIED"
        status, body = await call(http, "DELETE", "/v1/orders/MSFT/5?account=7")
        assert status == 200 and body["reports"][0]["kind"] == "CANCELED"
        assert (await call(http, "DELETE", "/v1/orders/MSFT/5?account=7"))[0] == 404
        assert (await call(http, "GET", "/v1/orders/MSFT/5"))[0] == 404

    serve(test)


def test_keys_decide_who_may_trade_what():
    async def test(http, shards):
        assert (await call(http, "GET", "/v1/healthz", key=None)) == (
            200,
            {"status": "ok", "backend": 0},
        )
        before = engine_messages(shards)
        assert (await call(http, "POST", "/v1/orders", order(), key=None))[0] == 401
        assert (await call(http, "POST", "/v1/orders", order(), key="wrong"))[0] == 401
        status, body = await call(http, "POST", "/v1/orders", order(account=8), key=TRADER)
        assert status == 403 and "account 8" in body["detail"]
        batch = {"orders": [order(account=7), order(account=8)]}
        assert (await call(http, "POST", "/v1/orders/batch", batch, key=TRADER))[0] == 403
        assert engine_messages(shards) == before  # nothing refused reached the engine
        assert (await call(http, "POST", "/v1/orders", order(), key=TRADER))[0] == 200

    serve(test)


@pytest.mark.parametrize(
    "bad, words",
    [
        (order(symbol="NOPE"), "unknown symbol"),
        (order(price=2**63), "less than or equal"),
        (order(qty=0), "greater than or equal"),
        (order(side="BUY"), "'B' or 'S'"),
        (order(type="GTC"), "LIMIT"),
        (order(colour="red"), "Extra inputs"),
        (order(action="CANCEL"), "Extra inputs"),
        ({"symbol": "MSFT"}, "Field required"),
    ],
)
def test_an_invalid_order_gets_422_with_its_reason_and_never_reaches_the_engine(bad, words):
    async def test(http, shards):
        before = engine_messages(shards)
        status, body = await call(http, "POST", "/v1/orders", bad)
        assert status == 422 and words in json.dumps(body), body
        assert engine_messages(shards) == before
        assert (await call(http, "POST", "/v1/orders", order()))[0] == 200  # still serving

    serve(test)


def test_an_order_the_risk_checks_refuse_gets_422_with_the_reason_and_never_reaches_the_engine():
    async def test(http, shards):
        before = engine_messages(shards)
        status, body = await call(http, "POST", "/v1/orders", order(qty=11))
        assert status == 422 and body["detail"] == "rejected: MAX_ORDER_QTY", body
        assert engine_messages(shards) == before
        status, body = await call(http, "POST", "/v1/orders", order(qty=10))
        assert status == 200 and body["reports"][0]["kind"] == "ACK"

    serve(test, risk=RiskLimits(max_order_qty=10))


def test_duplicates_oversize_wrong_types_and_rate_limits_get_their_4xx():
    async def test(http, shards):
        assert (await call(http, "POST", "/v1/orders", order(order_id=9)))[0] == 200
        status, body = await call(http, "POST", "/v1/orders", order(order_id=9))
        assert status == 409 and "DUPLICATE_ORDER_ID" in body["detail"]
        big = {"orders": [order()] * 101}
        assert (await call(http, "POST", "/v1/orders/batch", big))[0] == 413
        huge = {"orders": [order(symbol="M" * 60)] * 2000}  # over 64 KiB
        assert (await call(http, "POST", "/v1/orders/batch", huge))[0] == 413
        headers = {"X-API-Key": KEY, "Content-Type": "text/plain"}
        async with http.post("/v1/orders", data=json.dumps(order()), headers=headers) as answer:
            assert answer.status == 415
        statuses = [(await call(http, "POST", "/v1/orders", order()))[0] for _ in range(5)]
        assert 429 in statuses and set(statuses) <= {200, 429}, statuses

    # A clock that stands still: every order falls in one rate window, however slow the
    # machine is between them.
    serve(test, risk=RiskLimits(max_order_rate=3), clock=lambda: 0.0)


def test_a_batch_answers_in_columns_and_carries_cancels_and_modifies():
    async def test(http, shards):
        batch = {
            "orders": [
                order(order_id=21),
                order(order_id=22, side="S", price=110, account=8),
                {"symbol": "MSFT", "account": 7, "order_id": 21, "action": "CANCEL"},
                {"symbol": "MSFT", "account": 8, "order_id": 22, "action": "MODIFY", "qty": 2},
                order(symbol="IBM"),
            ]
        }
        status, body = await call(http, "POST", "/v1/orders/batch", batch)
        assert status == 200
        columns = body["reports"]
        assert body["count"] == len(columns["kind"]) == len(columns["order_id"]) == 5
        # Each backend's part comes back in the batch's order: by seq, the batch's order.
        by_seq = sorted(zip(columns["seq"], columns["order_id"], columns["kind"], strict=True))
        ACK, CANCELED, MODIFIED = ReportKind.ACK, ReportKind.CANCELED, ReportKind.MODIFIED
        assert [(oid, kind) for _, oid, kind in by_seq[:4]] == [
            (21, ACK),
            (22, ACK),
            (21, CANCELED),
            (22, MODIFIED),
        ]
        assert by_seq[4][1] > 0 and by_seq[4][2] == ACK  # the IBM order got an id

    serve(test)


def test_the_openapi_document_lists_every_endpoint():
    async def test(http, shards):
        status, doc = await call(http, "GET", "/v1/openapi.json", key=None)
        assert status == 200
        assert set(doc["paths"]) == {
            "/v1/orders",
            "/v1/orders/batch",
            "/v1/orders/{symbol}/{order_id}",
            "/v1/book/{symbol}",
            "/v1/healthz",
        }
        assert set(doc["paths"]["/v1/orders/{symbol}/{order_id}"]) == {"get", "delete", "patch"}

    serve(test)


def test_the_hot_routes_take_the_request_alone_and_are_documented_as_ever():
    from fastapi import Request

    from actors.gateway_app import _RequestRoute

    async def takes_more(request: Request, client: int):
        return None

    with pytest.raises(TypeError, match="must take the request alone"):
        _RequestRoute("/x", takes_more, methods=["POST"])
    document = create_app(Gateway(0, [], [], SYMBOLS, {KEY: "*"})).openapi()
    batch = document["paths"]["/v1/orders/batch"]["post"]
    assert [p["name"] for p in batch["parameters"]] == ["x-api-key", "client"]
    body = batch["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["orders"]["items"] == {"$ref": "#/components/schemas/OrderIn"}
    assert "OrderIn" in document["components"]["schemas"]
    assert {"200", "401", "413", "422", "429", "503"} <= set(batch["responses"])
