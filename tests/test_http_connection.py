"""ConnectionPool: keep-alive reuse, a bounded number of connections, and every way a
connection can end (closed by the server, cut mid-request, cancelled, not HTTP at all)."""

import asyncio

import numpy as np
import pytest

from actors.http_client import HttpBackendClient
from actors.http_connection import ConnectionPool, HttpError
from actors.wire import ORDER_DTYPE


class Server:
    """A raw HTTP/1.1 server on a free port; ``answer(body) -> bytes`` writes each answer."""

    def __init__(self, answer=None):
        self.answer = answer or (lambda body: ok(b'{"echo": %d}' % len(body)))
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def _serve(self, reader, writer):
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                answer = self.answer(body)
                if answer is None:  # hang up without answering
                    break
                if isinstance(answer, float):  # answer late
                    await asyncio.sleep(answer)
                    answer = ok(b"late")
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes, close: bool = False, status: bytes = b"200 OK") -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n%s" % (status, len(body), connection, body)


def request(body: bytes = b"{}") -> bytes:
    return b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def test_sequential_requests_share_one_connection_and_get_their_answers():
    async def main():
        async with Server() as server:
            pool = ConnectionPool(server.url, limit=8)
            answers = [await pool.request(request(b"x" * n)) for n in range(5)]
            await pool.close()
        assert answers == [(200, b'{"echo": %d}' % n) for n in range(5)]
        assert server.connections == 1

    asyncio.run(main())


def test_concurrent_requests_open_at_most_limit_connections():
    async def main():
        async with Server(lambda body: 0.02) as server:  # each answer takes 20 ms
            pool = ConnectionPool(server.url, limit=3)
            answers = await asyncio.gather(*(pool.request(request()) for _ in range(10)))
            await pool.close()
        assert answers == [(200, b"late")] * 10
        assert server.connections == 3

    asyncio.run(main())


def test_a_connection_the_server_closes_is_replaced():
    async def main():
        async with Server(lambda body: ok(b"bye", close=True)) as server:
            pool = ConnectionPool(server.url)
            answers = [await pool.request(request()) for _ in range(3)]
            await pool.close()
        assert answers == [(200, b"bye")] * 3
        assert server.connections == 3

    asyncio.run(main())


def test_a_request_cut_off_mid_way_fails_and_the_next_gets_a_new_connection():
    calls = []

    def answer(body):
        calls.append(body)
        return None if body == b"hang up" else ok(b"fine")

    async def main():
        async with Server(answer) as server:
            pool = ConnectionPool(server.url)
            with pytest.raises(ConnectionError):
                await pool.request(request(b"hang up"))
            assert await pool.request(request(b"again")) == (200, b"fine")
            await pool.close()
        assert server.connections == 2

    asyncio.run(main())


def test_a_cancelled_request_drops_its_connection_so_its_late_answer_reaches_nobody():
    async def main():
        slow = {"on": True}

        def answer(body):
            return 0.2 if slow["on"] else ok(b"fresh")

        async with Server(answer) as server:
            pool = ConnectionPool(server.url)
            task = asyncio.ensure_future(pool.request(request()))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            slow["on"] = False
            assert await pool.request(request()) == (200, b"fresh")
            await pool.close()
        assert server.connections == 2

    asyncio.run(main())


def test_an_answer_that_is_not_http_is_an_error_and_the_connection_is_dropped():
    answers = iter([b"garbage, not HTTP\r\n\r\n", ok(b"fine")])

    async def main():
        async with Server(lambda body: next(answers)) as server:
            pool = ConnectionPool(server.url)
            with pytest.raises(HttpError, match="not HTTP"):
                await pool.request(request())
            assert await pool.request(request()) == (200, b"fine")
            await pool.close()

    asyncio.run(main())


@pytest.mark.parametrize("url", ["https://example.com", "ftp://h", "not a url", "http://"])
def test_only_plain_http_urls_are_taken(url):
    with pytest.raises(ValueError, match="http://host"):
        ConnectionPool(url)


def test_the_backend_client_posts_the_batch_with_its_key_and_names_an_error_status():
    async def main():
        statuses = iter([b"200 OK", b"422 Unprocessable Entity", b"200 OK"])

        def answer(body):
            status = next(statuses)
            empty = b'{"count": 0, "reports": {"kind": []}}'
            return ok(empty if status.startswith(b"200") else b"no", status=status)

        async with Server(answer) as server:
            client = HttpBackendClient(server.url, "secret", ["S0", "S1"])
            orders = np.zeros(1, ORDER_DTYPE)
            orders["symbol"], orders["account"], orders["action"], orders["qty"] = 1, 7, 1, 5
            orders["side"], orders["type"] = 1, 1
            assert len(await client.submit(orders, 3)) == 0
            with pytest.raises(HttpError, match="HTTP 422: no"):
                await client.submit(orders)
            await client.close()
            behind_a_prefix = HttpBackendClient(server.url + "/lab/", "secret", ["S0", "S1"])
            assert len(await behind_a_prefix.submit(orders, 0)) == 0
            await behind_a_prefix.close()
        first, second, prefixed = server.requests
        assert first.startswith(b"POST /v1/orders/batch?client=3 HTTP/1.1\r\n")
        assert second.startswith(b"POST /v1/orders/batch HTTP/1.1\r\n")
        assert prefixed.startswith(b"POST /lab/v1/orders/batch?client=0 HTTP/1.1\r\n")
        assert b"\r\nX-API-Key: secret\r\n" in first and b'"symbol":"S1"' in first

    asyncio.run(main())
