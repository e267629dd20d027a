"""``OrderCache``: each order's current state in Redis, and the top of book per symbol.

Layout, under a per-run prefix (for example ``lab:<run_id>:``):

* ``<prefix>order:<symbol>:<order_id>``: a hash per order with ``status``
  (``open``, ``filled``, ``canceled``, ``expired`` or ``rejected``; a modified
  order is ``open``), ``leaves``, ``price`` (absent for a market order),
  ``qty``, ``side`` (engine code, 1 buy, 2 sell), ``account`` and ``symbol``.
  A maker filled in a batch whose taker's backend never saw the maker's own
  ACK holds only ``status`` and ``leaves``.
* ``<prefix>top:<symbol>``: a channel; after a batch, one JSON message per
  symbol the batch touched: ``{"symbol", "bid", "bid_qty", "ask", "ask_qty",
  "seq"}`` (``null`` price and 0 qty for an empty side). Backends publish
  independently, so a subscriber keeps the top with the highest ``seq``.

Expiry: every write sets the hash's TTL to ``ttl_s`` again (a day by default),
so an order's key lives ``ttl_s`` after its last change and a run's keys go
away by themselves; :meth:`OrderCache.delete_all` removes them at once.

Why a server-side script rather than an HSET and an EXPIRE per order in a
pipeline: with redis-py (no hiredis here) packing 2 commands and parsing 2
replies per order costs about 30 us an order on the client, which caps a
backend near 30k orders/s; one script call per 1,024 orders carrying the
batch as a NumPy-built byte string costs the client almost nothing and the
server about 5 us an order (figures: /work/figs/stores.md). The script calls,
and the PUBLISHes of the tops, still go in one pipeline, one round trip per
batch. Each script call is atomic: a reader sees a chunk's states all old or
all new. The script names keys it was not given as KEYS, which standalone
Redis allows and Redis Cluster would not.
"""

import json

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from engine.book import TOP_DTYPE
from engine.messages import MESSAGE_DTYPE, NO_PRICE, REPORT_DTYPE, Action, Reason, ReportKind

__all__ = ["OrderCache", "TOP_DTYPE", "STATUSES", "order_updates"]

#: Status words, indexed by the codes the script receives (1-based in Lua).
STATUSES = ("open", "filled", "canceled", "expired", "rejected")
_OPEN, _FILLED, _CANCELED, _EXPIRED, _REJECTED = range(5)

# What a state update writes: status and leaves; also price and qty (a
# modify); every field (an ACK); every field but only into a key that does not
# exist yet (a rejected NEW: its id may belong to another, live order).
_STATUS, _PRICED, _FULL, _REJECT = 0, 1, 2, 3

_DIGITS = 20  # int64 as decimal text: sign and 19 digits
# One order's update as the script reads it: small fields, the lengths of
# the decimal fields, then the decimal fields right-aligned in 20 bytes each.
# Decimal text, not int64, because Lua numbers are doubles (exact to 2**53).
_NUMBERS = ("order_id", "account", "price", "qty", "leaves")
_RECORD = np.dtype(
    [("symbol", "<i4"), ("level", "u1"), ("status", "u1"), ("side", "u1")]
    + [(f"n_{name}", "u1") for name in _NUMBERS]
    + [(name, f"S{_DIGITS}") for name in _NUMBERS]
)
_LUA_FORMAT = "<i4BBB" + "B" * len(_NUMBERS) + f"c{_DIGITS}" * len(_NUMBERS)

# ARGV: key prefix, TTL in seconds, records. Returns the records applied.
_SCRIPT = f"""
local prefix, ttl, blob = ARGV[1], ARGV[2], ARGV[3]
local status_of = {{'open', 'filled', 'canceled', 'expired', 'rejected'}}
local pos, n = 1, 0
local sym, level, st, side, lo, la, lp, lq, ll, o, a, p, q, l
while pos < #blob do
  sym, level, st, side, lo, la, lp, lq, ll, o, a, p, q, l, pos =
    struct.unpack('{_LUA_FORMAT}', blob, pos)
  local key = prefix .. 'order:' .. sym .. ':' .. string.sub(o, {_DIGITS + 1} - lo)
  local fields = {{'status', status_of[st + 1], 'leaves', string.sub(l, {_DIGITS + 1} - ll)}}
  if level >= {_PRICED} then
    table.insert(fields, 'qty')
    table.insert(fields, string.sub(q, {_DIGITS + 1} - lq))
    if lp > 0 then
      table.insert(fields, 'price')
      table.insert(fields, string.sub(p, {_DIGITS + 1} - lp))
    end
  end
  if level >= {_FULL} then
    table.insert(fields, 'side')
    table.insert(fields, side)
    table.insert(fields, 'account')
    table.insert(fields, string.sub(a, {_DIGITS + 1} - la))
    table.insert(fields, 'symbol')
    table.insert(fields, sym)
  end
  if level ~= {_REJECT} or redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, unpack(fields))
    redis.call('EXPIRE', key, ttl)
    n = n + 1
  end
end
return n
"""

#: Orders per script call: a call blocks Redis while it runs (about 5 ms per 1,024).
SCRIPT_CHUNK = 1024


class OrderCache:
    """Order states and top-of-book messages of one run, under ``prefix``."""

    def __init__(self, url: str, prefix: str, ttl_s: int = 86_400):
        if not prefix:
            raise ValueError("a prefix is needed: it is what keeps runs apart")
        if int(ttl_s) < 1:
            raise ValueError("ttl_s must be at least 1 second")
        self.prefix = prefix
        self.ttl_s = int(ttl_s)
        self.redis = aioredis.Redis.from_url(url)
        self._sha: str | None = None

    async def record(
        self, messages: np.ndarray, reports: np.ndarray, tops: np.ndarray | None = None
    ) -> int:
        """Bring the states of the orders a batch touched up to date; returns how many.

        ``messages``: the batch's ``MESSAGE_DTYPE`` messages (at least those
        sent to the engine: a REJECT is recorded only for a NEW found here by
        ``seq``, so pass the risk-rejected ones too to record those);
        ``reports``: every report of the batch, in the order the engine made
        them. ``tops`` (``TOP_DTYPE``), if given, is published in the same
        round trip (see :meth:`publish_top`).
        """
        records = order_updates(messages, reports)
        pipe = self.redis.pipeline(transaction=False)
        chunks = [records[lo : lo + SCRIPT_CHUNK] for lo in range(0, len(records), SCRIPT_CHUNK)]
        sha = await self._script()
        for chunk in chunks:
            pipe.evalsha(sha, 0, self.prefix, self.ttl_s, chunk.tobytes())
        if tops is not None:
            self._publish(pipe, tops)
        if not len(pipe):
            return 0
        results = await pipe.execute(raise_on_error=False)
        applied = 0
        for k, result in enumerate(results[: len(chunks)]):
            if isinstance(result, NoScriptError):
                # The server lost its scripts (restart, SCRIPT FLUSH): the call did
                # nothing, so loading the script and calling again is safe.
                self._sha = None
                result = await self.redis.evalsha(
                    await self._script(), 0, self.prefix, self.ttl_s, chunks[k].tobytes()
                )
            if isinstance(result, Exception):
                raise result
            applied += int(result)
        for result in results[len(chunks) :]:
            if isinstance(result, Exception):
                raise result
        return applied

    async def publish_top(self, tops: np.ndarray) -> None:
        """Publish each row of ``tops`` (``TOP_DTYPE``) on ``<prefix>top:<symbol>``."""
        pipe = self.redis.pipeline(transaction=False)
        self._publish(pipe, tops)
        await pipe.execute()

    async def get_order(self, symbol: int, order_id: int) -> dict | None:
        """The state of an order, or None if the cache holds none (never seen, or expired)."""
        raw = await self.redis.hgetall(self.order_key(symbol, order_id))
        if not raw:
            return None
        state = {key.decode(): value.decode() for key, value in raw.items()}
        out = {"symbol": int(symbol), "order_id": int(order_id), "status": state.pop("status")}
        out.update({key: int(value) for key, value in state.items()})
        out.setdefault("price", None)
        return out

    def order_key(self, symbol: int, order_id: int) -> str:
        return f"{self.prefix}order:{int(symbol)}:{int(order_id)}"

    def top_channel(self, symbol: int) -> str:
        return f"{self.prefix}top:{int(symbol)}"

    async def delete_all(self) -> int:
        """Remove every key under this cache's prefix (a run's teardown); returns how many."""
        deleted = 0
        batch = []
        async for key in self.redis.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await self.redis.unlink(*batch)
                batch = []
        if batch:
            deleted += await self.redis.unlink(*batch)
        return deleted

    async def close(self) -> None:
        await self.redis.aclose()

    async def _script(self) -> str:
        if self._sha is None:
            self._sha = await self.redis.script_load(_SCRIPT)
        return self._sha

    def _publish(self, pipe, tops: np.ndarray) -> None:
        if not isinstance(tops, np.ndarray) or tops.dtype != TOP_DTYPE:
            raise TypeError("tops must be a NumPy array of TOP_DTYPE")
        for row in tops.tolist():  # a few symbols per batch
            symbol, bid, bid_qty, ask, ask_qty, seq = row
            message = {
                "symbol": symbol,
                "bid": None if bid == NO_PRICE else bid,
                "bid_qty": bid_qty,
                "ask": None if ask == NO_PRICE else ask,
                "ask_qty": ask_qty,
                "seq": seq,
            }
            pipe.publish(self.top_channel(symbol), json.dumps(message))


def order_updates(messages: np.ndarray, reports: np.ndarray) -> np.ndarray:
    """The script's records: each order's state after the batch, one record per order.

    Every report becomes an event for its order (a FILL also one for its
    maker), in report order; an order's last event gives its status and
    leaves, its last ACK or MODIFIED its price and qty, and its ACK the
    rest. A REJECT counts only for a NEW (its message found by ``seq``),
    not for a duplicate id, and only where the batch has nothing else for
    that id.
    """
    if not isinstance(messages, np.ndarray) or messages.dtype != MESSAGE_DTYPE:
        raise TypeError("messages must be a NumPy array of MESSAGE_DTYPE")
    if not isinstance(reports, np.ndarray) or reports.dtype != REPORT_DTYPE:
        raise TypeError("reports must be a NumPy array of REPORT_DTYPE")
    kind = reports["kind"]
    n = len(reports)
    status = np.full(n, -1, np.int8)  # -1: the report says nothing about its order
    level = np.full(n, _STATUS, np.uint8)
    status[kind == ReportKind.ACK] = _OPEN
    status[kind == ReportKind.MODIFIED] = _OPEN
    status[kind == ReportKind.CANCELED] = _CANCELED
    status[kind == ReportKind.EXPIRED] = _EXPIRED
    fill = kind == ReportKind.FILL
    status[fill] = np.where(reports["leaves"][fill] == 0, _FILLED, _OPEN)
    status[_rejected_news(messages, reports)] = _REJECTED
    level[kind == ReportKind.MODIFIED] = _PRICED
    level[kind == ReportKind.ACK] = _FULL
    level[status == _REJECTED] = _REJECT
    leaves = np.where(status >= _CANCELED, 0, reports["leaves"])  # CANCELED's leaves is 0 too

    # Events: the reports' own orders at even positions, makers at odd ones.
    own = status >= 0
    makers = np.flatnonzero(fill)
    pos = np.concatenate((2 * np.flatnonzero(own), 2 * makers + 1))
    src = np.concatenate((np.flatnonzero(own), makers))
    is_maker = np.zeros(len(pos), bool)
    is_maker[own.sum() :] = True
    if not len(src):
        return np.zeros(0, _RECORD)
    symbol = reports["symbol"][src]
    order_id = np.where(is_maker, reports["maker_id"][src], reports["order_id"][src])
    ev_status = np.where(
        is_maker, np.where(reports["maker_leaves"][src] == 0, _FILLED, _OPEN), status[src]
    )
    ev_leaves = np.where(is_maker, reports["maker_leaves"][src], leaves[src])
    ev_level = np.where(is_maker, _STATUS, level[src]).astype(np.uint8)

    order = np.lexsort((pos, order_id, symbol))
    symbol, order_id, src = symbol[order], order_id[order], src[order]
    ev_status, ev_leaves, ev_level = ev_status[order], ev_leaves[order], ev_level[order]
    first = np.r_[True, (symbol[1:] != symbol[:-1]) | (order_id[1:] != order_id[:-1])]
    starts = np.flatnonzero(first)
    group = np.cumsum(first) - 1
    # A rejected NEW whose id the batch also uses otherwise is not this order's fate.
    others = np.bincount(group, weights=ev_level != _REJECT, minlength=len(starts)) > 0
    keep = (ev_level != _REJECT) | ~others[group]
    if not keep.all():
        symbol, order_id, src = symbol[keep], order_id[keep], src[keep]
        ev_status, ev_leaves, ev_level = ev_status[keep], ev_leaves[keep], ev_level[keep]
        first = np.r_[True, (symbol[1:] != symbol[:-1]) | (order_id[1:] != order_id[:-1])]
        starts = np.flatnonzero(first)
    lasts = np.r_[starts[1:], len(first)] - 1
    # The last event of each order that carries price and qty (and the last with
    # every field): a running maximum of event indices, valid where it is not
    # before its order's first event.
    index = np.arange(len(first))
    priced = np.maximum.accumulate(np.where(ev_level >= _PRICED, index, -1))[lasts]
    full = np.maximum.accumulate(np.where(ev_level >= _FULL, index, -1))[lasts]
    has_price = priced >= starts
    has_all = full >= starts
    out_level = np.where(
        has_all, ev_level[np.maximum(full, 0)], np.where(has_price, _PRICED, _STATUS)
    )
    price_src = src[np.maximum(priced, 0)]
    full_src = src[np.maximum(full, 0)]

    records = np.zeros(len(starts), _RECORD)
    records["symbol"] = symbol[starts]
    records["level"] = out_level
    records["status"] = ev_status[lasts]
    records["side"] = np.where(has_all, reports["side"][full_src], 0)
    price = np.where(has_price, reports["price"][price_src], NO_PRICE)
    columns = {
        "order_id": order_id[starts],
        "account": np.where(has_all, reports["account"][full_src], 0),
        "price": np.where(price == NO_PRICE, 0, price),
        "qty": np.where(has_price, reports["qty"][price_src], 0),
        "leaves": ev_leaves[lasts],
    }
    for name, values in columns.items():
        text, length = _decimal(values)
        records[name] = text
        records[f"n_{name}"] = length
    records["n_price"][price == NO_PRICE] = 0  # market order: no price field
    return records


def _rejected_news(messages: np.ndarray, reports: np.ndarray) -> np.ndarray:
    """Mask of the reports that reject a NEW (other than for a duplicate id)."""
    rejects = np.flatnonzero(
        (reports["kind"] == ReportKind.REJECT) & (reports["reason"] != Reason.DUPLICATE_ORDER_ID)
    )
    out = np.zeros(len(reports), bool)
    if not len(rejects) or not len(messages):
        return out
    by_seq = np.argsort(messages["seq"], kind="stable")
    seqs = messages["seq"][by_seq]
    at = np.minimum(np.searchsorted(seqs, reports["seq"][rejects]), len(seqs) - 1)
    message = by_seq[at]
    found = (seqs[at] == reports["seq"][rejects]) & (
        messages["order_id"][message] == reports["order_id"][rejects]
    )
    out[rejects] = found & (messages["action"][message] == Action.NEW)
    return out


def _decimal(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int64 values as decimal text right-aligned in ``S20`` and their lengths, exactly.

    Only the last ``length`` bytes of each text count. Two digits a pass
    over the whole column, as many passes as the largest value needs:
    ``astype("S20")`` goes through Python objects and is about 7x slower.
    """
    values = np.asarray(values, np.int64)
    magnitude = np.abs(values).astype(np.uint64)  # abs(int64 min) wraps; as uint64 it is right
    length = (1 + np.searchsorted(_POWERS_OF_TEN, magnitude, side="right")).astype(np.uint8)
    out = np.full((len(values), _DIGITS // 2), _PAIRS[0], np.uint16)
    passes = (int(length.max(initial=1)) + 1) // 2
    for column in range(_DIGITS // 2 - 1, _DIGITS // 2 - 1 - passes, -1):
        # NumPy divides by a constant fast (libdivide), but its remainder is slow.
        quotient = magnitude // 100
        out[:, column] = _PAIRS.take((magnitude - quotient * 100).astype(np.intp))
        magnitude = quotient
    text = out.view(np.uint8)
    negative = np.flatnonzero(values < 0)
    text[negative, _DIGITS - 1 - length[negative]] = ord("-")
    length[negative] += 1
    return text.view(f"S{_DIGITS}").ravel(), length


# "00".."99" as little-endian uint16 words, and 10**1..10**19.
_PAIRS = np.frombuffer("".join(f"{k:02d}" for k in range(100)).encode(), np.uint16)
_POWERS_OF_TEN = np.array([10**k for k in range(1, 20)], np.uint64)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
