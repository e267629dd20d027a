"""``TradeJournal`` against a real PostgreSQL.

The session works in its own schema, ``lab_journal_test_<random>``, dropped
at the end (tests that need a fresh schema make and drop their own). The rows
written are read back and compared with the arrays, not only counted.
"""

import asyncio
import uuid

import numpy as np
import psycopg
import pytest

from actors.order_flow import FlowParams, OrderFlow
from actors.trade_journal import MIGRATIONS, JournalError, TradeJournal
from actors.wire import compress
from engine import MatchingEngine
from engine.messages import NO_PRICE, REPORT_DTYPE, ReportKind
from tests.conftest import POSTGRES_URL

ORDER_FIELDS = "seq, order_id, account, symbol, action, side, type, price, qty"
FILL_FIELDS = "seq, taker, taker_account, maker, maker_account, symbol, side, price, qty"


def run(coro):
    return asyncio.run(coro)


def new_schema() -> str:
    return f"lab_journal_test_{uuid.uuid4().hex[:12]}"


def drop(schema: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def schema(postgres_url):
    name = new_schema()
    yield name
    drop(name)


@pytest.fixture
def fresh_schema():
    name = new_schema()
    yield name
    drop(name)


def flow_batch(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``n`` generated messages through a real engine: (messages, their FILL reports)."""
    flow = OrderFlow(FlowParams(symbols=4, accounts=100), seed=seed)
    engine = MatchingEngine(4)
    parts, fills = [], []
    for lo in range(0, n, 4096):
        batch = flow.next_batch(min(4096, n - lo))
        reports = engine.process(batch)
        flow.keep_only(engine.is_resting(*flow.live_orders))
        parts.append(batch)
        fills.append(compress(reports, reports["kind"] == ReportKind.FILL))
    return np.concatenate(parts), np.concatenate(fills)


def rows(schema: str, table: str, fields: str, run_id: str) -> list[tuple]:
    with psycopg.connect(POSTGRES_URL) as conn:
        query = f'SELECT {fields} FROM "{schema}".{table} WHERE run_id = %s ORDER BY seq, ctid'
        return conn.execute(query, (run_id,)).fetchall()


def expected_orders(messages: np.ndarray) -> list[tuple]:
    out = []
    for m in messages.tolist():
        seq, oid, acct, price, qty, sym, action, side, typ, _ = m
        price = None if price == NO_PRICE else price
        out.append((seq, oid, acct, sym, action, side, typ, price, qty))
    return out


def expected_fills(fills: np.ndarray) -> list[tuple]:
    names = ["seq", "order_id", "account", "maker_id", "maker_account", "symbol", "side"]
    return [tuple(r) for r in fills[[*names, "price", "qty"]].tolist()]


def versions(schema: str) -> list[int]:
    with psycopg.connect(POSTGRES_URL) as conn:
        query = f'SELECT version FROM "{schema}".schema_version ORDER BY version'
        return [v for (v,) in conn.execute(query).fetchall()]


def test_opening_twice_migrates_once_and_keeps_the_rows(fresh_schema):
    messages, fills = flow_batch(500)

    async def test():
        journal = await TradeJournal.open(POSTGRES_URL, schema=fresh_schema)
        await journal.write("r1", messages, fills)
        await journal.close()
        again = await TradeJournal.open(POSTGRES_URL, schema=fresh_schema)
        try:
            return await again.counts("r1")
        finally:
            await again.close()

    assert run(test()) == {"orders": 500, "fills": len(fills)}
    assert versions(fresh_schema) == list(range(1, len(MIGRATIONS) + 1))


def test_two_opens_at_once_both_succeed_and_migrate_once(fresh_schema):
    async def test():
        journals = await asyncio.gather(
            *(TradeJournal.open(POSTGRES_URL, schema=fresh_schema) for _ in range(2))
        )
        for journal in journals:
            await journal.close()

    run(test())
    assert versions(fresh_schema) == list(range(1, len(MIGRATIONS) + 1))


def test_a_schema_newer_than_the_code_is_refused(fresh_schema):
    async def test():
        journal = await TradeJournal.open(POSTGRES_URL, schema=fresh_schema)
        await journal.close()

    run(test())
    with psycopg.connect(POSTGRES_URL) as conn:
        conn.execute(f'INSERT INTO "{fresh_schema}".schema_version (version) VALUES (999)')
    with pytest.raises(JournalError, match="version 999, newer"):
        run(test())


def test_a_sync_write_is_committed_when_it_returns(schema):
    messages, fills = flow_batch(3000)
    assert (messages["price"] == NO_PRICE).any() and len(fills)

    async def test():
        journal = await TradeJournal.open(POSTGRES_URL, durability="sync", schema=schema)
        try:
            await journal.write("sync-1", messages, fills)
            # Another connection sees the rows at once: the commit came first.
            return rows(schema, "orders", ORDER_FIELDS, "sync-1"), await journal.counts("sync-1")
        finally:
            await journal.close()

    orders, counts = run(test())
    assert counts == {"orders": 3000, "fills": len(fills)}
    assert orders == expected_orders(messages)
    assert rows(schema, "fills", FILL_FIELDS, "sync-1") == expected_fills(fills)


def test_async_writes_are_all_there_after_flush_in_their_order(schema):
    messages, fills = flow_batch(20_000, seed=5)
    bounds = np.linspace(0, len(messages), 41).astype(int)

    async def test():
        journal = await TradeJournal.open(
            POSTGRES_URL, durability="async", schema=schema, max_pending=3
        )
        try:
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
                part = fills[(fills["seq"] >= lo) & (fills["seq"] < hi)]
                await journal.write("async-1", messages[lo:hi], part)
            await journal.flush()
            return await journal.counts("async-1")
        finally:
            await journal.close()

    assert run(test()) == {"orders": len(messages), "fills": len(fills)}
    assert rows(schema, "orders", ORDER_FIELDS, "async-1") == expected_orders(messages)
    # Each write's transaction id: never smaller than the one of the write before.
    with psycopg.connect(POSTGRES_URL) as conn:
        query = (
            f'SELECT seq, xmin::text::bigint FROM "{schema}".orders WHERE run_id = %s ORDER BY seq'
        )
        by_seq = conn.execute(query, ("async-1",)).fetchall()
    xids = np.array([xid for _, xid in by_seq])
    first_xid_of_write = xids[bounds[:-1]]
    last_xid_of_write = xids[bounds[1:] - 1]
    assert (first_xid_of_write == last_xid_of_write).all()  # one transaction per write
    assert (np.diff(first_xid_of_write) >= 0).all()
    assert len(np.unique(first_xid_of_write)) > 1  # the writes did not all go at once


def test_a_large_batch_round_trips_exactly(schema):
    messages, fills = flow_batch(100_000, seed=9)

    async def test():
        journal = await TradeJournal.open(POSTGRES_URL, schema=schema)
        try:
            await journal.write("large-1", messages, fills)
            return await journal.counts("large-1")
        finally:
            await journal.close()

    assert run(test()) == {"orders": 100_000, "fills": len(fills)}
    assert rows(schema, "orders", ORDER_FIELDS, "large-1") == expected_orders(messages)
    assert rows(schema, "fills", FILL_FIELDS, "large-1") == expected_fills(fills)


def test_runs_are_counted_apart(schema):
    messages, fills = flow_batch(100)

    async def test():
        journal = await TradeJournal.open(POSTGRES_URL, durability="async", schema=schema)
        try:
            await journal.write("apart-a", messages, fills)
            await journal.write("apart-b", messages[:10], fills[:0])
            await journal.flush()
            return await journal.counts("apart-a"), await journal.counts("apart-b")
        finally:
            await journal.close()

    assert run(test()) == ({"orders": 100, "fills": len(fills)}, {"orders": 10, "fills": 0})


def test_only_fills_are_taken_as_fills(schema):
    messages, _ = flow_batch(10)
    not_fills = np.zeros(2, REPORT_DTYPE)
    not_fills["kind"] = ReportKind.ACK

    async def test():
        journal = await TradeJournal.open(POSTGRES_URL, schema=schema)
        try:
            await journal.write("bad-1", messages, not_fills)
        finally:
            await journal.close()

    with pytest.raises(ValueError, match="FILL reports only"):
        run(test())


def terminate(pid: int) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]


@pytest.mark.parametrize("durability", ["sync", "async"])
def test_a_lost_server_connection_is_a_journal_error_not_a_silent_loss(schema, durability):
    messages, fills = flow_batch(200)
    run_id = f"lost-{durability}"

    async def test():
        journal = await TradeJournal.open(POSTGRES_URL, durability=durability, schema=schema)
        await journal.write(run_id, messages, fills)
        await journal.flush()
        terminate(journal._conn.info.backend_pid)  # the server ends the session
        errors = []
        try:
            await journal.write(run_id, messages, fills)
            await journal.flush()
        except JournalError as exc:
            errors.append(str(exc))
        try:
            await journal.write(run_id, messages, fills)  # and every later call fails
        except JournalError as exc:
            errors.append(str(exc))
        try:
            await journal.close()
        except JournalError as exc:
            errors.append(str(exc))
        return errors

    errors = run(test())
    assert len(errors) == 3
    assert "not written" in errors[0] and "200 orders" in errors[0]
    with psycopg.connect(POSTGRES_URL) as conn:
        query = f'SELECT count(*) FROM "{schema}".orders WHERE run_id = %s'
        assert conn.execute(query, (run_id,)).fetchone()[0] == 200


def test_an_unreachable_server_is_a_journal_error(schema):
    from conftest import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test?connect_timeout=3"
    with pytest.raises(JournalError, match="cannot connect"):
        run(TradeJournal.open(url, schema=schema))
