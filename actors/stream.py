"""A framed request/reply transport over TCP: the cheap path between stages.

A Ray actor call costs about 1 ms of CPU on a small machine, summed over the
processes it passes through; one order per call is then bound by Ray, not by
the stages. Here a stage opens a TCP server inside its actor (the actor stays
a Ray actor: it is created, placed, named and watched through Ray) and its
clients keep one connection each, with many requests in flight on it.

Every frame starts with a 24-byte header, three little-endian 64-bit words:
request id, an integer argument, payload length. A request's payload is one
array's bytes, its argument a small integer (a backend id, say); a reply's
argument is the number of arrays in the payload, each prefixed by its
length, or ``ERROR`` with ``"Type: message"`` text instead. Replies carry
the id of their request and may come back out of order, so a server may
group concurrent requests (the backend's group commit does).

Bad input never takes a server down: a payload that is not a whole number of
records, or a handler error, is answered with an error frame; a header that
announces an absurd length closes only that connection.
"""

import asyncio
import itertools
import struct
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from actors.wire import BadBatch

__all__ = ["StreamServer", "StreamClient", "StreamError", "MAX_PAYLOAD"]

_HEADER = struct.Struct("<QqQ")
_LENGTH = struct.Struct("<Q")
ERROR = -1
#: The largest payload accepted (1 GiB): anything longer is a broken peer.
MAX_PAYLOAD = 1 << 30

Handler = Callable[[np.ndarray, int], Awaitable[Sequence[np.ndarray]]]


class StreamError(RuntimeError):
    """The server answered a request with an error (its type and message)."""


class StreamServer:
    """Serves ``handler(batch, arg) -> arrays`` for requests of ``dtype`` records."""

    def __init__(self, handler: Handler, dtype: np.dtype, in_order: bool = False):
        """``in_order``: the handler never waits (an engine shard's): each request of a
        connection is answered before the next is read, with no task of its own."""
        self._handler = handler
        self._dtype = np.dtype(dtype)
        self._in_order = in_order
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self, host: str = "0.0.0.0", port: int = 0) -> int:
        """Start listening; returns the port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_id, arg, length = _HEADER.unpack(await reader.readexactly(_HEADER.size))
                if length > MAX_PAYLOAD:
                    _write_error(writer, request_id, f"BadBatch: payload of {length} bytes")
                    await writer.drain()
                    return
                payload = await reader.readexactly(length)
                if self._in_order:
                    await self._answer(writer, request_id, arg, payload)
                    continue
                task = asyncio.ensure_future(self._answer(writer, request_id, arg, payload))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the server is shutting down
        finally:
            writer.close()

    async def _answer(self, writer, request_id: int, arg: int, payload: bytes) -> None:
        try:
            if len(payload) % self._dtype.itemsize:
                raise BadBatch(
                    f"payload of {len(payload)} bytes is not a whole number of "
                    f"{self._dtype.itemsize}-byte records"
                )
            arrays = await self._handler(np.frombuffer(payload, self._dtype), arg)
        except Exception as exc:  # the client hears of it; the server goes on
            _write_error(writer, request_id, f"{type(exc).__name__}: {exc}")
        else:
            _write_arrays(writer, request_id, arrays)
        try:
            await writer.drain()
        except ConnectionError:
            pass


class StreamClient:
    """One connection to a :class:`StreamServer`, shared by concurrent calls."""

    def __init__(self, address: tuple[str, int], reply_dtype):
        """``reply_dtype``: the replies' record type, or one per array of a reply
        (the last one for any array past them)."""
        self.address = tuple(address)
        kinds = reply_dtype if isinstance(reply_dtype, (list, tuple)) else [reply_dtype]
        self._reply_dtypes = [np.dtype(d) for d in kinds]
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._connecting: asyncio.Lock | None = None
        self._reader: asyncio.Task | None = None

    async def call(self, batch: np.ndarray, arg: int = 0) -> list[np.ndarray]:
        """Send ``batch``; the reply's arrays (``StreamError`` if the server failed it)."""
        writer = await self._connection()
        request_id = next(self._ids)
        data = np.ascontiguousarray(batch)
        header = _HEADER.pack(request_id, arg, data.nbytes)  # raises before anything waits
        done = asyncio.get_running_loop().create_future()
        self._pending[request_id] = done
        # One writelines, one send: a second syscall per frame shows at one order per call.
        writer.writelines((header, _bytes_of(data)))
        await writer.drain()
        return await done

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    async def _connection(self) -> asyncio.StreamWriter:
        if self._writer is not None and not self._writer.is_closing():
            return self._writer
        self._connecting = self._connecting or asyncio.Lock()
        async with self._connecting:
            if self._writer is None or self._writer.is_closing():
                reader, self._writer = await asyncio.open_connection(*self.address)
                # Kept: the loop holds only weak references to tasks.
                self._reader = asyncio.ensure_future(self._read_replies(reader))
        return self._writer

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        # Whatever ends this loop fails every call still waiting, with the reason, and
        # closes the connection so that the next call opens a new one: a call must never
        # wait on a stream that nobody reads.
        try:
            while True:
                request_id, arg, length = _HEADER.unpack(await reader.readexactly(_HEADER.size))
                payload = await reader.readexactly(length)
                if arg == ERROR:
                    reply = _remote_error(payload.decode(errors="replace"))
                else:  # parsed before its call leaves the pending ones, so a bad one fails it
                    reply = _read_arrays(payload, arg, self._reply_dtypes)
                done = self._pending.pop(request_id, None)
                if done is None or done.done():
                    continue
                if arg == ERROR:
                    done.set_exception(reply)
                else:
                    done.set_result(reply)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self._fail_pending(ConnectionError(f"stream to {self.address} closed: {exc}"))
        except asyncio.CancelledError:
            self._fail_pending(ConnectionError(f"stream to {self.address} closed"))
            raise
        except Exception as exc:  # a malformed reply, say: the stream is no longer in step
            self._fail_pending(
                StreamError(f"stream to {self.address} failed: {type(exc).__name__}: {exc}")
            )
        finally:
            if self._writer is not None:
                self._writer.close()

    def _fail_pending(self, error: Exception) -> None:
        for done in self._pending.values():
            if not done.done():
                done.set_exception(error)
        self._pending.clear()


def _remote_error(text: str) -> Exception:
    # A malformed batch stays a BadBatch for the caller, as over Ray.
    return BadBatch(text) if text.startswith("BadBatch") else StreamError(text)


def _write_error(writer, request_id: int, text: str) -> None:
    data = text.encode()
    writer.write(_HEADER.pack(request_id, ERROR, len(data)) + data)


def _write_arrays(writer, request_id: int, arrays: Sequence[np.ndarray]) -> None:
    parts = [np.ascontiguousarray(a) for a in arrays]
    length = sum(_LENGTH.size + a.nbytes for a in parts)
    chunks = [_HEADER.pack(request_id, len(parts), length)]
    for a in parts:
        chunks += [_LENGTH.pack(a.nbytes), _bytes_of(a)]
    writer.writelines(chunks)


def _bytes_of(a: np.ndarray) -> memoryview:
    return memoryview(a.view(np.uint8))


def _read_arrays(payload: bytes, count: int, dtypes: list[np.dtype]) -> list[np.ndarray]:
    out, at = [], 0
    for k in range(count):
        dtype = dtypes[min(k, len(dtypes) - 1)]
        (n,) = _LENGTH.unpack_from(payload, at)
        at += _LENGTH.size
        out.append(np.frombuffer(payload, dtype, n // dtype.itemsize, at))
        at += n
    return out
