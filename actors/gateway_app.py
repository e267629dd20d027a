"""The gateway's HTTP API (FastAPI), under ``/v1``; the OpenAPI document at ``/v1/openapi.json``.

Status codes: 401 without a valid ``X-API-Key``; 403 for an account the key
may not trade or an order of another account; 404 for an unknown order; 409
for a duplicate order id; 413 for a body over ``max_body_bytes`` or a batch
over ``max_batch``; 415 for a body that is not JSON; 422 for an invalid order
(with the reason) and for an order the backend's risk checks refuse; 429 when
the account's order rate limit is hit. A refused order never reaches the
engine. Bodies are encoded by pydantic's own serializer (its Rust core),
several times faster than FastAPI's generic encoder for a batch's answer.
"""

import inspect
from urllib.parse import parse_qsl

import numpy as np
import orjson
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from actors.backend import ShardFailed
from actors.gateway import AuthError, Gateway, GatewayLimits
from actors.http_models import (
    SIDE_CODES,
    TYPE_CODES,
    BatchIn,
    BatchOut,
    BookOut,
    ErrorOut,
    ModifyIn,
    NewOrderIn,
    OrderOut,
    OrderState,
    orders_to_array,
    reports_to_columns,
    reports_to_dicts,
    side_name,
)
from actors.http_server import HttpServer
from actors.trade_journal import JournalError
from actors.wire import ORDER_DTYPE
from engine.messages import NO_PRICE, Action, Reason, ReportKind

__all__ = ["create_app", "serve_gateway"]

#: Every refusal the API documents: all have ``{"detail": ...}`` bodies.
_ERRORS = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (401, "No valid X-API-Key."),
        (403, "An account this key may not trade, or another account's order."),
        (404, "No such order."),
        (409, "A duplicate order id."),
        (413, "A body or batch over the gateway's limits."),
        (415, "A body that is not application/json."),
        (422, "An invalid order, or one the risk checks refuse; the detail says why."),
        (429, "The account's order rate limit."),
        (503, "A shard (or the journal) did not answer."),
    )
}

#: HTTP status of an order the backend or the engine refused, by reason.
_STATUS_OF_REASON = {
    Reason.DUPLICATE_ORDER_ID: 409,
    Reason.UNKNOWN_ORDER: 404,
    Reason.NOT_OWNER: 403,
    Reason.MAX_ORDER_RATE: 429,
}


async def serve_gateway(backend_id: int, peers, shards, spec: dict, stores=None):
    """Backend ``backend_id``'s gateway, served on this loop from ``spec`` (a run's plan).

    ``spec["port"]``: the first backend's port, backend i serving on port + i; 0 (or
    none): a free port. With ``spec["share_port"]`` every backend serves on that port
    itself. Returns the server (to close) and its port.
    """
    limits = GatewayLimits(spec["max_body_bytes"], spec["max_batch"])
    gateway = Gateway(backend_id, peers, shards, spec["symbols"], spec["api_keys"], limits, stores)
    server = HttpServer(create_app(gateway))
    shared = bool(spec.get("share_port"))
    port = spec["port"] + (0 if shared else backend_id) if spec["port"] else 0
    return server, await server.start(spec["host"], port, reuse_port=shared)


class _RequestRoute(APIRoute):
    """A route whose endpoint takes the request alone and answers a :class:`Response`.

    FastAPI's ``route_class`` extension point. Its own handler solves the
    dependencies of every request, for an endpoint that declares none too:
    it builds the query, header and cookie maps the endpoint never reads
    (measured: a fifth of the gateway's CPU for one order per request). This
    one awaits the endpoint; the OpenAPI document is FastAPI's as usual.
    """

    def __init__(self, path: str, endpoint, **kwargs):
        parameters = list(inspect.signature(endpoint).parameters.values())
        if [p.annotation for p in parameters] != [Request]:
            raise TypeError(f"{endpoint.__name__} must take the request alone")
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self):
        return self.endpoint


def create_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(
        title="HFT scaling lab gateway",
        version="1",
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
        # No OpenTelemetry here: not even the per-request look for a provider.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    limits = gateway.limits
    schemas: dict = {}  # models the raw endpoints' bodies refer to, for the document

    def documented(model, *parameters) -> dict:
        """The OpenAPI entry of an endpoint that parses ``model`` from its raw body."""
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        body = {"required": True, "content": {"application/json": {"schema": schema}}}
        return {"requestBody": body, "parameters": [_KEY_PARAMETER, *parameters]}

    def openapi() -> dict:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            document.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
        return app.openapi_schema

    app.openapi = openapi

    def raw_post(path: str, endpoint, response_model, summary: str, openapi_extra: dict) -> None:
        """``POST path`` answered by ``endpoint(request)`` (a :class:`_RequestRoute`)."""
        app.router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            route_class_override=_RequestRoute,
            response_model=response_model,
            responses=_ERRORS,
            summary=summary,
            openapi_extra=openapi_extra,
        )

    async def parsed(request: Request, model):
        """``model`` parsed from the request's body bytes; 422 with pydantic's reasons."""
        try:
            return model.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from None

    async def checked_body(request: Request) -> str | None:
        """413 and 415 before the body is parsed; the request's API key (None: none given).

        Read from the raw headers in one pass (ASGI names them in lower case).
        """
        length = kind = key = None
        for name, value in request.scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                kind = value
            elif name == b"x-api-key":
                key = value
        if length is not None and length.isdigit() and int(length) > limits.max_body_bytes:
            raise HTTPException(413, f"body over {limits.max_body_bytes} bytes")
        if (kind or b"").split(b";")[0].strip().lower() != b"application/json":
            raise HTTPException(415, "the body must be application/json")
        if len(await request.body()) > limits.max_body_bytes:
            raise HTTPException(413, f"body over {limits.max_body_bytes} bytes")
        return key.decode("latin-1") if key is not None else None

    @app.exception_handler(AuthError)
    async def _auth(_, exc: AuthError):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(ShardFailed)
    @app.exception_handler(JournalError)
    async def _unavailable(_, exc: Exception):
        return JSONResponse({"detail": f"unavailable: {exc}"}, status_code=503)

    def symbol_of(name: str) -> int:
        if name not in gateway.symbol_index:
            raise HTTPException(422, f"unknown symbol {name!r}")
        return gateway.symbol_index[name]

    async def one(key, symbol: str, row: dict) -> Response:
        """Submit one message and answer with its reports, or the refusal's status."""
        symbol_index = symbol_of(symbol)
        gateway.check_accounts(key, (row["account"],))
        if row["order_id"] == 0 and row["action"] == Action.NEW:
            row["order_id"] = gateway.next_order_id()
        orders = np.zeros(1, ORDER_DTYPE)
        orders[0] = _order_row(symbol_index, **row)
        # A submission's reports are its own message's: ACK, FILLs (it the taker), ...
        reports = await gateway.submit(orders)
        rejects = reports[reports["kind"] == ReportKind.REJECT]
        if len(rejects):
            reason = int(rejects["reason"][0])
            status = _STATUS_OF_REASON.get(reason, 422)
            raise HTTPException(status, f"rejected: {Reason.name_of(reason)}")
        return _raw_json(
            {"order_id": row["order_id"], "reports": reports_to_dicts(reports, gateway.symbols)}
        )

    # The hot path of one order per request: the body is parsed straight from its bytes
    # by pydantic's Rust core, and the route (a _RequestRoute) hands the endpoint its
    # request without FastAPI's per-parameter machinery (measured: that machinery cost
    # more than the order's own trip through backend and shard).
    async def post_order(request: Request):
        key = await checked_body(request)
        order = await parsed(request, NewOrderIn)
        row = {
            "account": order.account,
            "order_id": order.order_id or 0,
            "price": NO_PRICE if order.price is None else order.price,
            "qty": order.qty,
            "action": Action.NEW,
            "side": SIDE_CODES[order.side],
            "type": TYPE_CODES[order.type],
        }
        return await one(key, order.symbol, row)

    raw_post(
        "/v1/orders",
        post_order,
        OrderOut,
        "Enter one order; the answer holds its execution reports.",
        documented(NewOrderIn),
    )

    # Taken raw too: FastAPI's parameter machinery (query, header, a body model parsed
    # from a dict) cost more than the rest of a one-order batch's trip (measured).
    async def post_batch(request: Request):
        key = await checked_body(request)
        client = _client_of(request.scope["query_string"])
        batch = await parsed(request, BatchIn)
        if len(batch.orders) > limits.max_batch:
            raise HTTPException(413, f"a batch holds at most {limits.max_batch} orders")
        gateway.accounts_of(key)  # 401 before anything else is looked at
        try:
            orders = orders_to_array(batch.orders, gateway.symbol_index)
        except KeyError as exc:
            raise HTTPException(422, f"unknown symbol {exc.args[0]!r}") from None
        gateway.check_accounts(key, orders["account"])
        gateway.assign_ids(orders)
        reports = await gateway.submit(orders, client)
        return _raw_json({"count": len(reports), "reports": reports_to_columns(reports)})

    raw_post(
        "/v1/orders/batch",
        post_batch,
        BatchOut,
        "Enter many orders (NEW, CANCEL or MODIFY); reports come back as columns.",
        documented(BatchIn, _CLIENT_PARAMETER),
    )

    @app.delete("/v1/orders/{symbol}/{order_id}", response_model=OrderOut, responses=_ERRORS)
    async def cancel_order(
        symbol: str,
        order_id: int,
        account: int = Query(..., ge=1, le=(1 << 31) - 1, description="The order's account."),
        x_api_key: str | None = Header(None),
    ):
        _check_id(order_id)
        row = {"account": account, "order_id": order_id, "action": Action.CANCEL}
        return await one(x_api_key, symbol, row)

    @app.patch(
        "/v1/orders/{symbol}/{order_id}",
        response_model=OrderOut,
        responses=_ERRORS,
        dependencies=[Depends(checked_body)],
    )
    async def modify_order(
        symbol: str, order_id: int, change: ModifyIn, x_api_key: str | None = Header(None)
    ):
        _check_id(order_id)
        row = {
            "account": change.account,
            "order_id": order_id,
            "action": Action.MODIFY,
            "qty": change.qty,
            "price": NO_PRICE if change.price is None else change.price,
        }
        return await one(x_api_key, symbol, row)

    @app.get("/v1/orders/{symbol}/{order_id}", response_model=OrderState, responses=_ERRORS)
    async def get_order(symbol: str, order_id: int, x_api_key: str | None = Header(None)):
        allowed = gateway.accounts_of(x_api_key)
        _check_id(order_id)
        found = await gateway.order(symbol_of(symbol), order_id)
        if found is None or (allowed is not None and found.get("account") not in allowed):
            raise HTTPException(404, "no such order resting (filled, cancelled or unknown)")
        side = found.get("side")
        state = OrderState(
            symbol=symbol,
            order_id=order_id,
            status=found.get("status", "resting"),
            side=side_name(side) if isinstance(side, int) else side,
            price=found.get("price"),
            leaves=found.get("leaves"),
            account=found.get("account"),
        )
        return _json(state)

    @app.get("/v1/book/{symbol}", response_model=BookOut, responses=_ERRORS)
    async def get_book(
        symbol: str,
        depth: int = Query(10, ge=1, le=1000),
        x_api_key: str | None = Header(None),
    ):
        gateway.accounts_of(x_api_key)
        levels = await gateway.book(symbol_of(symbol), depth)
        return _json(BookOut(symbol=symbol, **levels))

    @app.get("/v1/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "backend": gateway.backend_id}

    # The router tries each route in turn, FastAPI's documentation pages first: the
    # order endpoints go to the front.
    hot = [route for route in app.router.routes if isinstance(route, _RequestRoute)]
    app.router.routes[:] = hot + [route for route in app.router.routes if route not in hot]
    return app


def _json(body, status: int = 200) -> Response:
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


def _raw_json(body: dict) -> Response:
    """A hot path's answer, encoded by orjson (what its documented model would give)."""
    return Response(orjson.dumps(body), media_type="application/json")


#: The order fields of ``ORDER_DTYPE`` that a gateway sets, in its order.
def _order_row(symbol, account, order_id, action, price=0, qty=0, side=0, type=0) -> tuple:
    return (0, order_id, account, price, qty, symbol, action, side, type, 0, 0)


assert ORDER_DTYPE.names == (
    "seq", "order_id", "account", "price", "qty", "symbol", "action", "side", "type", "_pad",
    "send_ns",
)  # fmt: skip

_MAX_CLIENT = 1 << 20
_KEY_PARAMETER = {
    "name": "x-api-key",
    "in": "header",
    "required": False,
    "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "X-Api-Key"},
}
_CLIENT_PARAMETER = {
    "name": "client",
    "in": "query",
    "required": False,
    "description": "A load generator's id.",
    "schema": {
        "anyOf": [{"type": "integer", "minimum": 0, "maximum": _MAX_CLIENT}, {"type": "null"}],
        "title": "Client",
    },
}


def _client_of(query: bytes) -> int | None:
    """The ``client`` query parameter; 422 unless it is an integer in 0 .. 2**20."""
    if not query:
        return None
    text = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)).get("client")
    if text is None:
        return None
    value = text.strip()
    if value.lstrip("-").isdigit() and 0 <= int(value) <= _MAX_CLIENT:
        return int(value)
    raise HTTPException(422, f"client must be an integer in 0 .. {_MAX_CLIENT}")


def _check_id(order_id: int) -> None:
    if not 1 <= order_id < (1 << 62):
        raise HTTPException(422, "order_id must lie in 1 .. 2**62 - 1")
