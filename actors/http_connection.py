"""Keep-alive HTTP/1.1 connections for a load generator, answers parsed by httptools.

A generator that sends one order per request spends most of its time in its
HTTP client: aiohttp costs about 95 us of CPU per request here, where a
request written as one buffer and its answer parsed by httptools (the C
parser uvicorn uses) costs about 20 (measured side by side against the same
server). :class:`ConnectionPool` keeps up to ``limit`` connections to one
server, each carrying one request at a time (no pipelining, so a slow answer
delays no other), and reuses them while the server keeps them alive.

A request whose connection fails or is cancelled mid-way is not retried: its
fate on the server is unknown, so the caller hears of it (a load generator
counts it as an error); the connection is dropped, since an answer may still
arrive on it.
"""

import asyncio
import socket
from urllib.parse import urlsplit

import httptools

__all__ = ["ConnectionPool", "HttpError"]


class HttpError(RuntimeError):
    """The server answered with an error status or something that is not HTTP."""


class _Connection(asyncio.Protocol):
    """One connection; :meth:`request` sends a whole request and waits for its answer."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future | None = None
        self._body: list[bytes] = []
        self.closed = False

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # a request is one write: nothing to gain from Nagle's delay
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"the server's answer is not HTTP: {exc}"))
            self.close()

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._fail(ConnectionError(f"the server closed the connection{f': {exc}' if exc else ''}"))

    # -- httptools callbacks -----------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer, self._answer = self._answer, None
        body = b"".join(self._body)
        self._body.clear()
        if not self._parser.should_keep_alive():
            self.close()
        if answer is not None and not answer.done():
            answer.set_result((self._parser.get_status_code(), body))

    # -- requests ------------------------------------------------------------------------------

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send ``data`` (a whole request); the answer's status and body."""
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        try:
            return await self._answer
        except asyncio.CancelledError:
            self.close()  # its answer may still come: the connection is out of step
            raise

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _fail(self, error: Exception) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(error)


class ConnectionPool:
    """Up to ``limit`` keep-alive connections to the server of ``url`` (``http://host:port``)."""

    def __init__(self, url: str, limit: int = 64):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http://host[:port] URL, got {url!r}")
        if int(limit) < 1:
            raise ValueError("limit must be at least 1")
        self.host = parts.hostname
        self.port = parts.port or 80
        #: the Host header's value, as the URL names the server
        self.authority = parts.netloc
        self._slots = asyncio.Semaphore(int(limit))
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send one whole request (``data``: head and body); the answer's status and body."""
        async with self._slots:
            connection = await self._connection()
            try:
                return await connection.request(data)
            finally:
                if connection.closed:
                    self._all.discard(connection)
                else:
                    self._idle.append(connection)

    async def close(self) -> None:
        for connection in self._all:
            connection.close()
        self._all.clear()
        self._idle.clear()

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:  # the server may have closed it while it was idle
                return connection
            self._all.discard(connection)
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, self.host, self.port)
        self._all.add(connection)
        return connection
