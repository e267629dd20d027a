"""``EngineShard``: one matching engine over the symbols routed to it.

A plain class (no Ray): the Ray wrapper in :mod:`actors.ray_actors` makes it
an actor. It translates global symbols to its engine's local indices and
back, keeps the maker side of fills for the backends that own the makers'
accounts, times every batch (the per-stage service times a calibrated
simulation needs) and can journal the exact batches it processed and take
snapshots for recovery.
"""

import numpy as np

from actors.partition import split
from actors.report_digest import globalize
from actors.routing import (
    backend_of_account,
    global_symbol,
    local_symbol,
    shard_of_symbol,
    symbols_of_shard,
)
from actors.stage_stats import Span, StageStats
from actors.wire import compress, concat_records, copy_records
from engine import MatchingEngine, ReportKind, Side
from engine.jit import WARM_UP_SIZES
from engine.messages import MESSAGE_DTYPE, REPORT_DTYPE, Action, OrderType, empty_messages

__all__ = ["EngineShard", "symbol_name"]


def _warm_up_growth() -> None:
    """Compile the pools' growth too: a book that outgrows them grows in the window."""
    scratch = MatchingEngine(1, orders=1, levels=1)
    n = 80  # buys at as many prices: more orders, levels, ids and levels a side than room
    rests = empty_messages(n)
    rests["order_id"], rests["price"] = np.arange(1, n + 1), 100 + np.arange(n)
    rests["account"], rests["qty"] = 1, 1
    rests["action"], rests["side"], rests["type"] = Action.NEW, Side.BUY, OrderType.LIMIT
    scratch.process(rests)


def symbol_name(symbol: int) -> str:
    """The name of a global symbol index; zero-padded so names sort like indices."""
    return f"SYM{symbol:05d}"


class EngineShard:
    """Matches the symbols ``symbols_of_shard(shard_id, n_shards, n_symbols)``."""

    def __init__(
        self,
        shard_id: int,
        n_shards: int,
        n_symbols: int,
        n_backends: int = 1,
        stp: str = "none",
        noop: bool = False,
        journal: bool = False,
        orders: int = 1024,
        publish_tops: bool = False,
    ):
        self.shard_id = shard_id
        self.n_shards = n_shards
        self.n_backends = n_backends
        self.symbols = symbols_of_shard(shard_id, n_shards, n_symbols)
        if not self.symbols:
            raise ValueError(f"shard {shard_id} of {n_shards} owns no symbol of {n_symbols}")
        self.noop = noop
        #: each reply also carries the top of book of the symbols its batch touched
        self.publish_tops = publish_tops and not noop
        # Pools for ``orders`` resting orders, faulted in now: growing them
        # mid-run copies the book and stalls every order in flight.
        self.engine = MatchingEngine(len(self.symbols), stp=stp, orders=orders, prefault=True)
        self.stats = StageStats()
        # Fills whose maker belongs to another backend, waiting to be picked up.
        self._maker_outbox: list[list[np.ndarray]] = [[] for _ in range(n_backends)]
        self._journal: list[np.ndarray] | None = [] if journal else None
        self._journal_reports: list[np.ndarray] = []  # its FILLs and REJECTs
        self._journaled = 0

    def warm_up(self) -> None:
        """Compile (or load from Numba's cache) the engine's kernel.

        An actor calls this before its run starts so that no compile lands
        inside the measured window (the engine hands the kernel one array
        type, read-only, whatever the batch is).
        """
        if self.noop:
            return
        self.engine.process(np.zeros(0, MESSAGE_DTYPE))
        _warm_up_growth()
        for size in WARM_UP_SIZES:
            globalize(np.zeros(size, REPORT_DTYPE), 0, 1)
        fills = np.zeros(2, REPORT_DTYPE)
        split(fills, backend_of_account(fills["maker_account"], 2), 2)  # maker-fill routing

    def process(self, messages: np.ndarray, backend_id: int = 0) -> tuple[np.ndarray, ...]:
        """Match a batch of ``MESSAGE_DTYPE`` messages.

        The messages carry this shard's local symbol indices
        (``routing.local_symbol``, as the backend that routed them sets them);
        the reports carry global symbols. Returns (the batch's reports, fills
        of earlier batches whose maker account belongs to ``backend_id`` and
        that it has not seen yet), and with ``publish_tops`` a third array: the
        ``TOP_DTYPE`` rows of the symbols the batch named, as the batch left them
        (a few reads a symbol, cheaper here than a call of their own).
        """
        span = Span()
        with span:
            reports = self._match(messages, backend_id)
            outbox = self._take_outbox(backend_id)
            if self.publish_tops:
                local = np.unique(messages["symbol"])
                local = local[(local >= 0) & (local < len(self.symbols))]  # bad ones rejected
                tops = self._tops_of_local(local)
        self.stats.record_batch(len(messages), span)
        return (reports, outbox, tops) if self.publish_tops else (reports, outbox)

    def _match(self, messages: np.ndarray, backend_id: int) -> np.ndarray:
        if self.noop:
            reports = _acks(messages)
        else:
            reports = self.engine.process(messages)
            if self._journal is not None:
                self._record(messages, reports)
        fills, rejects = globalize(reports, self.shard_id, self.n_shards)
        self.stats.note_reports(fills, rejects)
        if fills and self.n_backends > 1:  # most small batches have none to route
            self._route_maker_fills(reports, backend_id)
        return reports

    def _route_maker_fills(self, reports: np.ndarray, backend_id: int) -> None:
        fills = compress(reports, reports["kind"] == ReportKind.FILL)
        owners = backend_of_account(fills["maker_account"], self.n_backends)
        foreign = owners != backend_id  # the caller's own makers it hears of in its reports
        if not foreign.any():
            return
        for backend, part in split(compress(fills, foreign), owners[foreign], self.n_backends):
            self._maker_outbox[backend].append(part)

    def _take_outbox(self, backend_id: int) -> np.ndarray:
        waiting = self._maker_outbox[backend_id]
        if not waiting:
            return np.empty(0, dtype=REPORT_DTYPE)
        self._maker_outbox[backend_id] = []
        return concat_records(waiting)

    # -- journal and snapshot hooks (for replay and fault recovery) -----------

    def _record(self, local: np.ndarray, reports: np.ndarray) -> None:
        # Journal seqs count messages in processing order (senders' seqs can repeat
        # across senders); reports keep pointing at their message.
        entry = copy_records(local)
        entry["seq"] = self._journaled + np.arange(len(local))
        kept = reports[
            (reports["kind"] == ReportKind.FILL) | (reports["kind"] == ReportKind.REJECT)
        ]
        kept["seq"] = self._journaled + np.searchsorted(local["seq"], kept["seq"])
        self._journal.append(entry)
        self._journal_reports.append(kept)
        self._journaled += len(local)

    def journal(self) -> np.ndarray:
        """Every message processed so far, in order, with this shard's local symbols."""
        if self._journal is None:
            raise RuntimeError("this shard was started without journaling")
        return concat_records(self._journal) if self._journal else np.empty(0, MESSAGE_DTYPE)

    def journal_arrays(self) -> dict:
        """The journal and what the run made of it, as arrays for ``lab`` to write.

        ``messages``: every message processed, in order, with local symbols;
        ``reports``: their FILLs and REJECTs; ``book``: the resting orders now;
        ``symbols``: the names of the local symbols; ``name``: this shard's.
        """
        reports = (
            concat_records(self._journal_reports)
            if self._journal_reports
            else np.empty(0, REPORT_DTYPE)
        )
        return {
            "name": f"engine-{self.shard_id}",
            "symbols": [symbol_name(s) for s in self.symbols],
            "messages": self.journal(),
            "reports": reports,
            "book": self.engine.resting_orders(),
        }

    def take_stats(self) -> dict:
        """This interval's stage figures and the orders resting now; starts a new interval."""
        return {"stage": self.stats.take(), "resting": self.engine.n_resting}

    def snapshot(self) -> bytes:
        return self.engine.snapshot()

    def restore(self, data: bytes) -> None:
        self.engine.restore(data)

    def state_hash(self) -> str:
        return self.engine.state_hash()

    def resting(self) -> int:
        return self.engine.n_resting

    def book(self, symbol: int, depth: int) -> dict:
        """The best ``depth`` price levels a side of global ``symbol``: price, qty, orders.

        A query, not the hot path: it reads the whole resting book once.
        """
        mine = self._resting_of(symbol)
        out = {}
        for side, name in ((Side.BUY, "bids"), (Side.SELL, "asks")):
            # The engine dumps a side best price first, so each level is one run of prices.
            orders = mine[mine["side"] == side]
            prices = orders["price"]
            changes = np.r_[True, prices[1:] != prices[:-1]] if len(prices) else prices
            starts = np.flatnonzero(changes).tolist()
            ends = [*starts[1:], len(prices)] if starts else []
            out[name] = [
                {
                    "price": int(prices[lo]),
                    "qty": int(orders["qty"][lo:hi].sum()),
                    "orders": hi - lo,
                }
                for lo, hi in zip(starts[:depth], ends[:depth], strict=True)
            ]
        return out

    def tops(self, symbols) -> np.ndarray:
        """``TOP_DTYPE`` rows for global ``symbols`` of this shard: best price and qty a side."""
        symbols = np.asarray(symbols, np.int64)
        foreign = symbols[shard_of_symbol(symbols, self.n_shards) != self.shard_id]
        if len(foreign) or (len(symbols) and symbols.min() < 0):
            raise ValueError(f"symbols {foreign.tolist()} are not on shard {self.shard_id}")
        return self._tops_of_local(local_symbol(symbols, self.n_shards))

    def _tops_of_local(self, local: np.ndarray) -> np.ndarray:
        out = self.engine.tops(local)
        out["symbol"] = global_symbol(local, self.shard_id, self.n_shards)
        return out

    def order(self, symbol: int, order_id: int) -> dict | None:
        """A resting order of global ``symbol``: side, price, leaves and account; else None."""
        mine = self._resting_of(symbol)
        found = mine[mine["order_id"] == order_id]
        if not len(found):
            return None
        row = found[0]
        return {
            "side": int(row["side"]),
            "price": int(row["price"]),
            "leaves": int(row["qty"]),
            "account": int(row["account"]),
        }

    def _resting_of(self, symbol: int) -> np.ndarray:
        if symbol not in self.symbols:
            raise ValueError(f"symbol {symbol} is not on shard {self.shard_id}")
        resting = self.engine.resting_orders()
        return resting[resting["symbol"] == self.symbols.index(symbol)]


def _acks(messages: np.ndarray) -> np.ndarray:
    """No-op matching: one ACK per message (the transport benchmark)."""
    reports = np.zeros(len(messages), dtype=REPORT_DTYPE)
    for name in ("seq", "order_id", "account", "price", "qty", "symbol", "side"):
        reports[name] = messages[name]
    reports["kind"] = ReportKind.ACK
    return reports
