"""Runs a crashed controller left active: closed on restart as FAILED
``controller_restarted``, with the numbers of every second it had stored merged again
into per-phase and per-kind totals (the same merge and summaries as a finished run), and
open for a while to the intervals their workers send again when they re-attach.

What happens when a worker of such a run re-attaches: the controller tells it to stop
(``Stop``, reason ``run_ended``), as for any run that is over. The worker sends its
recent interval reports again (its last 16), then its last one and ``Finished``. An
interval of a second the store already holds is ignored (a stored second was complete:
every worker's interval in it was counted); an interval of a later second is added, once
per worker and interval. When every worker of the run has finished, or
``RECOVERY_WINDOW_S`` after the restart, the added seconds are stored and the totals
merged again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from controller import lifecycle as lc
from controller import slo
from controller.metrics import RunMetrics
from controller.run_end import total_histograms
from controller.run_journal import stored_second
from controller.store import RunRecord, RunStore, StoredSecond
from snowload.v1 import common_pb2, control_pb2, run_pb2
from snowload.workload import WorkloadError, parse_json

log = logging.getLogger("snowload.controller")
RECOVERY_WINDOW_S = 30.0
"""How long after a restart the intervals of an interrupted run's workers are taken."""


class InterruptedRun:
    def __init__(self, store: RunStore, run: run_pb2.Run) -> None:
        self.store = store
        self.run = run
        self.metrics = RunMetrics()
        stored = store.stored_seconds(run.run_id)
        for second in stored:
            self.metrics.restore(second.second, second.cells)
            self.metrics.restore_schedules(second.point, second.schedules)
        self.points = {s.second: s.point for s in stored}
        self.stored_upto = max(self.points, default=0)
        """Reports for seconds up to this one were all counted before the crash."""
        self.metrics.origin_ns = (
            run.plan.load_start_time.ToNanoseconds() or run.start_time.ToNanoseconds()
        )
        self.workers = {w.worker_id for w in run.run_workers}
        self.finished: set[str] = set()
        self.added = 0
        self.ignored = 0
        self.deadline = time.monotonic() + RECOVERY_WINDOW_S

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def done(self) -> bool:
        return self.workers <= self.finished or time.monotonic() >= self.deadline

    def add(self, worker_id: str, report: control_pb2.MetricsReport) -> bool:
        """An interval a worker of the run sent again; False if it was counted already."""
        if worker_id not in self.workers or report.interval_id <= self.stored_upto:
            self.ignored += 1
            return False
        if not self.metrics.add(worker_id, report):
            self.ignored += 1
            return False
        self.added += 1
        return True

    def finish(self, worker_id: str) -> None:
        self.finished.add(worker_id)

    def close(self) -> None:
        """Store the seconds the workers sent again, and the totals over every second."""
        self.metrics.settle()
        added: list[StoredSecond] = [
            stored_second(p) for s, p in sorted(self.metrics.series.items()) if p.sealed
        ]
        if added:
            self.store.append_seconds(self.run_id, added)
            self.points.update((s.second, s.point) for s in added)
        self.summarize()

    def summarize(self) -> None:
        """Totals and summary from every second known (stored and sent again), marked as
        interrupted, written with the run."""
        run = self.run
        ends = _phase_ends(self.points.values())
        if lc.WARMUP in ends and run.HasField("measurement_start_time"):
            ends[lc.WARMUP] = run.measurement_start_time.ToNanoseconds()
        run.summary.Clear()
        for phase in (lc.WARMUP, lc.MEASUREMENT):
            began = _phase_start(run, phase)
            if phase not in ends or not began:
                continue
            summary = self.metrics.phase_summary(phase, max(0.0, (ends[phase] - began) / 1e9))
            if summary is not None:
                run.summary.phases.append(summary)
        if lc.MEASUREMENT in ends:
            run.measurement_end_time.FromNanoseconds(ends[lc.MEASUREMENT])
        self._judge()
        upto = max(self.points, default=0)
        run.message = (
            "the controller stopped while this run was active; its numbers cover the "
            f"{len(self.points)} second(s) stored up to second {upto}"
            + (f" ({self.added} interval(s) sent again by its workers)" if self.added else "")
        )
        note = "interrupted: " + run.message
        kept = [w for w in run.warnings if not w.startswith("interrupted: ")]
        del run.warnings[:]
        run.warnings.extend([*kept, note])
        self.store.save(RunRecord(run=run, histograms=total_histograms(self.metrics)))

    def _judge(self) -> None:
        """The SLO verdicts on the MEASUREMENT it covers (the same evaluation as a
        finished run's), if it reached MEASUREMENT."""
        run = self.run
        del run.slo[:]
        run.slo_passed = False
        measurement = next((p for p in run.summary.phases if p.phase == lc.MEASUREMENT), None)
        if measurement is None or not run.workload_json:
            return
        try:
            workload = parse_json(run.workload_json)
        except WorkloadError:
            log.warning("run %s: its stored workload no longer parses: no SLO verdicts", run.run_id)
            return
        run.slo.extend(slo.evaluate(workload.slo, measurement))
        run.slo_passed = bool(run.slo) and all(v.passed for v in run.slo)


def recover(store: RunStore) -> list[InterruptedRun]:
    """Close the runs a crashed controller left active, with their stored numbers."""
    out = []
    for run_id in store.close_interrupted():
        run = store.get(run_id)
        if run is None:
            continue
        interrupted = InterruptedRun(store, run)
        try:
            interrupted.summarize()
        except Exception:  # (a damaged store must not keep the controller down)
            log.exception("run %s: could not merge its stored seconds", run_id)
            continue
        out.append(interrupted)
        log.warning(
            "run %s was left active by a previous controller: closed as failed, with %d "
            "stored second(s)",
            run_id,
            len(interrupted.points),
        )
    return out


def _phase_start(run: run_pb2.Run, phase: int) -> int:
    if phase == lc.MEASUREMENT:
        return run.measurement_start_time.ToNanoseconds()
    for event in run.events:
        if event.state == phase:
            return event.event_time.ToNanoseconds()
    return 0


def _phase_ends(points: Iterable[common_pb2.SeriesPoint]) -> dict[int, int]:
    """The end of the last second of each phase."""
    ends: dict[int, int] = {}
    for point in points:
        end = point.end_time.ToNanoseconds()
        ends[point.phase] = max(ends.get(point.phase, 0), end)
    return ends
