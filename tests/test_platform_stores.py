"""The platform's stores behind real backends: the journal holds exactly the accepted orders
and the fills the clients were told about, and order states reach the gateway from Redis."""

import asyncio
import json
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
import redis

from actors.backend import Backend
from actors.engine_shard import EngineShard
from actors.local import LocalShardClient
from actors.order_cache import OrderCache
from actors.order_flow import FlowParams, OrderFlow
from actors.platform_stores import StoresSpec
from actors.risk import RiskLimits
from actors.wire import ORDER_DTYPE
from engine.messages import ReportKind
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
        orders, fills = _counts(schema, result.run_id)
        # The measured window is part of the run: the journal holds at least its figures.
        assert orders >= result.orders_acked > 0 and fills >= result.fills > 0
        assert json.dumps(result.config).count(schema) == 1
    finally:
        _drop_keys(result.run_id)
