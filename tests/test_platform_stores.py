"""The platform's stores behind real backends: the journal holds exactly the accepted orders
and the fills the clients were told about, and order states reach the gateway from Redis."""

import asyncio
import json
import threading
import time
import uuid
from pathlib import Path

import aiohttp
import numpy as np
import psycopg
import pytest
import redis
import redis.asyncio

from actors.backend import Backend
from actors.engine_shard import EngineShard
from actors.gateway import Gateway
from actors.gateway_app import create_app
from actors.http_server import HttpServer
from actors.local import LocalBackendClient, LocalShardClient
from actors.order_cache import OrderCache
from actors.order_flow import FlowParams, OrderFlow
from actors.platform_stores import StoresSpec
from actors.risk import RiskLimits
from actors.wire import ORDER_DTYPE
from engine.messages import NO_PRICE, ReportKind
from lab import Experiment
from tests.conftest import POSTGRES_URL, REDIS_URL

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def schema():
    name = f"lab_journal_test_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def _counts(schema: str, run_id: str) -> tuple[int, int]:
    with psycopg.connect(POSTGRES_URL) as conn:
        orders = conn.execute(f"SELECT count(*) FROM {schema}.orders WHERE run_id = %s", [run_id])
        fills = conn.execute(f"SELECT count(*) FROM {schema}.fills WHERE run_id = %s", [run_id])
        return orders.fetchone()[0], fills.fetchone()[0]


def _drop_keys(run_id: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"lab:{run_id}:*", count=10_000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.mark.parametrize("durability", ["sync", "async"])
def test_the_journal_holds_exactly_what_the_clients_were_told(schema, durability):
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    spec = StoresSpec(run_id, REDIS_URL, POSTGRES_URL, durability, schema)
    told = {"accepted": 0, "fills": 0, "rejected": 0}

    async def main():
        shards = [EngineShard(i, 2, 4, n_backends=2) for i in range(2)]
        clients = [LocalShardClient(s) for s in shards]
        # Tight risk limits, so that some orders are refused before the engine.
        limits = RiskLimits(max_order_qty=90, max_open_orders=40)
        backends = [Backend(i, 2, clients, 4, 50, limits, stores=spec) for i in range(2)]
        flow = OrderFlow(FlowParams(symbols=4, accounts=50, mean_lifetime_s=0.0), seed=3)
        for k in range(30):
            batch = flow.next_batch(500, ORDER_DTYPE, now_ns=k * 1_000_000)
            batch["seq"] = np.arange(len(batch))
            owner = batch["account"] % 2
            for b, backend in enumerate(backends):
                part = batch[owner == b].copy()
                part["seq"] = np.arange(len(part))
                reports = await backend.submit(part)
                kinds = reports["kind"]
                rejected = np.unique(reports["seq"][kinds == ReportKind.REJECT])
                told["rejected"] += len(rejected)
                told["accepted"] += len(part) - len(rejected)
                told["fills"] += int((kinds == ReportKind.FILL).sum())
                flow.forget(reports["order_id"][kinds != ReportKind.ACK])
                acked = reports[kinds == ReportKind.ACK]
        for backend in backends:
            await backend.close_stores()
        cache = OrderCache(REDIS_URL, f"lab:{run_id}:")  # as another backend's gateway reads it
        state = await cache.get_order(int(acked["symbol"][-1]), int(acked["order_id"][-1]))
        await cache.close()
        return state

    try:
        state = asyncio.run(main())
        assert told["rejected"] > 0 and told["fills"] > 0  # the flow exercised both
        assert _counts(schema, run_id) == (told["accepted"], told["fills"])
        assert state is not None and state["status"] in {"open", "filled", "canceled", "expired"}
    finally:
        _drop_keys(run_id)


def test_the_gateway_answers_an_orders_state_from_redis():
    run_id = f"run-{uuid.uuid4().hex[:8]}"

    async def main():
        shards = [EngineShard(i, 2, 4, n_backends=2) for i in range(2)]
        queries = [LocalShardClient(s) for s in shards]
        spec = StoresSpec(run_id, REDIS_URL)
        backends = [Backend(i, 2, queries, 4, 50, stores=spec) for i in range(2)]
        peers = [LocalBackendClient(b) for b in backends]
        gateway = Gateway(
            0, peers, queries, ["S0", "S1", "S2", "S3"], {"k": "*"}, stores=backends[0].stores
        )
        server = HttpServer(create_app(gateway))
        port = await server.start("127.0.0.1", 0)
        headers = {"X-API-Key": "k"}
        buy = {"symbol": "S1", "side": "B", "price": 100, "qty": 5, "account": 3, "order_id": 11}
        sell = {"symbol": "S1", "side": "S", "price": 100, "qty": 2, "account": 4}
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", headers=headers) as http:
                for body in (buy, sell):  # the two accounts' orders go to the two backends
                    async with http.post("/v1/orders", json=body) as answer:
                        assert answer.status == 200, await answer.text()

                async def state():
                    async with http.get("/v1/orders/S1/11") as answer:
                        return answer.status, await answer.json()

                # The cache is written off the answers' path: wait for the fill to land.
                deadline = time.monotonic() + 20
                status, body = await state()
                while body.get("leaves") != 3 and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                    status, body = await state()
                # The cache's own words: the shard's book would say "resting", not "open".
                assert status == 200 and body["status"] == "open", body
                assert (body["leaves"], body["price"], body["account"]) == (3, 100, 3)
                # Gone from Redis, gone from the gateway's view, though it rests in the book.
                client = redis.asyncio.Redis.from_url(REDIS_URL)
                assert await client.delete(backends[0].stores.cache.order_key(1, 11)) == 1
                await client.aclose()
                assert (await state())[0] == 404
                assert shards[1].order(1, 11)["leaves"] == 3  # symbol 1 is shard 1's
        finally:
            await server.close()
            for backend in backends:
                await backend.close_stores()

    try:
        asyncio.run(main())
    finally:
        _drop_keys(run_id)


def _top_message(row) -> dict:
    """A ``TOP_DTYPE`` row as the cache publishes it."""
    symbol, bid, bid_qty, ask, ask_qty, seq = (int(v) for v in row)
    return {
        "symbol": symbol,
        "bid": None if bid == NO_PRICE else bid,
        "bid_qty": bid_qty,
        "ask": None if ask == NO_PRICE else ask,
        "ask_qty": ask_qty,
        "seq": seq,
    }


def _listen(pattern: str, stop: threading.Event, got: list) -> threading.Thread:
    """Collect every message on channels matching ``pattern`` until ``stop``."""
    client = redis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    pubsub.psubscribe(pattern)
    confirmed, deadline = None, time.monotonic() + 30
    while confirmed is None and time.monotonic() < deadline:
        confirmed = pubsub.get_message(timeout=1)
    assert confirmed is not None and confirmed["type"] == "psubscribe"

    def listen():
        while not stop.is_set():
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is not None:
                got.append((message["channel"].decode(), json.loads(message["data"])))
        pubsub.close()
        client.close()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    return thread


def _last_of(got: list, book) -> dict:
    """The newest message of each symbol, as ``book`` shows it."""
    return {m["symbol"]: book(m) for _, m in list(got)}


def test_each_batch_publishes_the_top_of_book_of_the_symbols_it_touched():
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    stop, got = threading.Event(), []
    listener = _listen(f"lab:{run_id}:top:*", stop, got)
    shards = [EngineShard(i, 2, 4, publish_tops=True) for i in range(2)]

    async def main():
        clients = [LocalShardClient(s) for s in shards]
        backend = Backend(0, 1, clients, 4, 50, stores=StoresSpec(run_id, REDIS_URL))
        flow = OrderFlow(FlowParams(symbols=4, accounts=50, mean_lifetime_s=0.0), seed=5)
        for k in range(20):
            batch = flow.next_batch(200, ORDER_DTYPE, now_ns=k * 1_000_000)
            batch["seq"] = np.arange(len(batch))
            reports = await backend.submit(batch)
            flow.forget(reports["order_id"][reports["kind"] != ReportKind.ACK])
        await backend.close_stores()

    try:
        asyncio.run(main())
        final = {}
        for shard in shards:
            for row in shard.tops(shard.symbols):
                final[int(row["symbol"])] = _top_message(row)
        # Published before close_stores returned, but a loaded machine may deliver
        # them late: wait until the newest of each symbol has arrived. A symbol's
        # seq is its shard's count at the last batch that named it, so compare books.
        book = lambda m: {k: v for k, v in m.items() if k != "seq"}  # noqa: E731
        want = {symbol: book(m) for symbol, m in final.items()}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _last_of(got, book) != want:
            time.sleep(0.05)
        stop.set()
        listener.join(10)
        for channel, message in got:
            assert channel == f"lab:{run_id}:top:{message['symbol']}"
        # One top per symbol a batch named, and the last of each symbol is its final book.
        assert 4 <= len(got) <= 20 * 4
        assert _last_of(got, book) == want
        for symbol in final:  # one backend: its tops of a symbol come in book order
            seqs = [m["seq"] for _, m in got if m["symbol"] == symbol]
            assert seqs == sorted(seqs)
        assert any(m["bid"] is not None and m["ask"] is not None for m in final.values())
    finally:
        stop.set()
        _drop_keys(run_id)


@pytest.mark.parametrize("transport", ["ray", "stream"])
def test_a_run_on_ray_publishes_consistent_tops_for_every_symbol(ray_session, transport):
    stop, got = threading.Event(), []
    listener = _listen("lab:*:top:*", stop, got)
    overrides = [
        f"topology.transport={transport}",
        "experiment.duration_s=2",
        "experiment.warmup_s=0.5",
        f"platform.cache={REDIS_URL}",
    ]
    experiment = Experiment.from_yaml(
        ROOT / "configs" / "quickstart.yaml", layout="single-host", overrides=overrides
    )
    result = None
    try:
        result = experiment.run(store=False)
        prefix = f"lab:{result.run_id}:top:"

        def published():
            return [m for channel, m in list(got) if channel.startswith(prefix)]

        deadline = time.monotonic() + 20  # a starved listener may still be reading
        while time.monotonic() < deadline and {m["symbol"] for m in published()} != set(range(8)):
            time.sleep(0.05)
        stop.set()
        listener.join(10)
        assert result.status == "ok" and result.errors == 0, result.first_error
        mine = published()
        assert {m["symbol"] for m in mine} == set(range(8))
        for m in mine:
            for side in ("bid", "ask"):
                assert (m[side] is None) == (m[f"{side}_qty"] == 0), m
            assert m["bid"] is None or m["ask"] is None or m["bid"] < m["ask"], m
    finally:
        stop.set()
        if result is not None:
            _drop_keys(result.run_id)


def test_platform_full_journals_what_it_acknowledged(schema, tmp_path):
    url = f"sqlite:///{tmp_path}/results.sqlite"
    overrides = [
        "experiment.duration_s=2",
        "experiment.warmup_s=0.5",
        f"results.url={url}",
        f"platform.journal={POSTGRES_URL}",
        f"platform.cache={REDIS_URL}",
        f"platform.journal_schema={schema}",
    ]
    experiment = Experiment.from_yaml(
        ROOT / "configs" / "platform-full.yaml", layout="in-process", overrides=overrides
    )
    result = experiment.run()
    try:
        assert result.status == "ok" and result.errors == 0, result.first_error
        assert result.config["topology"]["transport"] == "http"
        # Every reply of the run, warm-up and drain included, is in one interval or another
        # (the collector takes a last one after the generators end); none was left out.
        told_acked = sum(point["acked"] for point in result.series)
        told_fills = sum(point["fills"] for point in result.series)
        assert result.unanswered == 0 and told_acked >= result.orders_acked > 0
        assert _counts(schema, result.run_id) == (told_acked, told_fills)
        assert told_fills >= result.fills > 0
        assert json.dumps(result.config).count(schema) == 1
    finally:
        _drop_keys(result.run_id)
