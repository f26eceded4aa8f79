"""Runs' seconds in the results store while they go on, and the runs a crashed controller
left (for controller/orchestrator.py's RunManager; what is stored when:
docs/persistence.md).

Once a second the sealed seconds of every active run are handed to the writer thread
(controller/seconds_writer.py) and what it did with earlier ones goes back to each run's
journal (controller/run_journal.py); stored seconds older than the journal's window leave
memory. At the end of a run its last seconds are written before its row and totals.

A run that ended while the store refused writes (a full or read-only filesystem) stays in
memory, whole: GetRun and GetRunSeries answer from it, and its warnings say it was not
stored. Once a second its seconds and record are offered to the store again, until it
takes them.
"""

from __future__ import annotations

import asyncio
import logging
import time

from controller.recovery import InterruptedRun, recover
from controller.run_end import run_record
from controller.run_journal import FLUSH_INTERVAL_S
from controller.runs import ActiveRun
from controller.seconds_writer import Outcome, SecondsWriter
from controller.store import RunStore
from snowload.v1 import common_pb2

log = logging.getLogger("snowload.controller")


class RunPersistence:
    store: RunStore
    active: dict[str, ActiveRun]
    writer: SecondsWriter
    interrupted: dict[str, InterruptedRun]
    unsaved: dict[str, ActiveRun]
    """Ended runs the store refused: kept until it takes them."""
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
            self._save_unsaved()

    def keep_unsaved(self, run: ActiveRun, error: Exception) -> None:
        """The store refused the record of a run that ended: keep the run in memory, say
        so in it, and store it once the store takes writes again."""
        run.warnings.append(_unsaved_warning(f"{type(error).__name__}: {error}"))
        log.warning("run %s: %s", run.run_id, run.warnings[-1])
        self.unsaved[run.run_id] = run
        self.start_flusher()

    def _save_unsaved(self) -> None:
        for run_id, run in list(self.unsaved.items()):
            if run.journal.unwritten:
                continue  # (its seconds first: handed over with the others)
            warnings = list(run.warnings)
            at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
            run.warnings[:] = [_saved_late(w, at) for w in warnings]
            try:
                self.store.save(run_record(run))
            except Exception as exc:  # (still refused: the next tick tries again)
                run.warnings[:] = warnings
                log.debug("run %s: still not stored: %s", run_id, exc)
                continue
            del self.unsaved[run_id]
            log.info("run %s: stored, once the results store took writes again", run_id)

    def give_up_unsaved(self) -> None:
        """The controller stops: a last try for the runs the store refused; what it still
        refuses is lost, and the log says so."""
        for outcome in self.writer.outcomes():
            kept = self.unsaved.get(outcome.run_id)
            if kept is not None:
                kept.journal.settled(outcome)
        for run in self.unsaved.values():
            seconds = run.journal.take()
            try:  # (the writer thread has stopped)
                if seconds:
                    self.store.append_seconds(run.run_id, seconds)
            except Exception:
                continue
            run.journal.settled(Outcome(run.run_id, tuple(s.second for s in seconds)))
        self._save_unsaved()
        for run_id in self.unsaved:
            log.error(
                "run %s: the results store still refuses writes: its results are lost", run_id
            )

    def _with_seconds_to_write(self) -> dict[str, ActiveRun]:
        return {**self.unsaved, **self.active}

    def _hand_over(self) -> None:
        """Sealed seconds of every active run to the writer; what it did with earlier
        ones back to their runs."""
        runs = self._with_seconds_to_write()
        for run in runs.values():
            self.writer.submit(run.run_id, run.journal.take())
        for outcome in self.writer.outcomes():
            run_of = runs.get(outcome.run_id)
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
        run = self.active.get(run_id) or self.unsaved.get(run_id)
        if run is None:
            return self.store.series(run_id)
        points = {p.second: p for p in self.store.series(run_id)}
        points.update((p.second, p) for p in run.metrics.series_protos())
        return [p for _, p in sorted(points.items())]


_UNSAVED = "results store: this run was not stored ("
_KEPT = (
    "); this controller keeps its results in memory and stores them as soon as the store "
    "takes writes again"
)


def _unsaved_warning(error: str) -> str:
    return _UNSAVED + error + _KEPT


def _saved_late(warning: str, at: str) -> str:
    """The warning of a run that was not stored, once it was."""
    if not (warning.startswith(_UNSAVED) and warning.endswith(_KEPT)):
        return warning
    error = warning[len(_UNSAVED) : -len(_KEPT)]
    return (
        f"results store: this run could not be stored when it ended ({error}); "
        f"it was stored at {at}, once the store took writes again"
    )
