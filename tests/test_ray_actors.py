"""The Ray actors themselves: bad input gets REJECTs or a clear error, and nobody dies."""

import asyncio

import numpy as np
import pytest
import ray

from actors.ray_actors import BackendActor, ShardActor, remote_class
from actors.risk import RiskLimits
from actors.stream import StreamClient
from actors.wire import BadBatch
from engine import ReportKind
from engine.messages import REPORT_DTYPE
from tests.pipeline_fixtures import BUY, SELL, new, orders


@pytest.fixture
def backend(ray_session):
    shard = remote_class(ShardActor, num_cpus=0).remote(
        run_id="t", shard_id=0, n_shards=1, n_symbols=2
    )
    handle = remote_class(BackendActor, num_cpus=0, max_concurrency=100).remote(
        run_id="t",
        shard_handles=[shard],
        backend_id=0,
        n_backends=1,
        n_symbols=2,
        n_accounts=10,
        limits=RiskLimits(max_order_qty=100),
    )
    try:
        yield handle, shard
    finally:
        ray.kill(handle)
        ray.kill(shard)


@pytest.mark.parametrize("bad", ["not a batch", np.arange(5), None, {"qty": [1]}])
def test_a_malformed_batch_is_a_clear_error_and_the_actors_live_on(backend, bad):
    handle, shard = backend
    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(handle.submit.remote(bad))
    assert isinstance(info.value.as_instanceof_cause(), BadBatch)
    reports = ray.get(
        handle.submit.remote(orders(new(1, 1, 0, BUY, 100, 5), new(2, 2, 0, SELL, 100, 5)))
    )
    assert ReportKind.FILL in reports["kind"]
    assert ray.get(shard.resting.remote()) == 0


def test_bad_values_come_back_as_rejects(backend):
    handle, _ = backend
    batch = orders(
        new(1, 1, 0, BUY, 100, 500),
        new(2, 99, 0, BUY, 100, 5),
        new(3, 1, 7, BUY, 100, 5),
        (1, 4, 1, 0, 9, 1, 100, 5),
    )
    reports = ray.get(handle.submit.remote(batch))
    assert sorted(reports[reports["kind"] == ReportKind.REJECT]["order_id"]) == [1, 2, 3, 4]
    assert ray.get(handle.ready.remote())


def test_over_a_stream_a_malformed_batch_is_a_clear_error_and_the_actors_live_on(backend):
    handle, shard = backend
    address = ray.get(handle.open_stream.remote())

    async def exchange():
        client = StreamClient(address, REPORT_DTYPE)
        with pytest.raises(BadBatch, match="whole number"):
            await client.call(np.arange(5, dtype=np.uint8))
        (reports,) = await client.call(
            orders(new(1, 1, 0, BUY, 100, 5), new(2, 2, 0, SELL, 100, 5))
        )
        await client.close()
        return reports

    reports = asyncio.run(asyncio.wait_for(exchange(), 60))
    assert ReportKind.FILL in reports["kind"]
    assert ray.get(shard.resting.remote()) == 0 and ray.get(handle.ready.remote())
