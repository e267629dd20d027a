"""An ASGI app served by uvicorn on the caller's event loop (an actor's, or this process's).

The stage that owns the loop owns the server: uvicorn neither starts a loop
of its own nor takes the process's signals (Ctrl-C stays with the program
that serves, ``lab serve`` or a test), and the socket is bound before the
server starts, so port 0 gives a free port that the caller learns at once.
"""

import asyncio
import contextlib
import importlib.util
import socket

import uvicorn

__all__ = ["HttpServer"]

_START_S = 30.0


class _StageServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        yield  # the program that serves handles its own signals


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
            # httptools parses HTTP in C; h11, uvicorn's fallback, is pure Python.
            http="httptools" if importlib.util.find_spec("httptools") else "h11",
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
