"""The gateway's request and response bodies, and their conversion to and from arrays.

An order's JSON uses the names of the replay CSV (:mod:`lab.replay.orders_csv`
reads the same words): ``symbol`` by name, ``side`` ``B`` or ``S``, ``type``
``LIMIT``, ``MARKET``, ``IOC`` or ``FOK``, ``price`` in ticks, ``qty``,
``account`` and an optional client ``order_id``. Integers are bounded where
the engine's fields are, so an overflow is a 422, never a wrapped number.

A batch's reports come back as columns (one list per report field), which a
client turns back into an array in one pass per field instead of one object
per report.
"""

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from actors.wire import MAKER_DONE, ORDER_DTYPE
from engine.messages import NO_PRICE, REPORT_DTYPE, Action, OrderType, Reason, ReportKind, Side

__all__ = [
    "OrderIn",
    "NewOrderIn",
    "BatchIn",
    "ModifyIn",
    "ReportOut",
    "OrderOut",
    "BatchOut",
    "BookOut",
    "ErrorOut",
    "OrderState",
    "orders_to_array",
    "reports_to_dicts",
    "reports_to_columns",
    "columns_to_reports",
    "SIDE_CODES",
    "TYPE_CODES",
    "KIND_NAMES",
]

_MAX_ID = (1 << 62) - 1
_MAX_QTY = (1 << 31) - 1
OrderId = Annotated[int, Field(ge=1, le=_MAX_ID)]
Price = Annotated[int, Field(ge=1, le=_MAX_ID, description="Price in ticks.")]
Qty = Annotated[int, Field(ge=1, le=_MAX_QTY)]
Account = Annotated[int, Field(ge=1, le=_MAX_QTY)]

ACTION_CODES = {"NEW": Action.NEW, "CANCEL": Action.CANCEL, "MODIFY": Action.MODIFY}
SIDE_CODES = {"B": Side.BUY, "S": Side.SELL}
TYPE_CODES = {
    "LIMIT": OrderType.LIMIT,
    "MARKET": OrderType.MARKET,
    "IOC": OrderType.IOC,
    "FOK": OrderType.FOK,
}
KIND_NAMES = {
    code: name
    for name, code in vars(ReportKind).items()
    if name.isupper() and isinstance(code, int)
}
KIND_NAMES[MAKER_DONE] = "MAKER_DONE"
#: The words of the codes, as an order's JSON spells them.
ACTION_NAMES = {code: name for name, code in ACTION_CODES.items()}
SIDE_NAMES = {code: name for name, code in SIDE_CODES.items()}
TYPE_NAMES = {code: name for name, code in TYPE_CODES.items()}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderIn(_Body):
    """One order; a batch's entries may also cancel or modify (``action``)."""

    symbol: str = Field(max_length=64)
    side: Literal["B", "S"] | None = None
    type: Literal["LIMIT", "MARKET", "IOC", "FOK"] = "LIMIT"
    price: Price | None = None
    qty: Qty | None = None
    account: Account
    order_id: OrderId | None = Field(None, description="Assigned by the gateway if left out.")
    action: Literal["NEW", "CANCEL", "MODIFY"] = "NEW"


class NewOrderIn(_Body):
    """``POST /v1/orders``: one NEW order."""

    symbol: str = Field(max_length=64)
    side: Literal["B", "S"]
    type: Literal["LIMIT", "MARKET", "IOC", "FOK"] = "LIMIT"
    price: Price | None = Field(None, description="Left out for a MARKET order.")
    qty: Qty
    account: Account
    order_id: OrderId | None = Field(None, description="Assigned by the gateway if left out.")


class BatchIn(_Body):
    orders: list[OrderIn]


class ModifyIn(_Body):
    qty: Qty
    price: Price | None = Field(None, description="Left out: the order keeps its price.")
    account: Account


class ReportOut(BaseModel):
    kind: str
    order_id: int
    account: int
    symbol: str
    price: int
    qty: int
    leaves: int
    reason: str | None = None
    maker_id: int | None = None
    maker_account: int | None = None


class OrderOut(BaseModel):
    order_id: int
    reports: list[ReportOut]


class BatchOut(BaseModel):
    count: int = Field(description="Reports in the batch's answer.")
    reports: dict[str, list[int]] = Field(
        description="One list per report field (see engine.REPORT_DTYPE), one entry per report."
    )


class ErrorOut(BaseModel):
    detail: str | list[dict[str, Any]]


class BookLevel(BaseModel):
    price: int
    qty: int
    orders: int


class BookOut(BaseModel):
    symbol: str
    bids: list[BookLevel]
    asks: list[BookLevel]


class OrderState(BaseModel):
    symbol: str
    order_id: int
    status: str
    side: str | None = None
    price: int | None = None
    leaves: int | None = None
    account: int | None = None


def orders_to_array(orders: list[OrderIn], symbol_index: dict[str, int]) -> np.ndarray:
    """The ORDER_DTYPE array of validated orders; ``KeyError`` names an unknown symbol."""
    out = np.zeros(len(orders), dtype=ORDER_DTYPE)
    out["seq"] = np.arange(len(orders))
    out["symbol"] = [symbol_index[o.symbol] for o in orders]
    out["account"] = [o.account for o in orders]
    out["order_id"] = [o.order_id or 0 for o in orders]
    out["price"] = [NO_PRICE if o.price is None else o.price for o in orders]
    out["qty"] = [o.qty or 0 for o in orders]
    out["action"] = [ACTION_CODES[o.action] for o in orders]
    out["side"] = [SIDE_CODES[o.side] if o.side else 0 for o in orders]
    out["type"] = [TYPE_CODES[o.type] for o in orders]
    return out


def reports_to_dicts(reports: np.ndarray, symbols: list[str]) -> list[dict]:
    """One :class:`ReportOut` as a plain dict per report (the per-order answer, for orjson)."""
    out = []
    n_symbols = len(symbols)
    for row in reports.tolist():
        _, order_id, account, maker_id, maker_account, price, qty, leaves = row[:8]
        symbol, kind, reason = row[9:12]
        fill = kind == ReportKind.FILL
        out.append(
            {
                "kind": KIND_NAMES.get(kind, str(kind)),
                "order_id": order_id,
                "account": account,
                "symbol": symbols[symbol] if 0 <= symbol < n_symbols else "",
                "price": price,
                "qty": qty,
                "leaves": leaves,
                "reason": Reason.name_of(reason) if reason else None,
                "maker_id": maker_id if fill else None,
                "maker_account": maker_account if fill else None,
            }
        )
    return out


assert REPORT_DTYPE.names[:12] == (
    "seq", "order_id", "account", "maker_id", "maker_account", "price", "qty", "leaves",
    "maker_leaves", "symbol", "kind", "reason",
)  # fmt: skip


def reports_to_columns(reports: np.ndarray) -> dict[str, list[int]]:
    return {name: reports[name].tolist() for name in REPORT_DTYPE.names if name != "_pad"}


def columns_to_reports(columns: dict[str, list[int]]) -> np.ndarray:
    """The REPORT_DTYPE array of a batch answer's columns."""
    n = len(columns.get("kind", ()))
    out = np.zeros(n, dtype=REPORT_DTYPE)
    for name, values in columns.items():
        if name in REPORT_DTYPE.names:
            out[name] = values
    return out


def side_name(code: int) -> str | None:
    return SIDE_NAMES.get(int(code))
