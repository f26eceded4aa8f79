"""A delaying TCP proxy: every new connection waits ``delay_s`` before it is connected
upstream, then bytes flow both ways unchanged.

It stands in for a slow network or a slow server handshake (e.g. a cloud database whose
connects take a second) in front of a real server. The proxy runs its own asyncio event
loop in its own thread, so synchronous code (benchmarks, sync tests) and asynchronous
tests (whose event loop must not be blocked) can both use it::

    with DelayProxy("127.0.0.1", pg.port, delay_s=0.3) as proxy:
        dsn = f"host=127.0.0.1 port={proxy.port} dbname=postgres user=postgres"
        ...
        assert proxy.max_in_flight <= 10

It listens on 127.0.0.1 port 0 (a free port chosen by the kernel). "Connects in flight"
are accepted connections still in their delay; the proxy keeps the current number, the
most ever seen, the total accepted, and per connection the times (``time.time_ns()``) it
was accepted and its delay ended with the upstream connection established.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass
from types import TracebackType

CHUNK = 64 * 1024


@dataclass(frozen=True)
class ProxiedConnection:
    accepted_ns: int
    """``time.time_ns()`` when the proxy accepted the client."""
    connected_ns: int
    """``time.time_ns()`` when the delay ended and the upstream connection was open;
    0 if it never was (the upstream refused, or the proxy stopped during the delay)."""


class DelayProxy:
    def __init__(self, upstream_host: str, upstream_port: int, delay_s: float) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.delay_s = delay_s
        self._lock = threading.Lock()
        self._in_flight = 0
        self._max_in_flight = 0
        self._accepted = 0
        self._connections: list[ProxiedConnection] = []
        self._open_upstream = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    # -- what the proxy has seen (safe to read from any thread) -------------------------

    @property
    def in_flight(self) -> int:
        """Connections accepted and still in their delay."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    @property
    def accepted(self) -> int:
        with self._lock:
            return self._accepted

    @property
    def open_upstream(self) -> int:
        """Connections currently piped to the upstream server."""
        with self._lock:
            return self._open_upstream

    def connections(self) -> list[ProxiedConnection]:
        """Every connection that finished its delay (or failed), in completion order."""
        with self._lock:
            return list(self._connections)

    def reset_max(self) -> None:
        with self._lock:
            self._max_in_flight = self._in_flight

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> DelayProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._main, name="delay-proxy", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise RuntimeError(f"delay proxy did not start within {timeout_s}s")
        if self._start_error is not None:
            raise RuntimeError("delay proxy failed to start") from self._start_error

    def stop(self, timeout_s: float = 10.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError(f"delay proxy did not stop within {timeout_s}s")

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", 0, backlog=1024, reuse_address=True
            )
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            raise
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    # -- one connection ------------------------------------------------------------------

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        accepted_ns = time.time_ns()
        with self._lock:
            self._accepted += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        upstream_w: asyncio.StreamWriter | None = None
        connected_ns = 0
        try:
            try:
                await asyncio.sleep(self.delay_s)
                upstream_r, upstream_w = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port
                )
                connected_ns = time.time_ns()
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._connections.append(ProxiedConnection(accepted_ns, connected_ns))
                    if connected_ns:
                        self._open_upstream += 1
            await asyncio.gather(_pipe(client_r, upstream_w), _pipe(upstream_r, client_w))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if connected_ns:
                with self._lock:
                    self._open_upstream -= 1
            for w in (client_w, upstream_w):
                if w is not None:
                    w.close()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side (so the peer sees the EOF too)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        if writer.can_write_eof():
            with contextlib.suppress(OSError):
                writer.write_eof()
