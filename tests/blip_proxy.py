"""A TCP proxy on 127.0.0.1:0 whose connections can be cut: a network blip on demand, or
bytes lost in flight (swallowed on the way to the upstream, then the connection cut, as a
network that fails silently before it resets)."""

from __future__ import annotations

import asyncio
import contextlib


class BlipProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._refusing = False
        self._swallowing = False
        self.swallowed = 0
        """Bytes from clients that never reached the upstream (see lose_in_flight)."""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.close()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool
        ) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if upstream and self._swallowing:
                        self.swallowed += len(data)
                        continue
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        self._writers -= {writer, up_writer}

    async def blip(self, seconds: float) -> None:
        """Cut every connection and refuse new ones for ``seconds``."""
        self._refusing = True
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        await asyncio.sleep(seconds)
        self._refusing = False

    async def lose_in_flight(self, seconds: float) -> None:
        """For ``seconds`` nothing the clients send reaches the upstream (they see their
        writes succeed), then every connection is cut; new ones are accepted at once."""
        self._swallowing = True
        await asyncio.sleep(seconds)
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        self._swallowing = False

    async def close(self) -> None:
        self._refusing = True
        for w in list(self._writers):
            w.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
