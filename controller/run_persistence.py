"""Runs' seconds in the results store while they go on, and the runs a crashed controller
left (for controller/orchestrator.py's RunManager; what is stored when:
docs/persistence.md).

Once a second the sealed seconds of every active run are handed to the writer thread
(controller/seconds_writer.py) and what it did with earlier ones goes back to each run's
journal (controller/run_journal.py); stored seconds older than the journal's window leave
memory. At the end of a run its last seconds are written before its row and totals.
"""

from __future__ import annotations

import asyncio
import logging

from controller.recovery import InterruptedRun, recover
from controller.run_journal import FLUSH_INTERVAL_S
from controller.runs import ActiveRun
from controller.seconds_writer import SecondsWriter
from controller.store import RunStore
from snowload.v1 import common_pb2

log = logging.getLogger("snowload.controller")


class RunPersistence:
    store: RunStore
    active: dict[str, ActiveRun]
    writer: SecondsWriter
    interrupted: dict[str, InterruptedRun]
    _flusher: asyncio.Task[None] | None

    def start_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_seconds())

    async def close_writer(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await asyncio.to_thread(self.writer.close)

    def recover(self) -> None:
        """Close the runs a previous controller left active (at start, before serving)."""
        for interrupted in recover(self.store):
            self.interrupted[interrupted.run_id] = interrupted
        if self.interrupted:
            asyncio.get_running_loop().create_task(self._close_interrupted())

    async def _close_interrupted(self) -> None:
        while self.interrupted:
            await asyncio.sleep(0.25)
            for run_id, interrupted in list(self.interrupted.items()):
                if interrupted.done:
                    self.close_interrupted(run_id)

    def close_interrupted(self, run_id: str) -> None:
        """Store what the workers of an interrupted run sent again, and its totals."""
        interrupted = self.interrupted.pop(run_id)
        try:
            interrupted.close()
        except Exception:
            log.exception("run %s: could not store what its workers sent again", run_id)
        else:
            log.info(
                "run %s: %d interval(s) sent again by its workers added, %d already counted",
                run_id,
                interrupted.added,
                interrupted.ignored,
            )

    async def _flush_seconds(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            self._hand_over()

    def _hand_over(self) -> None:
        """Sealed seconds of every active run to the writer; what it did with earlier
        ones back to their runs."""
        for run in self.active.values():
            self.writer.submit(run.run_id, run.journal.take())
        for outcome in self.writer.outcomes():
            run_of = self.active.get(outcome.run_id)
            if run_of is None:
                continue  # (ended: nothing to tell)
            error = run_of.journal.settled(outcome)
            if error:
                run = run_of
                run.warnings.append(
                    f"results store: seconds of this run could not be written ({error}); "
                    "they are kept in memory and written again until the store accepts them"
                )
                log.warning("run %s: %s", run.run_id, run.warnings[-1])
        for run in self.active.values():
            run.journal.forget_old()

    async def _store_seconds(self, run: ActiveRun) -> None:
        """The run is over: its last seconds (complete or not) go to the store."""
        run.metrics.settle()
        for _ in range(3):  # (a late report, or a refusal, leaves some to write again)
            self.writer.submit(run.run_id, run.journal.take())
            await self.writer.drain()
            self._hand_over()
            if not run.journal.unwritten:
                break

    def stored_and_live_series(self, run_id: str) -> list[common_pb2.SeriesPoint]:
        """The series of a run: an active run's older seconds are only in the store."""
        run = self.active.get(run_id)
        if run is None:
            return self.store.series(run_id)
        points = {p.second: p for p in self.store.series(run_id)}
        points.update((p.second, p) for p in run.metrics.series_protos())
        return [p for _, p in sorted(points.items())]
