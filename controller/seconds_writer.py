"""Writes runs' sealed seconds to the results store from a thread of its own, in
batches, so the event loop never waits for the disk (the store's SQLite implementation
gives the thread a connection of its own).

The loop hands over batches (``submit``) and later collects what became of them
(``outcomes``): a batch the store refused (disk full, read-only file, ...) comes back with
the error, and its seconds are handed over again with the next batch.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass

from controller.store import RunStore, StoredSecond

log = logging.getLogger("snowload.controller")


@dataclass(frozen=True)
class Outcome:
    """What became of one batch: its seconds, and the store's error if it refused them."""

    run_id: str
    seconds: tuple[int, ...]
    error: str = ""


class SecondsWriter:
    def __init__(self, store: RunStore) -> None:
        self._store = store
        self._queue: queue.Queue[tuple[str, list[StoredSecond]] | None] = queue.Queue()
        self._outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="seconds-writer", daemon=True)
        self._thread.start()

    def submit(self, run_id: str, seconds: list[StoredSecond]) -> None:
        if seconds:
            self._queue.put((run_id, seconds))

    def outcomes(self) -> list[Outcome]:
        """What was written or refused since the last call."""
        with self._lock:
            out, self._outcomes = self._outcomes, []
        return out

    async def drain(self) -> None:
        """Until everything submitted so far is written (or refused)."""
        await asyncio.to_thread(self._queue.join)

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            batch = [item]
            while True:  # what queued up meanwhile goes into the same transactions
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # (after this batch)
                    self._queue.task_done()
                    break
                batch.append(more)
            by_run: dict[str, list[StoredSecond]] = {}
            for run_id, seconds in batch:
                by_run.setdefault(run_id, []).extend(seconds)
            for run_id, seconds in by_run.items():
                self._write(run_id, seconds)
            for _ in batch:
                self._queue.task_done()

    def _write(self, run_id: str, seconds: list[StoredSecond]) -> None:
        numbers = tuple(sorted({s.second for s in seconds}))
        try:
            latest = {s.second: s for s in seconds}  # (a second handed over twice: its newest)
            self._store.append_seconds(run_id, [latest[n] for n in numbers])
        except Exception as exc:  # disk full, read-only, locked: the run goes on
            error = f"{type(exc).__name__}: {exc}"
            log.warning("run %s: could not store seconds %s: %s", run_id, _span(numbers), error)
            outcome = Outcome(run_id, numbers, error)
        else:
            outcome = Outcome(run_id, numbers)
        with self._lock:
            self._outcomes.append(outcome)


def _span(numbers: tuple[int, ...]) -> str:
    return f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
