"""A TCP relay that adds a fixed one-way delay to every byte, both ways: a slow link.

Run it as a process (inside a network namespace, see tests/netns.py)::

    python -m tests.net_relay --listen 127.0.0.1:0 --upstream 10.200.0.10:7070 --delay-ms 40

It prints ``listening on HOST:PORT`` (or ``listening on unix:PATH``) on stdout once it
accepts connections. Each chunk read from one side is written to the other ``delay``
after it was read, in order, so a request/response round trip through the relay takes
twice the delay more than without it (the kernel has no netem here).

A relayed connection ends as a network path ends: when either side goes away the other
is reset (SO_LINGER 0), discarding what the kernel still buffers, so bytes in flight
during a partition are really lost rather than delivered late on a dead stream. An
upstream connect that does not complete within ``--connect-timeout`` closes the client
(the client retries, as it would against an unreachable host).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import struct
import sys
import time

CHUNK = 64 * 1024


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a RST: what the kernel still buffers is dropped, not sent."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family != socket.AF_UNIX:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                return
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((time.monotonic() + delay_s, data))
            if sender.done():
                break
        queue.put_nowait((0.0, b""))
        await sender
    finally:
        sender.cancel()


class Relay:
    def __init__(self, upstream: tuple[str, int], delay_s: float, connect_timeout_s: float):
        self.upstream = upstream
        self.delay_s = delay_s
        self.connect_timeout_s = connect_timeout_s

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), self.connect_timeout_s
            )
        except (OSError, TimeoutError):
            _reset(client_w)
            return
        for w in (client_w, up_w):
            sock = w.get_extra_info("socket")
            if sock is not None and sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ways = [
            asyncio.create_task(_pump(client_r, up_w, self.delay_s)),
            asyncio.create_task(_pump(up_r, client_w, self.delay_s)),
        ]
        try:
            await asyncio.wait(ways, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass
        finally:
            for task in ways:
                task.cancel()
            # one side went away (or errored): the path is gone for both
            _reset(client_w)
            _reset(up_w)


async def _watch_parent(pid: int) -> None:
    while os.getppid() == pid:
        await asyncio.sleep(0.5)


async def main_async(args: argparse.Namespace) -> None:
    host, port = args.upstream.rsplit(":", 1)
    relay = Relay((host, int(port)), args.delay_ms / 1000.0, args.connect_timeout)
    if args.listen.startswith("unix:"):
        path = args.listen.removeprefix("unix:")
        server = await asyncio.start_unix_server(relay.handle, path)
        shown = args.listen
    else:
        lhost, lport = args.listen.rsplit(":", 1)
        server = await asyncio.start_server(relay.handle, lhost, int(lport), backlog=1024)
        shown = f"{lhost}:{server.sockets[0].getsockname()[1]}"
    print(f"listening on {shown}", flush=True)
    async with server:
        if args.parent_pid:
            await _watch_parent(args.parent_pid)
        else:
            await server.serve_forever()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", required=True, help="HOST:PORT (port 0: any) or unix:PATH")
    p.add_argument("--upstream", required=True, help="HOST:PORT")
    p.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay, each direction")
    p.add_argument("--connect-timeout", type=float, default=1.0, help="upstream connect (s)")
    p.add_argument("--parent-pid", type=int, default=0, help="exit when this process dies")
    args = p.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
