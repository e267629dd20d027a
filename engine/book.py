"""``MatchingEngine``: the Python face of the jitted kernels.

It owns the arrays, checks that batches have the right dtype, grows pools
when a kernel reports that one is full (so no order is ever dropped), and
offers snapshots, restore and a state hash for deterministic replay.
"""

import hashlib
import io
import sys

import numpy as np

from engine import kernels
from engine.messages import MESSAGE_DTYPE, NO_PRICE, REPORT_DTYPE, STP_CANCEL_NEWEST, STP_NONE
from engine.snapshot_check import SnapshotError, check_snapshot_state
from engine.state import BookState, grow, new_state, state_from_arrays

__all__ = ["MatchingEngine", "RESTING_DTYPE", "TOP_DTYPE", "SnapshotError", "stp_mode"]

RESTING_DTYPE = np.dtype(
    [
        ("symbol", np.int32),
        ("side", np.int8),
        ("order_id", np.int64),
        ("account", np.int64),
        ("price", np.int64),
        ("qty", np.int64),
    ]
)

#: Top of book of one symbol: ``NO_PRICE`` and qty 0 for an empty side; ``seq``:
#: the engine's messages so far, so of two tops of a symbol the later has the higher.
TOP_DTYPE = np.dtype(
    [
        ("symbol", np.int32),
        ("bid_price", np.int64),
        ("bid_qty", np.int64),
        ("ask_price", np.int64),
        ("ask_qty", np.int64),
        ("seq", np.int64),
    ]
)

_STP_MODES = {"none": STP_NONE, "cancel-newest": STP_CANCEL_NEWEST}

#: Bumped when the state arrays change meaning: snapshots of another layout are refused.
_LAYOUT = 2

# The kernels write reports as int64 words, the last one packing the small
# fields (kernels._emit): that needs this exact little-endian layout.
assert sys.byteorder == "little"
assert REPORT_DTYPE.itemsize == 8 * kernels.REPORT_WORDS
assert MESSAGE_DTYPE.itemsize == 8 * kernels.MESSAGE_WORDS
for _dtype, _fields in (
    (REPORT_DTYPE, {"symbol": 72, "kind": 76, "reason": 77, "side": 78}),
    (MESSAGE_DTYPE, {"symbol": 40, "action": 44, "side": 45, "type": 46}),
):
    assert all(_dtype.fields[name][1] == offset for name, offset in _fields.items())


def stp_mode(name: str) -> int:
    """The kernel code of a self-trade prevention mode name."""
    try:
        return _STP_MODES[name]
    except KeyError:
        raise ValueError(
            f"unknown self-trade prevention mode {name!r}; expected one of {sorted(_STP_MODES)}"
        ) from None


class MatchingEngine:
    """Price-time-priority books for ``n_symbols`` symbols (indices ``0..n_symbols-1``).

    ``orders`` and ``levels`` are the pools' starting capacities; a pool that
    fills up doubles, so they only matter for speed. ``prefault`` faults the
    pools' pages in now instead of on first use (see :mod:`engine.state`).
    """

    def __init__(
        self,
        n_symbols: int,
        stp: str = "none",
        orders: int = 1024,
        levels: int = 256,
        prefault: bool = False,
    ):
        if int(n_symbols) < 1:
            raise ValueError("n_symbols must be at least 1")
        if int(orders) < 1 or int(levels) < 1:
            raise ValueError("orders and levels must be at least 1")
        self.n_symbols = int(n_symbols)
        self.stp = stp
        self._stp = stp_mode(stp)
        self._st: BookState = new_state(
            self.n_symbols, orders=int(orders), levels=int(levels), prefault=prefault
        )
        #: Messages processed so far (accepted or rejected).
        self.messages = 0
        self._out = np.empty(0, dtype=REPORT_DTYPE)
        self._pipe = np.zeros(kernels.PIPE_WORDS, dtype=np.int64)  # kernel scratch

    def process(self, batch: np.ndarray, *, copy: bool = True) -> np.ndarray:
        """Apply a batch of ``MESSAGE_DTYPE`` messages; return their ``REPORT_DTYPE`` reports.

        With ``copy=False`` the reports are a view of a buffer that the next
        call overwrites: for callers that consume them at once.
        """
        if not isinstance(batch, np.ndarray) or batch.dtype != MESSAGE_DTYPE or batch.ndim != 1:
            raise TypeError("batch must be a 1-d NumPy array of engine.MESSAGE_DTYPE")
        batch = np.ascontiguousarray(batch)
        msgs = batch.view(np.int64)
        # Always read-only, as batches that come over Ray or a stream are: one
        # Numba signature, so the kernel compiles (about a minute) only once.
        msgs.flags.writeable = False
        out = self._reports_array(2 * len(batch) + 16, copy)
        i, n = 0, 0
        while True:
            words = out.view(np.int64)
            i, n, need = kernels.process_batch(
                self._st, msgs, i, words, n, self.n_symbols, self._stp, self._pipe
            )
            if not need:
                break
            if need & kernels.NEED_REPORTS:
                bigger = self._reports_array(2 * len(out) + self._worst_fills(batch[i]), copy)
                bigger[:n] = out[:n]
                out = bigger
            need &= ~kernels.NEED_REPORTS
            if need:
                self._st = grow(self._st, need)
        self.messages += len(batch)
        return out[:n]

    def _reports_array(self, size: int, copy: bool) -> np.ndarray:
        # Reports the caller keeps go straight into a new array (its pages are
        # touched once, by the kernel), not through the buffer and a copy.
        return np.empty(size, REPORT_DTYPE) if copy else self._report_buffer(size)

    def _report_buffer(self, size: int) -> np.ndarray:
        # Reused across calls: touching fresh pages costs more than matching.
        if len(self._out) < size:
            self._out = np.empty(size, dtype=REPORT_DTYPE)
        return self._out

    def _worst_fills(self, msg) -> int:
        resting = int(self._st.counters[kernels.C_RESTING])
        return int(min(max(int(msg["qty"]), 0), resting)) + 3

    @property
    def n_resting(self) -> int:
        return int(self._st.counters[kernels.C_RESTING])

    @property
    def order_capacity(self) -> int:
        """Orders the pools hold before they next grow."""
        return len(self._st.orders) // kernels.ROW_WIDTH

    def resting_orders(self) -> np.ndarray:
        """Every resting order: by symbol, bids then asks, best price first, FIFO within a price."""
        n = self.n_resting
        cols = [np.empty(n, dtype=RESTING_DTYPE[name]) for name in RESTING_DTYPE.names]
        count = kernels.dump_resting(self._st, self.n_symbols, *cols)
        assert count == n, "resting count out of step with the book"
        out = np.empty(n, dtype=RESTING_DTYPE)
        for name, col in zip(RESTING_DTYPE.names, cols, strict=True):
            out[name] = col
        return out

    def is_resting(self, symbols: np.ndarray, order_ids: np.ndarray) -> np.ndarray:
        """Boolean mask: which (symbol, order id) pairs are resting now."""
        symbols = np.ascontiguousarray(symbols, dtype=np.int32)
        order_ids = np.ascontiguousarray(order_ids, dtype=np.int64)
        out = np.empty(len(order_ids), dtype=np.bool_)
        kernels.resting_mask(self._st, symbols, order_ids, out)
        return out

    def best_prices(self, symbol: int) -> tuple[int | None, int | None]:
        """(best bid, best ask) of a symbol, ``None`` for an empty side."""
        st = self._st
        best = []
        for bs in (2 * symbol, 2 * symbol + 1):
            level = int(st.books[bs * kernels.SIDE_WIDTH + kernels.B_BEST])
            at = level * kernels.ROW_WIDTH + kernels.L_PRICE
            best.append(None if level < 0 else int(st.levels[at]))
        return best[0], best[1]

    def tops(self, symbols) -> np.ndarray:
        """``TOP_DTYPE`` rows for ``symbols``: each side's best price and the open qty there.

        Read from the ladders' best levels, which keep their total, so it costs
        a few array reads per symbol however deep the book is.
        """
        symbols = np.asarray(symbols, np.int64)
        if len(symbols) and (symbols.min() < 0 or symbols.max() >= self.n_symbols):
            raise ValueError(f"symbols must be in 0..{self.n_symbols - 1}")
        st = self._st
        out = np.zeros(len(symbols), TOP_DTYPE)
        out["symbol"] = symbols
        out["seq"] = self.messages
        for offset, name in ((0, "bid"), (1, "ask")):
            level = st.books[(2 * symbols + offset) * kernels.SIDE_WIDTH + kernels.B_BEST]
            found = level >= 0
            row = level[found] * kernels.ROW_WIDTH
            out[f"{name}_price"] = NO_PRICE
            out[f"{name}_price"][found] = st.levels[row + kernels.L_PRICE]
            out[f"{name}_qty"][found] = st.levels[row + kernels.L_QTY]
        return out

    def memory_bytes(self) -> int:
        """Bytes held by the engine's arrays."""
        return int(sum(arr.nbytes for arr in self._st))

    def snapshot(self) -> bytes:
        """The whole state as bytes (NumPy ``.npz``, no pickle)."""
        buf = io.BytesIO()
        meta = np.array([self.n_symbols, self._stp, self.messages, _LAYOUT], dtype=np.int64)
        np.savez(buf, _meta=meta, **self._st._asdict())
        return buf.getvalue()

    def restore(self, data: bytes) -> None:
        """Replace the whole state with one taken by :meth:`snapshot`.

        The snapshot is checked first (:mod:`engine.snapshot_check`): a
        truncated, foreign or tampered one raises :class:`SnapshotError` and
        leaves this engine as it was.
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except Exception as exc:  # zipfile, npy header and value errors alike
            raise SnapshotError(f"not a readable snapshot: {type(exc).__name__}: {exc}") from None
        meta = arrays.get("_meta")
        if meta is None or meta.dtype != np.int64 or meta.shape != (4,):
            raise SnapshotError("snapshot lacks its header (_meta)")
        n_symbols, stp, messages, layout = (int(v) for v in meta)
        if layout != _LAYOUT:
            raise SnapshotError("snapshot was taken by an engine with another state layout")
        if n_symbols < 1 or stp not in _STP_MODES.values() or messages < 0:
            raise SnapshotError(
                f"snapshot header is invalid: {n_symbols} symbols, stp code {stp}, "
                f"{messages} messages"
            )
        check_snapshot_state(arrays, n_symbols)
        st = state_from_arrays(arrays)
        self.n_symbols = n_symbols
        self._stp = stp
        self.stp = next(name for name, code in _STP_MODES.items() if code == stp)
        self.messages = messages
        self._st = st

    @classmethod
    def from_snapshot(cls, data: bytes) -> "MatchingEngine":
        engine = cls(1)
        engine.restore(data)
        return engine

    def state_hash(self) -> str:
        """A digest of the logical book state: equal for equal histories.

        It covers what an observer can see (every resting order, in priority
        order, and the settings), not pool layout, so a restored engine that
        continues a history hashes like one that never stopped.
        """
        digest = hashlib.blake2b(digest_size=16)
        digest.update(np.array([self.n_symbols, self._stp], dtype=np.int64).tobytes())
        digest.update(self.resting_orders().tobytes())
        return digest.hexdigest()
