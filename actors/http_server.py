"""An ASGI app served by uvicorn on the caller's event loop (an actor's, or this process's).

The stage that owns the loop owns the server: uvicorn neither starts a loop
of its own nor takes the process's signals (Ctrl-C stays with the program
that serves, ``lab serve`` or a test), and the socket is bound before the
server starts, so port 0 gives a free port that the caller learns at once.
"""

import asyncio
import contextlib
import socket

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HttpServer"]

_START_S = 30.0


class _StageServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        yield  # the program that serves handles its own signals


class _CorkedTransport:
    """A connection's writes of one turn of the loop, sent as one.

    uvicorn writes an answer's head and its body apart: two system calls (and,
    without TCP_NODELAY, a delayed ACK between them). Joined, an answer costs
    one ``send`` however it was written, and answers to pipelined requests
    share it too.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def writelines(self, lines) -> None:
        for data in lines:
            self.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def __getattr__(self, name):  # everything else is the real transport's
        return getattr(self._transport, name)


class _CorkedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through :class:`_CorkedTransport`."""

    def connection_made(self, transport) -> None:
        super().connection_made(_CorkedTransport(transport, self.loop))


class HttpServer:
    def __init__(self, app):
        self.app = app
        self._server: _StageServer | None = None
        self._task: asyncio.Task | None = None

    async def start(self, host: str = "0.0.0.0", port: int = 0, reuse_port: bool = False) -> int:
        """Serve from now on; returns the port.

        ``reuse_port``: share the port with the other servers of this host that ask
        for it too; the kernel spreads new connections over them.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        # Accepted sockets inherit it: an answer's headers and body go out as two
        # writes, and Nagle held the body back for the client's delayed ACK (40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # httptools parses HTTP in C (h11, uvicorn's fallback, is pure Python).
            http=_CorkedHttpToolsProtocol,
            timeout_keep_alive=60,
            backlog=4096,
        )
        self._server = _StageServer(config)
        self._task = asyncio.ensure_future(self._server.serve(sockets=[sock]))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_S
        while not self._server.started:
            if self._task.done():
                self._task.result()  # the reason it could not start
            if loop.time() > deadline:
                raise RuntimeError(f"the HTTP server did not start within {_START_S:g} s")
            await asyncio.sleep(0.01)
        return sock.getsockname()[1]

    async def close(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None
