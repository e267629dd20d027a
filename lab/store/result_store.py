"""Where runs and sweeps are kept: one schema on SQLite or PostgreSQL.

``ResultStore.open(url)`` takes the ``results.url`` of the config:
``sqlite:///relative/path`` (relative to the current directory),
``sqlite:////absolute/path``, ``sqlite:///:memory:`` or ``postgresql://...``.
Each run and sweep is stored whole as JSON text next to a few columns that
listings need; the SQL is written once with ``?`` placeholders and translated
for psycopg.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import sqlite3
from pathlib import Path
from typing import Any

from lab.errors import ConfigError, LabError

__all__ = ["describe_location", "ResultStore", "new_run_id"]

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        name TEXT,
        kind TEXT NOT NULL,
        sweep_id TEXT,
        orders_per_s DOUBLE PRECISION,
        p99_ms DOUBLE PRECISION,
        summary TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS runs_created_at ON runs (created_at)",
    "CREATE INDEX IF NOT EXISTS runs_sweep_id ON runs (sweep_id)",
    """CREATE TABLE IF NOT EXISTS sweeps (
        sweep_id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        name TEXT,
        summary TEXT NOT NULL
    )""",
]

_SAVE_RUN = """INSERT INTO runs
    (run_id, created_at, name, kind, sweep_id, orders_per_s, p99_ms, summary)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (run_id) DO UPDATE SET
        name = excluded.name, kind = excluded.kind, sweep_id = excluded.sweep_id,
        orders_per_s = excluded.orders_per_s, p99_ms = excluded.p99_ms,
        summary = excluded.summary"""

_SAVE_SWEEP = """INSERT INTO sweeps (sweep_id, created_at, name, summary) VALUES (?, ?, ?, ?)
    ON CONFLICT (sweep_id) DO UPDATE SET name = excluded.name, summary = excluded.summary"""

_RUN_COLUMNS = ("run_id", "created_at", "name", "kind", "sweep_id", "orders_per_s", "p99_ms")
_SWEEP_COLUMNS = ("sweep_id", "created_at", "name")


def new_run_id(prefix: str = "run", now: dt.datetime | None = None) -> str:
    """A time-sortable id such as ``run-20261125-183012-ab12cd`` (UTC)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{prefix}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def describe_location(url: str) -> str:
    """Where ``url`` keeps its runs, for a person: a SQLite file's absolute path, else the URL.

    Under ``ray job submit`` the job's working directory is a temporary copy
    that Ray removes with the job, so a relative SQLite path there says so.
    """
    shown = _hide_password(url)
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return shown
    path = url[len("sqlite:///") :]
    where = os.path.abspath(path)
    if not os.path.isabs(path) and os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):
        where += (
            " (inside this Ray job's copy of the working directory, which Ray removes with"
            " the job: give results.url an absolute path, or a postgresql:// one, to keep it)"
        )
    return where


class ResultStore:
    """Runs and sweeps in a SQL database; use ``ResultStore.open(url)``, ideally as ``with``."""

    def __init__(
        self, connection: Any, placeholder: str, errors: type[Exception], url: str
    ) -> None:
        self._connection = connection  #: a DB-API connection in autocommit mode
        self._placeholder = placeholder  #: "?" (sqlite3) or "%s" (psycopg)
        self._errors = errors  #: the driver's base exception, reported as LabError
        self.url = url  #: where the store lives (without any password)
        for attempt in range(2):
            try:
                for statement in _SCHEMA:
                    self._execute(statement)
                break
            except LabError:
                # Another process may have created a table at the same moment
                # ("IF NOT EXISTS" is not atomic in PostgreSQL); the retry sees it.
                if attempt:
                    self.close()
                    raise

    @classmethod
    def open(cls, url: str, schema: str | None = None) -> ResultStore:
        """Connect to ``url`` and create the tables if missing.

        ``schema`` selects (and creates) a PostgreSQL schema, so that tests or users
        can keep their tables apart; SQLite has no schemas and ignores it.
        """
        shown = _hide_password(url)
        if url.startswith("sqlite:///"):
            connection = _connect_sqlite(url[len("sqlite:///") :], shown)
            return cls(connection, "?", sqlite3.Error, shown)
        if url.startswith(("postgresql://", "postgres://")):
            import psycopg

            return cls(_connect_postgres(url, schema, shown), "%s", psycopg.Error, shown)
        raise ConfigError(
            f"results url {shown!r}: expected 'sqlite:///<path>' or 'postgresql://...'"
        )

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- runs ----------------------------------------------------------------

    def save_run(self, result: dict[str, Any]) -> str:
        """Store a run result (replacing one with the same ``run_id``); returns its id.

        ``result`` is stored whole as JSON; ``run_id`` (made up if missing), ``name``,
        ``kind`` (default "run"), ``sweep_id``, ``orders_per_s`` and
        ``latency_ms.p99`` also go into columns for listings.
        """
        result = dict(result)
        run_id = result.setdefault("run_id", new_run_id())
        latency = result.get("latency_ms")
        p99 = latency.get("p99") if isinstance(latency, dict) else None
        self._execute(
            _SAVE_RUN,
            (
                run_id,
                _now(),
                result.get("name"),
                result.get("kind", "run"),
                result.get("sweep_id"),
                _number(result.get("orders_per_s")),
                _number(p99),
                _to_json(result),
            ),
        )
        return run_id

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The stored result of a run, by id or unique id prefix; LabError if none."""
        return json.loads(self._find("runs", "run_id", "run", run_id))

    def list_runs(
        self, limit: int = 50, sweep_id: str | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """The newest runs first, as small dicts of the listing columns."""
        where, params = [], []
        if sweep_id is not None:
            where.append("sweep_id = ?")
            params.append(sweep_id)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._execute(
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs {clause}"
            "ORDER BY created_at DESC, run_id DESC LIMIT ?",
            (*params, limit),
        )
        return [dict(zip(_RUN_COLUMNS, row, strict=True)) for row in rows]

    # -- sweeps --------------------------------------------------------------

    def save_sweep(self, summary: dict[str, Any]) -> str:
        """Store a sweep summary (``sweep_id`` made up if missing); returns its id.

        A capacity search is stored the same way, under its ``capacity-...`` id.
        """
        summary = dict(summary)
        sweep_id = summary.setdefault("sweep_id", new_run_id("sweep"))
        self._execute(_SAVE_SWEEP, (sweep_id, _now(), summary.get("name"), _to_json(summary)))
        return sweep_id

    def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        """The stored summary of a sweep, by id or unique id prefix; LabError if none."""
        return json.loads(self._find("sweeps", "sweep_id", "sweep", sweep_id))

    def list_sweeps(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest sweeps first, as small dicts (sweep_id, created_at, name)."""
        rows = self._execute(
            f"SELECT {', '.join(_SWEEP_COLUMNS)} FROM sweeps "
            "ORDER BY created_at DESC, sweep_id DESC LIMIT ?",
            (limit,),
        )
        return [dict(zip(_SWEEP_COLUMNS, row, strict=True)) for row in rows]

    def find(self, wanted: str) -> dict[str, Any]:
        """A sweep or capacity search if ``wanted`` names one (``sweep-...``,
        ``capacity-...``), else a run; LabError if neither."""
        if wanted.startswith(("sweep", "capacity")):
            return self.get_sweep(wanted)
        return self.get_run(wanted)

    # -- plumbing ------------------------------------------------------------

    def _find(self, table: str, key: str, what: str, wanted: str) -> str:
        """The summary of the row whose ``key`` is ``wanted`` or starts with it."""
        rows = self._execute(f"SELECT {key}, summary FROM {table} WHERE {key} = ?", (wanted,))
        if not rows and wanted:
            rows = self._execute(
                f"SELECT {key}, summary FROM {table} WHERE substr({key}, 1, ?) = ? "
                f"ORDER BY {key} LIMIT 6",
                (len(wanted), wanted),
            )
        if not rows:
            raise LabError(f"no {what} {wanted}")
        if len(rows) > 1:
            matches = ", ".join(row[0] for row in rows[:5])
            raise LabError(f"{what} id prefix {wanted!r} is ambiguous: {matches}, ...")
        return rows[0][1]

    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self._placeholder != "?":
            sql = sql.replace("?", self._placeholder)
        try:
            cursor = self._connection.cursor()
            try:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
            finally:
                cursor.close()
        except self._errors as exc:
            raise LabError(f"results database {self.url}: {exc}".strip()) from None


def _connect_sqlite(path: str, shown: str) -> sqlite3.Connection:
    if path != ":memory:":
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LabError(f"cannot create the directory of {shown}: {exc}") from None
    try:
        # isolation_level=None: autocommit, like the PostgreSQL connection.
        return sqlite3.connect(path, isolation_level=None, timeout=30)
    except sqlite3.Error as exc:
        raise LabError(f"cannot open results database {shown}: {exc}") from None


def _connect_postgres(url: str, schema: str | None, shown: str) -> Any:
    import psycopg
    from psycopg import sql

    if schema is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", schema):
        raise ConfigError(f"results schema {schema!r}: expected letters, digits and _")
    postgres_url = "postgresql://" + url.split("://", 1)[1]
    try:
        connection = psycopg.connect(postgres_url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise LabError(f"cannot open results database {shown}: {exc}".strip()) from None
    if schema is not None:
        identifier = sql.Identifier(schema)
        try:
            connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(identifier))
        except psycopg.errors.UniqueViolation:
            pass  # created concurrently by another connection
        connection.execute(sql.SQL("SET search_path TO {}").format(identifier))
    return connection


def _hide_password(url: str) -> str:
    return re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", url)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, default=_json_default)


def _json_default(value: Any) -> Any:
    """NumPy scalars and arrays, paths and datetimes as JSON."""
    if hasattr(value, "tolist"):  # numpy scalar or array
        return value.tolist()
    if isinstance(value, (Path, dt.datetime, dt.date)):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a result")
