"""``TradeJournal``: every accepted order and every fill, written to PostgreSQL.

Tables, in ``schema`` (``lab_journal`` by default), created and migrated by
:meth:`TradeJournal.open` (steps in ``MIGRATIONS``, applied in order; the
version reached is in ``schema_version``):

* ``orders``: one row per accepted message: ``run_id``, ``seq``,
  ``order_id``, ``account``, ``symbol``, ``action``, ``side``, ``type``,
  ``price`` (NULL: none given, as for MARKET and CANCEL), ``qty``,
  ``recorded_at`` (the writing transaction's start).
* ``fills``: one row per FILL report: ``run_id``, ``seq`` (the taker's
  message), ``taker``, ``taker_account``, ``maker``, ``maker_account``,
  ``symbol``, ``side`` (the taker's), ``price``, ``qty``, ``recorded_at``.

Writes go through one writer task and one connection, as binary COPY built
by NumPy (no per-row Python; text COPY measured slower, see
/work/figs/stores.md). Writes waiting when the writer is free are committed
together in one transaction (group commit), in the order they were made.
``durability="sync"``: :meth:`write` returns once its rows are committed;
``"async"``: once they are queued, and :meth:`flush` waits for the commit.
The queue is bounded: when full, :meth:`write` waits, it never drops.

A failure (server gone, constraint, ...) raises :class:`JournalError` to
the writes it concerns and to every later call; nothing is retried (a
commit that failed in flight may have happened) and nothing is dropped
without a JournalError saying how much.
"""

import asyncio
from typing import NamedTuple

import numpy as np
import psycopg
from psycopg import sql

from engine.messages import MESSAGE_DTYPE, NO_PRICE, REPORT_DTYPE, ReportKind

__all__ = ["TradeJournal", "JournalError", "MIGRATIONS"]


class JournalError(RuntimeError):
    """The journal could not do what was asked; the message says what was (not) written."""


#: Schema migrations, in order; step k brings the schema to version k + 1.
#: Never edit a released step: append one.
MIGRATIONS = [
    """
    CREATE TABLE {schema}.orders (
        run_id text NOT NULL,
        seq bigint NOT NULL,
        order_id bigint NOT NULL,
        account bigint NOT NULL,
        symbol integer NOT NULL,
        action smallint NOT NULL,
        side smallint NOT NULL,
        type smallint NOT NULL,
        price bigint,
        qty bigint NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE {schema}.fills (
        run_id text NOT NULL,
        seq bigint NOT NULL,
        taker bigint NOT NULL,
        taker_account bigint NOT NULL,
        maker bigint NOT NULL,
        maker_account bigint NOT NULL,
        symbol integer NOT NULL,
        side smallint NOT NULL,
        price bigint NOT NULL,
        qty bigint NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now()
    );
    """,
    # Counting or reading one run must not scan every run's rows. BRIN, not
    # B-tree: rows arrive run after run, so a block range holds few runs, and
    # keeping it costs COPY almost nothing (a B-tree halved the sync rate).
    # Ranges are summarised by autovacuum; unsummarised ones are just read.
    """
    CREATE INDEX orders_run ON {schema}.orders USING brin (run_id) WITH (autosummarize = on);
    CREATE INDEX fills_run ON {schema}.fills USING brin (run_id) WITH (autosummarize = on);
    """,
]

# (column, big-endian wire type, source field) per table, in COPY order.
_ORDER_COLUMNS = [
    ("seq", ">i8", "seq"),
    ("order_id", ">i8", "order_id"),
    ("account", ">i8", "account"),
    ("symbol", ">i4", "symbol"),
    ("action", ">i2", "action"),
    ("side", ">i2", "side"),
    ("type", ">i2", "type"),
    ("price", ">i8", "price"),
    ("qty", ">i8", "qty"),
]
_FILL_COLUMNS = [
    ("seq", ">i8", "seq"),
    ("taker", ">i8", "order_id"),
    ("taker_account", ">i8", "account"),
    ("maker", ">i8", "maker_id"),
    ("maker_account", ">i8", "maker_account"),
    ("symbol", ">i4", "symbol"),
    ("side", ">i2", "side"),
    ("price", ">i8", "price"),
    ("qty", ">i8", "qty"),
]
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # signature, flags, extension length
_COPY_TRAILER = b"\xff\xff"
_LOCK_CLASS = 0x4C4A  # first key of the migration's advisory lock ("LJ")


class _Write(NamedTuple):
    orders: bytes  # COPY rows, without header and trailer
    fills: bytes
    n_orders: int
    n_fills: int
    done: asyncio.Future | None  # sync writes wait on it


class TradeJournal:
    """Use :meth:`open`; then :meth:`write` per batch, :meth:`close` at the end."""

    def __init__(self, conn, durability: str, schema: str, max_pending: int):
        self._conn = conn
        self.durability = durability
        self.schema = schema
        self._tables = {
            name: sql.Identifier(schema, name).as_string(conn) for name in ("orders", "fills")
        }
        self._queue: asyncio.Queue[_Write] = asyncio.Queue(maxsize=max_pending)
        self._lock = asyncio.Lock()  # the connection: writer transactions and queries
        self._error: JournalError | None = None
        self._refused = [0, 0, 0]  # writes, orders, fills refused after the failure
        self._writer = asyncio.ensure_future(self._write_queued())

    @classmethod
    async def open(
        cls,
        url: str,
        durability: str = "sync",
        schema: str = "lab_journal",
        max_pending: int = 64,
    ) -> "TradeJournal":
        """Connect, create or migrate ``schema``, and start the writer.

        ``max_pending``: writes that may wait for the writer before
        :meth:`write` waits too.
        """
        if durability not in ("sync", "async"):
            raise ValueError(f"durability must be 'sync' or 'async', not {durability!r}")
        if int(max_pending) < 1:
            raise ValueError("max_pending must be at least 1")
        try:
            conn = await psycopg.AsyncConnection.connect(url)
        except psycopg.Error as exc:
            raise JournalError(f"cannot connect to the journal database: {exc}") from exc
        try:
            await migrate(conn, schema)
            # A commit must mean on disk, whatever the server's default says.
            await conn.execute("SET synchronous_commit TO on")
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        return cls(conn, durability, schema, int(max_pending))

    async def write(self, run_id: str, accepted: np.ndarray, fills: np.ndarray) -> None:
        """Journal a batch: ``accepted`` messages (``MESSAGE_DTYPE``) and FILL reports.

        The arrays are encoded before this returns, so the caller may reuse them.
        """
        self._raise_if_failed()
        if not run_id:
            raise ValueError("run_id must not be empty")
        if not isinstance(accepted, np.ndarray) or accepted.dtype != MESSAGE_DTYPE:
            raise TypeError("accepted must be a NumPy array of MESSAGE_DTYPE")
        if not isinstance(fills, np.ndarray) or fills.dtype != REPORT_DTYPE:
            raise TypeError("fills must be a NumPy array of REPORT_DTYPE")
        if (fills["kind"] != ReportKind.FILL).any():
            raise ValueError("fills must hold FILL reports only")
        if not len(accepted) and not len(fills):
            return
        run = run_id.encode()
        done = asyncio.get_running_loop().create_future() if self.durability == "sync" else None
        item = _Write(
            copy_rows(run, accepted, _ORDER_COLUMNS),
            copy_rows(run, fills, _FILL_COLUMNS),
            len(accepted),
            len(fills),
            done,
        )
        await self._queue.put(item)
        if done is not None:
            await done

    async def flush(self) -> None:
        """Wait until every write made so far is committed; JournalError if one was not."""
        self._raise_if_failed()
        await self._queue.join()
        self._raise_if_failed()

    async def counts(self, run_id: str) -> dict:
        """Committed rows of ``run_id``: ``{"orders": n, "fills": m}`` (flush first for all)."""
        self._raise_if_failed()
        query = sql.SQL(
            "SELECT (SELECT count(*) FROM {orders} WHERE run_id = %(run)s),"
            " (SELECT count(*) FROM {fills} WHERE run_id = %(run)s)"
        ).format(orders=sql.SQL(self._tables["orders"]), fills=sql.SQL(self._tables["fills"]))
        async with self._lock:
            try:
                cur = await self._conn.execute(query, {"run": run_id})
                orders, fills = await cur.fetchone()
                await self._conn.rollback()  # end the read's transaction
            except psycopg.Error as exc:
                raise JournalError(f"cannot count the journal's rows: {exc}") from exc
        return {"orders": int(orders), "fills": int(fills)}

    async def close(self) -> None:
        """Flush, stop the writer and disconnect; JournalError if a write was lost."""
        try:
            if self._error is None:
                await self._queue.join()
        finally:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
            await self._conn.close()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is None:
            return
        writes, orders, fills = self._refused
        if not writes:
            raise self._error
        raise JournalError(
            f"{self._error}; after it, {writes} queued write(s), {orders} orders and "
            f"{fills} fills, were not written"
        ) from self._error

    async def _write_queued(self) -> None:
        """The writer: takes what is queued, commits it in one transaction, in order."""
        while True:
            group = [await self._queue.get()]
            while not self._queue.empty():
                group.append(self._queue.get_nowait())
            committed = False
            try:
                if self._error is None:
                    await self._commit(group)
                    committed = True
                else:  # queued after the failure (the queue was full then)
                    for item in group:
                        self._refuse(item)
            except JournalError as exc:
                self._error = exc
            finally:
                # Cancelled mid-commit (the loop shutting down): not known to be written.
                if not committed and self._error is None:
                    self._error = JournalError(f"journal writer stopped; {_what(group)} unsure")
                for item in group:
                    if item.done is not None and not item.done.done():
                        if committed:
                            item.done.set_result(None)
                        else:
                            item.done.set_exception(self._error)
                    self._queue.task_done()
            if self._error is not None:
                self._fail_queued()

    async def _commit(self, group: list[_Write]) -> None:
        what = _what(group)
        async with self._lock:
            try:
                for table, columns, rows in (
                    ("orders", _ORDER_COLUMNS, [item.orders for item in group]),
                    ("fills", _FILL_COLUMNS, [item.fills for item in group]),
                ):
                    if any(rows):
                        await self._copy(table, columns, rows)
            except Exception as exc:  # psycopg's errors, and any other: never a silent loss
                await _rollback_quietly(self._conn)
                raise JournalError(f"journal write failed, {what} not written: {exc}") from exc
            try:
                await self._conn.commit()
            except Exception as exc:
                raise JournalError(
                    f"journal commit failed; {what} may or may not be committed: {exc}"
                ) from exc

    async def _copy(self, table: str, columns, rows: list[bytes]) -> None:
        names = ", ".join(["run_id", *(name for name, _, _ in columns)])
        statement = f"COPY {self._tables[table]} ({names}) FROM STDIN (FORMAT BINARY)"
        async with self._conn.cursor() as cur:
            async with cur.copy(statement) as copy:
                await copy.write(_COPY_HEADER)
                for part in rows:
                    if part:
                        await copy.write(part)
                await copy.write(_COPY_TRAILER)

    def _fail_queued(self) -> None:
        """After a failure: whatever is still queued is refused, each with the error."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            self._refuse(item)
            if item.done is not None and not item.done.done():
                item.done.set_exception(self._error)
            self._queue.task_done()

    def _refuse(self, item: _Write) -> None:
        self._refused[0] += 1
        self._refused[1] += item.n_orders
        self._refused[2] += item.n_fills


async def migrate(conn, schema: str) -> int:
    """Create ``schema`` or bring it to the latest version; returns the version.

    One transaction under an advisory lock on the schema's name: two
    processes opening at once take turns, and the second finds nothing to do.
    """
    name = sql.Identifier(schema)
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s::integer, hashtext(%s))", (_LOCK_CLASS, schema)
            )
            await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
            await conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.schema_version ("
                    " version integer PRIMARY KEY,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(name)
            )
            cur = await conn.execute(
                sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_version").format(name)
            )
            (version,) = await cur.fetchone()
            if version > len(MIGRATIONS):
                raise JournalError(
                    f"schema {schema} is at version {version}, newer than this code's "
                    f"{len(MIGRATIONS)}"
                )
            for step in range(version, len(MIGRATIONS)):
                await conn.execute(sql.SQL(MIGRATIONS[step]).format(schema=name))
                await conn.execute(
                    sql.SQL("INSERT INTO {}.schema_version (version) VALUES (%s)").format(name),
                    (step + 1,),
                )
    except psycopg.Error as exc:
        raise JournalError(f"cannot create or migrate schema {schema}: {exc}") from exc
    return len(MIGRATIONS)


def copy_rows(run_id: bytes, batch: np.ndarray, columns) -> bytes:
    """Binary COPY rows (no header) of ``batch``: ``run_id`` then ``columns``.

    Every row of a layout has the same size, so the rows are one NumPy array
    of big-endian fields. A ``price`` of ``NO_PRICE`` is NULL, a row without
    the price's bytes: those rows go in a second block (row order in a
    table means nothing; ``seq`` keeps it).
    """
    if not len(batch):
        return b""
    names = [name for name, _, _ in columns]
    null_price = batch["price"] == NO_PRICE if "price" in names else np.zeros(len(batch), bool)
    parts = []
    for nulls in (False, True):
        # Gather column by column: NumPy gathers whole structured records slowly.
        if not null_price.any():
            index = slice(None) if not nulls else np.zeros(0, np.intp)
        else:
            index = np.flatnonzero(null_price == nulls)
        size = len(batch) if isinstance(index, slice) else len(index)
        if not size:
            continue
        fields = [("n", ">i2"), ("run_len", ">i4"), ("run_id", f"S{len(run_id)}")]
        for name, wire, _ in columns:
            fields.append((f"{name}_len", ">i4"))
            if not (nulls and name == "price"):
                fields.append((name, wire))
        out = np.empty(size, np.dtype(fields))
        out["n"] = 1 + len(columns)
        out["run_len"] = len(run_id)
        out["run_id"] = run_id
        for name, wire, source in columns:
            if nulls and name == "price":
                out[f"{name}_len"] = -1  # NULL
                continue
            out[f"{name}_len"] = np.dtype(wire).itemsize
            out[name] = batch[source][index]
        parts.append(out.tobytes())
    return b"".join(parts)


def _what(group: list[_Write]) -> str:
    n_orders = sum(item.n_orders for item in group)
    n_fills = sum(item.n_fills for item in group)
    return f"{len(group)} write(s), {n_orders} orders and {n_fills} fills"


async def _rollback_quietly(conn) -> None:
    try:
        await conn.rollback()
    except psycopg.Error:
        pass  # the connection is gone: the transaction is gone with it
