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

from actors.order_updates import DIGITS, LEVELS, NUMBERS, STATUSES, order_updates
from engine.book import TOP_DTYPE
from engine.messages import NO_PRICE

__all__ = ["OrderCache", "TOP_DTYPE", "STATUSES", "order_updates"]

_LUA_FORMAT = "<i4BBB" + "B" * len(NUMBERS) + f"c{DIGITS}" * len(NUMBERS)

# ARGV: key prefix, TTL in seconds, records. Returns the records applied.
_SCRIPT = f"""
local prefix, ttl, blob = ARGV[1], ARGV[2], ARGV[3]
local status_of = {{'open', 'filled', 'canceled', 'expired', 'rejected'}}
local pos, n = 1, 0
local sym, level, st, side, lo, la, lp, lq, ll, o, a, p, q, l
while pos < #blob do
  sym, level, st, side, lo, la, lp, lq, ll, o, a, p, q, l, pos =
    struct.unpack('{_LUA_FORMAT}', blob, pos)
  local key = prefix .. 'order:' .. sym .. ':' .. string.sub(o, {DIGITS + 1} - lo)
  local fields = {{'status', status_of[st + 1], 'leaves', string.sub(l, {DIGITS + 1} - ll)}}
  local priceless = false
  if level >= {LEVELS["priced"]} then
    table.insert(fields, 'qty')
    table.insert(fields, string.sub(q, {DIGITS + 1} - lq))
    if lp > 0 then
      table.insert(fields, 'price')
      table.insert(fields, string.sub(p, {DIGITS + 1} - lp))
    else
      priceless = true  -- a market order: no price, not even an earlier order's of this id
    end
  end
  if level >= {LEVELS["full"]} then
    table.insert(fields, 'side')
    table.insert(fields, side)
    table.insert(fields, 'account')
    table.insert(fields, string.sub(a, {DIGITS + 1} - la))
    table.insert(fields, 'symbol')
    table.insert(fields, sym)
  end
  if level ~= {LEVELS["reject"]} or redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, unpack(fields))
    if priceless then
      redis.call('HDEL', key, 'price')
    end
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


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
