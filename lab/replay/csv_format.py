"""The lab's CSV output: columns of numbers and names as text, written all or nothing.

:mod:`lab.replay.orders_csv` writes ORDERS.csv and :mod:`lab.replay.run` writes TRADES,
BOOK and REJECTS with these. Every file of one :func:`write_atomically` call
goes to a temporary sibling first and is renamed into place only once all of
them are complete.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lab.errors import InputError

__all__ = ["ints_text", "codes_text", "names_text", "csv_text", "write_atomically"]


def ints_text(values: np.ndarray, empty: np.ndarray | None = None) -> list:
    """Python ints for ``%s`` formatting; ``""`` where ``empty``."""
    text = values.tolist()
    if empty is not None:
        for i in np.flatnonzero(empty).tolist():
            text[i] = ""
    return text


def codes_text(codes: np.ndarray, vocab: dict[str, int]) -> list[str]:
    """Names of codes by ``vocab``; -1 is written empty and an unknown code as its number."""
    names = {code: name for name, code in vocab.items()}
    names[-1] = ""
    present = np.unique(codes).tolist()
    table = {c: names.get(c, str(c)) for c in present}
    return [table[c] for c in codes.tolist()]


def names_text(index: np.ndarray, symbols: Sequence[str]) -> list[str]:
    quoted = np.array([_csv_field(name) for name in symbols], dtype=object)
    return quoted[index].tolist()


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\r\n') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_text(header: Sequence[str], columns: list[list]) -> str:
    """CSV text of equal-length columns of ints and strs (strs already quoted if need be)."""
    row = ",".join(["%s"] * len(columns))
    return "\n".join([",".join(header), *map(row.__mod__, zip(*columns, strict=True))]) + "\n"


def write_atomically(files: dict[Path, str]) -> None:
    """Write every file to a temporary sibling, then rename them all into place."""
    done: list[tuple[Path, Path]] = []
    target = None
    try:
        for target, text in files.items():
            temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
            with open(temp, "x", encoding="utf-8", newline="") as fh:
                done.append((temp, target))
                fh.write(text)
        for temp, target in done:
            os.replace(temp, target)
    except BaseException as exc:
        for temp, _ in done:
            temp.unlink(missing_ok=True)  # those already renamed are gone: a no-op
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise
