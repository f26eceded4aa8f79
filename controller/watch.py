"""Fan-out of run updates to WatchRun subscribers.

Each subscriber has a one-slot mailbox that always holds the newest update: a slow or
stalled client never slows the controller or other clients, it just skips intermediate
updates. The terminal update is sticky: once published, every subscriber (also one that
subscribes later) gets it as its last message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from snowload.v1 import run_pb2


class Subscription:
    def __init__(self) -> None:
        self._latest: run_pb2.WatchRunResponse | None = None
        self._event = asyncio.Event()
        self.delivered = 0
        self.skipped = 0

    def offer(self, update: run_pb2.WatchRunResponse) -> None:
        if self._latest is not None:
            self.skipped += 1
        self._latest = update
        self._event.set()

    async def updates(self) -> AsyncIterator[run_pb2.WatchRunResponse]:
        while True:
            await self._event.wait()
            self._event.clear()
            update, self._latest = self._latest, None
            if update is None:
                continue
            self.delivered += 1
            yield update
            if update.final:
                return


class Broadcaster:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self.final: run_pb2.WatchRunResponse | None = None
        self.last_publish = 0.0
        """time.monotonic() of the last update published."""

    def subscribe(self, snapshot: run_pb2.WatchRunResponse) -> Subscription:
        sub = Subscription()
        sub.offer(self.final if self.final is not None else snapshot)
        if self.final is None:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, update: run_pb2.WatchRunResponse) -> None:
        if self.final is not None:
            return
        self.last_publish = time.monotonic()
        if update.final:
            self.final = update
        for sub in self._subs:
            sub.offer(update)
        if update.final:
            self._subs.clear()

    @property
    def subscribers(self) -> int:
        return len(self._subs)
