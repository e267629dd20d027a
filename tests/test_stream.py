"""The stream transport in-process: framing, concurrency, errors and bad peers."""

import asyncio
import struct

import numpy as np
import pytest

from actors.backend import Backend
from actors.engine_shard import EngineShard
from actors.local import LocalShardClient as LocalShard
from actors.stream import MAX_PAYLOAD, StreamClient, StreamError, StreamServer
from actors.wire import ORDER_DTYPE, BadBatch
from engine import ReportKind
from engine.messages import REPORT_DTYPE
from tests.pipeline_fixtures import BUY, SELL, new, orders

PAIR = np.dtype([("a", "<i8"), ("b", "<i4")])


async def _served(handler, dtype=PAIR):
    server = StreamServer(handler, dtype)
    port = await server.start("127.0.0.1")
    return server, ("127.0.0.1", port)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_arrays_round_trip_with_the_argument():
    async def handler(batch, arg):
        doubled = batch.copy()
        doubled["a"] *= 2
        return doubled, batch[:0], np.array([(arg, -arg)], PAIR)

    async def main():
        server, address = await _served(handler)
        client = StreamClient(address, PAIR)
        batch = np.array([(1, 2), (3, 4), (5, 6)], dtype=PAIR)
        doubled, empty, arg = await client.call(batch, arg=7)
        assert doubled["a"].tolist() == [2, 6, 10] and doubled["b"].tolist() == [2, 4, 6]
        assert len(empty) == 0 and arg.tolist() == [(7, -7)]
        none, _, _ = await client.call(np.zeros(0, PAIR))
        assert len(none) == 0
        await client.close()
        await server.close()

    run(main())


def test_concurrent_calls_share_a_connection_and_replies_may_come_out_of_order():
    finished = []
    done = {}

    async def handler(batch, arg):
        # Each call waits until the one after it is answered: a server that handled them
        # one at a time would never answer (and the test times out), and the first
        # request answers last.
        if arg < 4:
            await done[arg + 1].wait()
        finished.append(arg)
        done[arg].set()
        return (batch,)

    async def main():
        done.update({k: asyncio.Event() for k in range(5)})
        server, address = await _served(handler)
        client = StreamClient(address, PAIR)
        batches = [np.array([(k, k)], dtype=PAIR) for k in range(5)]
        replies = await asyncio.gather(*(client.call(b, arg=k) for k, b in enumerate(batches)))
        assert [int(r[0]["a"][0]) for r in replies] == [0, 1, 2, 3, 4]
        assert finished == [4, 3, 2, 1, 0]
        await server.close()

    run(main())


def test_errors_reach_the_caller_and_the_server_serves_on():
    async def handler(batch, arg):
        if arg == 1:
            raise ValueError("no such thing")
        return (batch,)

    async def main():
        server, address = await _served(handler)
        client = StreamClient(address, PAIR)
        with pytest.raises(StreamError, match="ValueError: no such thing"):
            await client.call(np.zeros(2, PAIR), arg=1)
        with pytest.raises(BadBatch, match="not a whole number of 12-byte records"):
            await client.call(np.zeros(5, np.uint8))
        (echo,) = await client.call(np.ones(2, PAIR))
        assert echo["a"].tolist() == [1, 1]
        await server.close()

    run(main())


def test_an_in_order_server_answers_each_connection_s_requests_in_turn_errors_included():
    seen = []

    async def handler(batch, arg):  # never waits, as an engine shard's
        seen.append(arg)
        if arg == 2:
            raise ValueError("bad")
        return (batch,)

    async def main():
        server = StreamServer(handler, PAIR, in_order=True)
        address = ("127.0.0.1", await server.start("127.0.0.1"))
        client = StreamClient(address, PAIR)
        calls = [client.call(np.array([(k, k)], PAIR), arg=k) for k in range(5)]
        replies = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(replies[2], StreamError) and "ValueError: bad" in str(replies[2])
        assert [int(r[0]["a"][0]) for k, r in enumerate(replies) if k != 2] == [0, 1, 3, 4]
        assert seen == [0, 1, 2, 3, 4]
        assert not server._tasks  # answered in line, no task per request
        await server.close()

    run(main())


def test_a_peer_announcing_an_absurd_length_loses_only_its_own_connection():
    async def handler(batch, arg):
        return (batch,)

    async def main():
        server, address = await _served(handler)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(struct.pack("<QqQ", 9, 0, MAX_PAYLOAD + 1))
        header = await reader.readexactly(24)
        request_id, status, length = struct.unpack("<QqQ", header)
        assert request_id == 9 and status == -1
        assert b"BadBatch" in await reader.readexactly(length)
        assert await reader.read() == b""  # closed
        (echo,) = await StreamClient(address, PAIR).call(np.ones(1, PAIR))
        assert len(echo) == 1
        await server.close()

    run(main())


def test_calls_in_flight_fail_when_the_server_goes_away():
    async def hang_up(reader, writer):
        await reader.readexactly(24)  # a request arrives; the peer dies before answering
        writer.close()

    async def main():
        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        client = StreamClient(("127.0.0.1", server.sockets[0].getsockname()[1]), PAIR)
        with pytest.raises(ConnectionError, match="closed"):
            await client.call(np.ones(1, PAIR))
        server.close()

    run(main())


def test_a_backend_behind_a_stream_gives_the_reports_it_gives_in_process():
    async def main():
        shard = EngineShard(0, 1, 2)
        backend = Backend(0, 1, [LocalShard(shard)], n_symbols=2, n_accounts=10)

        async def submit(batch, _arg):
            return (await backend.submit(batch),)

        server, address = await _served(submit, ORDER_DTYPE)
        client = StreamClient(address, REPORT_DTYPE)
        (reports,) = await client.call(
            orders(new(1, 1, 0, BUY, 100, 5), new(2, 2, 0, SELL, 100, 5))
        )
        assert ReportKind.FILL in reports["kind"]
        assert shard.engine.n_resting == 0
        await server.close()

    run(main())


def test_a_malformed_reply_fails_the_waiting_calls_and_the_next_call_reconnects():
    header = struct.Struct("<QqQ")
    connections = []

    async def peer(reader, writer):
        connections.append(writer)
        while True:
            try:
                request_id, _, length = header.unpack(await reader.readexactly(header.size))
                payload = await reader.readexactly(length)
            except asyncio.IncompleteReadError:
                return
            if len(connections) == 1:  # the first connection answers garbage: one array of 3 B
                writer.write(header.pack(request_id, 1, 3) + b"abc")
            else:  # later ones echo the request as one array
                writer.write(
                    header.pack(request_id, 1, 8 + len(payload))
                    + struct.pack("<Q", len(payload))
                    + payload
                )
            await writer.drain()

    async def main():
        server = await asyncio.start_server(peer, "127.0.0.1", 0)
        client = StreamClient(("127.0.0.1", server.sockets[0].getsockname()[1]), PAIR)
        batch = np.array([(1, 2)], dtype=PAIR)
        with pytest.raises(StreamError, match="failed: error"):
            await client.call(batch)
        (echo,) = await client.call(batch)  # a new connection, which works
        server.close()
        return echo, len(connections)

    echo, opened = run(main())
    assert echo.tolist() == [(1, 2)] and opened == 2
