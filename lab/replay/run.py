"""``lab replay``: run an ORDERS.csv through the engine; write TRADES, BOOK and REJECTS CSVs.

The ORDERS.csv format, its reader and its writer are in :mod:`lab.replay.orders_csv`
(``read_orders_csv``, ``write_orders_csv`` and ``ORDER_COLUMNS`` are imported
here too, for callers that know them from here). A malformed file raises
:class:`~lab.errors.InputError` naming the file and line, before anything is
written. Outputs go to temporary files that are renamed into place only once
all of them are complete.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from actors.wire import concat_records
from engine import REPORT_DTYPE, MatchingEngine, Reason, ReportKind
from lab.errors import InputError
from lab.replay.csv_format import codes_text, csv_text, ints_text, names_text, write_atomically
from lab.replay.orders_csv import ORDER_COLUMNS, SIDES, read_orders_csv, write_orders_csv

__all__ = [
    "ORDER_COLUMNS",
    "STP_CHOICES",
    "BATCH_SIZE",
    "ReplaySummary",
    "replay_csv",
    "read_orders_csv",
    "write_orders_csv",
    "write_replay_outputs",
]

TRADES_COLUMNS = ("seq", "symbol", "taker_id", "maker_id", "price", "qty")
BOOK_COLUMNS = ("symbol", "side", "order_id", "price", "qty")
REJECTS_COLUMNS = ("seq", "order_id", "reason")
STP_CHOICES = ("none", "cancel-newest")
#: Messages handed to the engine per ``process`` call.
BATCH_SIZE = 65_536


@dataclass(frozen=True)
class ReplaySummary:
    """What one replay did."""

    messages: int
    trades: int
    resting: int
    rejects: int
    symbols: int = 0
    seconds: float = 0.0
    #: rejects per reason name, most frequent first
    reject_reasons: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        text = (
            f"replayed {self.messages:,} rows over {self.symbols:,} symbols "
            f"in {self.seconds:.2f} s: {self.trades:,} trades, "
            f"{self.resting:,} resting orders, {self.rejects:,} rejects"
        )
        if self.reject_reasons:
            text += " (" + ", ".join(f"{n} {k:,}" for n, k in self.reject_reasons.items()) + ")"
        if self.messages and self.rejects == self.messages:
            text += "; every row was rejected: check the CSV's columns (see `lab replay --help`)"
        return text


def replay_csv(
    orders_path: str | os.PathLike,
    trades_path: str | os.PathLike,
    book_path: str | os.PathLike,
    rejects_path: str | os.PathLike,
    stp: str = "none",
) -> ReplaySummary:
    """Replay ORDERS.csv through a fresh engine and write TRADES, BOOK and REJECTS CSVs."""
    start = time.perf_counter()
    if stp not in STP_CHOICES:
        raise InputError(f"--stp must be one of {', '.join(STP_CHOICES)}, not {stp!r}")
    outputs = [Path(trades_path), Path(book_path), Path(rejects_path)]
    for out in outputs:
        if not out.parent.is_dir():
            raise InputError(f"cannot write {out}: directory {out.parent} does not exist")
    messages, symbols = read_orders_csv(orders_path)

    engine = MatchingEngine(max(len(symbols), 1), stp=stp)
    kept = [np.empty(0, dtype=REPORT_DTYPE)]  # only FILLs and REJECTs are written
    for lo in range(0, len(messages), BATCH_SIZE):
        reports = engine.process(messages[lo : lo + BATCH_SIZE])
        kind = reports["kind"]
        kept.append(reports[(kind == ReportKind.FILL) | (kind == ReportKind.REJECT)])
    book = engine.resting_orders()
    reports = concat_records(kept)
    trades, rejects = write_replay_outputs(*outputs, reports=reports, book=book, symbols=symbols)
    return ReplaySummary(
        messages=len(messages),
        trades=trades,
        resting=len(book),
        rejects=rejects,
        symbols=len(symbols),
        seconds=time.perf_counter() - start,
        reject_reasons=_count_reasons(reports),
    )


def _count_reasons(reports: np.ndarray) -> dict[str, int]:
    reasons = reports["reason"][reports["kind"] == ReportKind.REJECT]
    codes, counts = np.unique(reasons, return_counts=True)
    pairs = sorted(zip(counts.tolist(), codes.tolist(), strict=True), reverse=True)
    return {Reason.name_of(code): n for n, code in pairs}


# -- writing -------------------------------------------------------------------


def write_replay_outputs(
    trades_path: str | os.PathLike,
    book_path: str | os.PathLike,
    rejects_path: str | os.PathLike,
    *,
    reports: np.ndarray,
    book: np.ndarray,
    symbols: Sequence[str],
) -> tuple[int, int]:
    """Write TRADES.csv (FILL reports), BOOK.csv (``book``) and REJECTS.csv (REJECT reports).

    ``reports`` may hold any kinds of report, in execution order; ``book`` is
    ``MatchingEngine.resting_orders()``. Returns ``(trades, rejects)`` written.
    """
    fills = reports[reports["kind"] == ReportKind.FILL]
    rejects = reports[reports["kind"] == ReportKind.REJECT]
    reasons = {int(c): Reason.name_of(int(c)) for c in np.unique(rejects["reason"])}
    files = {
        Path(trades_path): csv_text(
            TRADES_COLUMNS,
            [
                ints_text(fills["seq"]),
                names_text(fills["symbol"], symbols),
                ints_text(fills["order_id"]),
                ints_text(fills["maker_id"]),
                ints_text(fills["price"]),
                ints_text(fills["qty"]),
            ],
        ),
        Path(book_path): csv_text(
            BOOK_COLUMNS,
            [
                names_text(book["symbol"], symbols),
                codes_text(book["side"], SIDES),
                ints_text(book["order_id"]),
                ints_text(book["price"]),
                ints_text(book["qty"]),
            ],
        ),
        Path(rejects_path): csv_text(
            REJECTS_COLUMNS,
            [
                ints_text(rejects["seq"]),
                ints_text(rejects["order_id"]),
                codes_text(rejects["reason"], {v: k for k, v in reasons.items()}),
            ],
        ),
    }
    write_atomically(files)
    return len(fills), len(rejects)
