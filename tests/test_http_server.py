"""HttpServer: an answer goes out in one write, however uvicorn writes it, and nothing
written before a close is lost."""

import asyncio

from actors.http_server import HttpServer, _CorkedTransport


class RecordingTransport:
    def __init__(self):
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data):
        assert not self.closed
        self.writes.append(bytes(data))

    def is_closing(self):
        return self.closed

    def close(self):
        self.closed = True

    def abort(self):
        self.aborted = self.closed = True

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 9)}.get(name, default)


def test_the_writes_of_one_loop_turn_go_out_as_one():
    async def main():
        inner = RecordingTransport()
        corked = _CorkedTransport(inner, asyncio.get_running_loop())
        corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
        corked.writelines([b"body", b"!"])
        assert inner.writes == []  # not yet: the turn is not over
        await asyncio.sleep(0)
        corked.write(b"next")
        await asyncio.sleep(0)
        return inner.writes, corked.get_extra_info("peername")

    writes, peer = asyncio.run(main())
    assert writes == [b"HTTP/1.1 200 OK\r\n\r\nbody!", b"next"]
    assert peer == ("127.0.0.1", 9)  # the rest is the real transport's


def test_a_close_sends_what_was_written_first_and_an_abort_drops_it():
    async def main():
        loop = asyncio.get_running_loop()
        closed, aborted = RecordingTransport(), RecordingTransport()
        for transport, end in ((closed, "close"), (aborted, "abort")):
            corked = _CorkedTransport(transport, loop)
            corked.write(b"last words")
            getattr(corked, end)()
        await asyncio.sleep(0)  # the flush already queued finds nothing more to send
        return closed.writes, aborted.writes

    assert asyncio.run(main()) == ([b"last words"], [])


def test_a_server_s_connections_write_through_the_cork_and_answer_in_full():
    async def app(scope, receive, send):
        await receive()
        headers = [(b"content-length", b"100"), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"x" * 100})

    async def main():
        server = HttpServer(app)
        port = await server.start("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(3):  # keep-alive: the same connection, answer after answer
                writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 OK\r\n")
                assert await reader.readexactly(100) == b"x" * 100
            (connection,) = server._server.server_state.connections
            writer.close()
            return connection.transport
        finally:
            await server.close()

    assert isinstance(asyncio.run(main()), _CorkedTransport)
