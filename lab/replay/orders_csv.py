"""ORDERS.csv, the input of ``lab replay`` and the journal of an engine shard: read and write.

ORDERS.csv has a header row naming at least the columns
``seq,action,order_id,account,symbol,side,type,price,qty`` (any order; other
columns are ignored). Fields are stripped of surrounding whitespace and may be
quoted as in RFC 4180; blank lines are skipped.

- ``action`` is NEW, CANCEL or MODIFY; ``side`` is B or S (BUY and SELL are read
  too; B and S are written) and ``type`` is LIMIT,
  MARKET, IOC or FOK (both read for NEW only). Any other text is encoded as 0,
  so the engine rejects the message (BAD_ACTION, BAD_SIDE, BAD_TYPE).
- ``seq``, ``order_id``, ``account``, ``price`` and ``qty`` are decimal int64s.
  An empty ``price`` means "no price" (MARKET, CANCEL; MODIFY keeps its price);
  an empty ``qty`` is 0 and allowed except on NEW and MODIFY; an empty
  ``account`` is 0 and allowed except on NEW. A CANCEL or MODIFY must name the
  order's own account: the engine rejects any other (``NOT_OWNER``).
- Symbols are names; the sorted unique names become engine indices 0..n-1.

A row that breaks these rules raises :class:`~lab.errors.InputError` naming the
file and line.

Reading has two paths with one result: a vectorised one over the raw bytes for
plain files (what the lab's own tools write), and a row-by-row one with the
:mod:`csv` module for everything else (quotes, spaces, blank lines, errors),
which is also the reference the tests hold the fast path to.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine import MESSAGE_DTYPE, NO_PRICE, Action, OrderType, Side
from lab.errors import InputError
from lab.replay.csv_format import codes_text, csv_text, ints_text, names_text, write_atomically

__all__ = [
    "ORDER_COLUMNS",
    "ACTIONS",
    "SIDES",
    "TYPES",
    "read_orders_csv",
    "write_orders_csv",
]

#: Columns ORDERS.csv must have; ``write_orders_csv`` writes exactly these, in this order.
ORDER_COLUMNS = ("seq", "action", "order_id", "account", "symbol", "side", "type", "price", "qty")
#: The words of the ``action``, ``side`` and ``type`` columns and their engine codes.
ACTIONS = {"NEW": Action.NEW, "CANCEL": Action.CANCEL, "MODIFY": Action.MODIFY}
SIDES = {"B": Side.BUY, "S": Side.SELL}
#: The words read as a side: SIDES, and the words spelt out.
SIDE_WORDS = {**SIDES, "BUY": Side.BUY, "SELL": Side.SELL}
TYPES = {
    "LIMIT": OrderType.LIMIT,
    "MARKET": OrderType.MARKET,
    "IOC": OrderType.IOC,
    "FOK": OrderType.FOK,
}
_INTEGER = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


# -- reading -------------------------------------------------------------------


def read_orders_csv(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Parse ORDERS.csv into ``(messages, symbols)``; ``messages["symbol"]`` indexes ``symbols``.

    ``symbols`` is sorted, so index order is name order. Raises ``InputError``
    (file and line named) on a malformed file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\r\n" in data:
        data = data.replace(b"\r\n", b"\n")
    end = data.find(b"\n")
    header_bytes = data if end < 0 else data[:end]
    if b'"' not in data and header_bytes.strip():
        header = header_bytes.decode("utf-8", "replace").split(",")
        columns = _locate_columns(path, 1, header)
        body = b"" if end < 0 else data[end + 1 :]
        parsed = _read_fast(body, columns, len(header_bytes.split(b",")))
        if parsed is not None:
            return parsed
    return _read_slow(path, data)


def _locate_columns(path: Path, line: int, header: list[str]) -> dict[str, int]:
    names = [name.strip().lower() for name in header]
    for name in ORDER_COLUMNS:
        if names.count(name) > 1:
            raise InputError(f"{path}: line {line}: column {name!r} appears more than once")
    missing = [name for name in ORDER_COLUMNS if name not in names]
    if missing:
        raise InputError(
            f"{path}: line {line}: header lacks column(s) {', '.join(missing)} "
            f"(needs {','.join(ORDER_COLUMNS)})"
        )
    return {name: names.index(name) for name in ORDER_COLUMNS}


def _assemble(*columns) -> np.ndarray:
    """Messages from the columns of ORDER_COLUMNS, in that order (symbol as indices)."""
    messages = np.zeros(len(columns[0]), dtype=MESSAGE_DTYPE)
    for name, values in zip(ORDER_COLUMNS, columns, strict=True):
        messages[name] = values
    # CANCEL and MODIFY ignore whatever side and type the row gives.
    not_new = (messages["action"] == Action.CANCEL) | (messages["action"] == Action.MODIFY)
    messages["side"][not_new] = 0
    messages["type"][not_new] = 0
    return messages


def _symbol_indices(raw_names: Sequence[str], inverse: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Map each row's name (``raw_names[inverse]``) to its index among the sorted stripped names."""
    stripped = [name.strip() for name in raw_names]
    symbols = sorted(set(stripped))
    index = {name: i for i, name in enumerate(symbols)}
    lookup = np.array([index[name] for name in stripped], dtype=np.int32)
    return lookup[inverse], symbols


def _read_slow(path: Path, data: bytes) -> tuple[np.ndarray, list[str]]:
    """Row by row with the csv module: any valid file, and the exact error for an invalid one."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{path}: line {line}: not valid UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    cols: dict[str, list] = {name: [] for name in ORDER_COLUMNS}
    where = None
    line = 1
    try:
        for row in reader:
            row_line, line = line, reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if where is None:
                where = _locate_columns(path, row_line, row)
                width = len(row)
                continue
            if len(row) != width:
                raise InputError(
                    f"{path}: line {row_line}: {len(row)} columns, the header has {width}"
                )
            _parse_row(path, row_line, [row[where[name]].strip() for name in ORDER_COLUMNS], cols)
    except csv.Error as exc:
        raise InputError(f"{path}: line {reader.line_num}: {exc}") from None
    if where is None:
        raise InputError(f"{path}: line 1: empty file, expected a header row")
    symbol, symbols = _symbol_indices(*_unique(cols["symbol"]))
    cols["symbol"] = symbol
    return _assemble(*(cols[name] for name in ORDER_COLUMNS)), symbols


def _unique(names: list[str]) -> tuple[list[str], np.ndarray]:
    first = {}
    inverse = np.fromiter((first.setdefault(n, len(first)) for n in names), np.int64, len(names))
    return list(first), inverse


def _parse_row(path: Path, line: int, fields: list[str], cols: dict[str, list]) -> None:
    seq, action, order_id, account, symbol, side, otype, price, qty = fields

    def integer(name: str, text: str) -> int:
        if not _INTEGER.fullmatch(text):
            what = "is empty" if not text else f"{text!r} is not an integer"
            raise InputError(f"{path}: line {line}: {name} {what}")
        value = int(text)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise InputError(f"{path}: line {line}: {name} {text} is out of the int64 range")
        return value

    code = ACTIONS.get(action, 0)
    cols["seq"].append(integer("seq", seq))
    cols["action"].append(code)
    cols["order_id"].append(integer("order_id", order_id))
    if not account and code != Action.NEW:
        cols["account"].append(0)
    else:
        cols["account"].append(integer("account", account))
    cols["symbol"].append(symbol)
    cols["side"].append(SIDE_WORDS.get(side, 0))
    cols["type"].append(TYPES.get(otype, 0))
    cols["price"].append(integer("price", price) if price else NO_PRICE)
    if not qty and code not in (Action.NEW, Action.MODIFY):
        cols["qty"].append(0)
    else:
        cols["qty"].append(integer("qty", qty))


def _read_fast(body: bytes, where: dict[str, int], width: int):
    """Vectorised parse of a plain file body; ``None`` when it needs the row-by-row path.

    Plain means: no quotes, spaces, tabs, carriage returns, NUL bytes or blank
    lines, exactly ``width`` fields per line, integers of at most 18 digits,
    symbols of at most 64 bytes, and no empty field where one is not allowed.
    """
    if body and not body.endswith(b"\n"):
        body += b"\n"
    if (
        any(c in body for c in (b" ", b"\t", b"\r", b"\0", b"\n\n"))
        or body.startswith(b"\n")
        or width < 2
    ):
        return None
    # NUL padding on both sides lets fixed-width windows start before or run past any field.
    buf = np.zeros(len(body) + 2 * _PAD, dtype=np.uint8)
    buf[_PAD : _PAD + len(body)] = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(buf == ord("\n"))
    commas = np.flatnonzero(buf == ord(","))
    n = len(ends)
    if len(commas) != n * (width - 1):
        return None
    commas = commas.reshape(n, width - 1)
    starts = np.full(n, _PAD, dtype=np.int64)
    starts[1:] = ends[:-1] + 1
    # With the total right, each line has width-1 commas iff its first and last are inside it.
    if n and ((commas[:, 0] < starts).any() or (commas[:, -1] > ends).any()):
        return None

    def field(name: str) -> tuple[np.ndarray, np.ndarray]:
        k = where[name]
        lo = starts if k == 0 else commas[:, k - 1] + 1
        hi = ends if k == width - 1 else commas[:, k]
        return lo, hi

    ints = {}
    for name in ("seq", "order_id", "account", "price", "qty"):
        parsed = _fast_ints(buf, *field(name))
        if parsed is None:
            return None
        ints[name] = parsed
    action = _fast_codes(buf, *field("action"), ACTIONS)
    is_new = action == Action.NEW
    if ints["seq"][1].any() or ints["order_id"][1].any():
        return None
    if (ints["account"][1] & is_new).any():
        return None
    if (ints["qty"][1] & (is_new | (action == Action.MODIFY))).any():
        return None
    price, price_empty = ints["price"]
    price[price_empty] = NO_PRICE
    texts = _fast_texts(buf, *field("symbol"))
    if texts is None:
        return None
    symbol, symbols = _symbol_indices(*texts)
    messages = _assemble(
        ints["seq"][0],
        action,
        ints["order_id"][0],
        ints["account"][0],
        symbol,
        _fast_codes(buf, *field("side"), SIDE_WORDS),
        _fast_codes(buf, *field("type"), TYPES),
        price,
        ints["qty"][0],
    )
    return messages, symbols


_PAD = 80
#: ``_BYTE_MASKS[k]`` keeps the first k bytes of an 8-byte word (in memory order).
_BYTE_MASKS = np.frombuffer(
    b"".join(b"\xff" * k + b"\0" * (8 - k) for k in range(9)), dtype=np.uint64
)


def _windows(buf: np.ndarray, width: int) -> np.ndarray:
    """A read-only view whose row ``p`` is ``buf[p : p + width]``."""
    shape, strides = (len(buf) - width + 1, width), (buf.strides[0], buf.strides[0])
    return np.lib.stride_tricks.as_strided(buf, shape, strides, writeable=False)


def _fast_ints(buf: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Fields ``buf[lo:hi]`` as int64 (empty -> 0) and an empty mask; ``None`` if any is odd."""
    length = hi - lo
    empty = length == 0
    negative = (buf[lo] == ord("-")) & ~empty
    digits = length - negative
    if (digits[~empty] < 1).any():
        return None
    span = int(digits.max(initial=0))
    if span > 18:  # 18 digits always fit in int64; longer ones go the checked way
        return None
    values = np.zeros(len(lo), dtype=np.int64)
    if span:
        # Each field's last `span` bytes, its digits right-aligned; bytes below '0' wrap past 9.
        window = _windows(buf, span)[hi - span] - np.uint8(ord("0"))
        window *= np.arange(span)[None, :] >= (span - digits)[:, None]
        if (window > 9).any():
            return None
        values = window @ (10 ** np.arange(span - 1, -1, -1, dtype=np.int64))
        values[negative] *= -1
    return values, empty


def _words(buf: np.ndarray, lo: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each field ``buf[lo : lo + length]`` as NUL-padded uint64 keys."""
    raw = _windows(buf, 8)[lo]
    return raw.view(np.uint64).ravel() & _BYTE_MASKS[np.clip(length, 0, 8)]


def _fast_codes(buf: np.ndarray, lo: np.ndarray, hi: np.ndarray, vocab: dict[str, int]):
    """Codes of the text fields ``buf[lo:hi]`` by exact match in ``vocab``; 0 for others."""
    length = hi - lo
    keys = _words(buf, lo, length)
    codes = np.zeros(len(lo), dtype=np.int8)
    for word, code in vocab.items():
        key = np.frombuffer(word.encode().ljust(8, b"\0"), dtype=np.uint64)[0]
        codes[(keys == key) & (length == len(word))] = code
    return codes


def _fast_texts(buf: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """``(unique names, inverse)`` of the text fields ``buf[lo:hi]``; ``None`` if odd."""
    length = hi - lo
    chunks = -(-max(int(length.max(initial=0)), 1) // 8)
    if chunks * 8 > 64:
        return None
    keys = np.stack([_words(buf, lo + 8 * j, length - 8 * j) for j in range(chunks)], axis=1)
    keys = keys.ravel() if chunks == 1 else keys.view(f"S{8 * chunks}").ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    try:
        names = [buf[lo[i] : hi[i]].tobytes().decode("utf-8") for i in first.tolist()]
    except UnicodeDecodeError:
        return None
    return names, inverse.ravel()


# -- writing -------------------------------------------------------------------


def write_orders_csv(path: str | os.PathLike, messages: np.ndarray, symbols: Sequence[str]) -> None:
    """Write messages as ORDERS.csv (the inverse of :func:`read_orders_csv`).

    ``messages["symbol"]`` indexes ``symbols``. Reading the file back gives the
    same messages, except that side and type of CANCEL/MODIFY become 0 and an
    unknown action/side/type code (written as its number) becomes 0; symbol
    indices survive when ``symbols`` is sorted and every symbol is used.
    """
    messages = np.asarray(messages)
    sym = messages["symbol"]
    if len(sym) and (sym.min() < 0 or sym.max() >= len(symbols)):
        raise ValueError(f"message symbol index outside 0..{len(symbols) - 1}")
    action = messages["action"]
    not_new = (action == Action.CANCEL) | (action == Action.MODIFY)
    price = messages["price"]
    columns = [
        ints_text(messages["seq"]),
        codes_text(action, ACTIONS),
        ints_text(messages["order_id"]),
        ints_text(messages["account"]),
        names_text(sym, symbols),
        codes_text(np.where(not_new, -1, messages["side"]), SIDES),
        codes_text(np.where(not_new, -1, messages["type"]), TYPES),
        ints_text(price, empty=price == NO_PRICE),
        ints_text(messages["qty"]),
    ]
    write_atomically({Path(path): csv_text(ORDER_COLUMNS, columns)})
