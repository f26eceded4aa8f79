"""What workers tell the controller, applied to the runs they belong to.

RunManager (controller/orchestrator.py) inherits these handlers; ControlServicer calls
them for each message of a worker's Attach stream, on the event loop, in arrival order.
A message about a run the worker no longer belongs to (dropped, ended) changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from controller import lifecycle as lc
from controller.ingest import IngestStats
from controller.lifecycle import Reason
from controller.recovery import InterruptedRun
from controller.registry import WorkerRecord, WorkerRegistry
from controller.report_check import InvalidReport
from controller.runs import ActiveRun, Outcome, seconds
from snowload.v1 import control_pb2
from snowload.workload import OnWorkerLoss

log = logging.getLogger("snowload.controller")
LATE_WARN_NS = 1_000_000
"""A planned command that arrived more than this after its instant is worth a warning."""
CLOCK_WARN_NS = 10_000_000
"""A worker whose clock offset is uncertain by more than this is worth a warning."""


class WorkerEvents:
    registry: WorkerRegistry
    active: dict[str, ActiveRun]
    ingest: IngestStats
    interrupted: dict[str, InterruptedRun]

    def _run_of(self, rec: WorkerRecord, run_id: str) -> ActiveRun | None:
        run = self.active.get(run_id)
        if run is None or rec not in run.workers or rec.worker_id in run.dropped:
            return None
        return run

    def worker_ready(self, rec: WorkerRecord, ready: control_pb2.Ready) -> None:
        run = self._run_of(rec, ready.run_id)
        if run is not None:
            run.ready.setdefault(rec.worker_id, time.time_ns())
            if rec.heartbeat is not None:
                self._check_clock(run, rec, rec.heartbeat)
            run.changed.set()

    def worker_finished(self, rec: WorkerRecord, finished: control_pb2.Finished) -> None:
        run = self._run_of(rec, finished.run_id)
        if run is None:
            interrupted = self.interrupted.get(finished.run_id)
            if interrupted is not None:
                interrupted.finish(rec.worker_id)
            return
        run.finished[rec.worker_id] = finished
        run.changed.set()
        if run.state in (lc.PREPARING, *lc.LOAD_PHASES) and not run.abort.done():
            # it left on its own (e.g. SIGTERM drains a worker): same policy as a loss
            self._worker_gone(run, rec, "left the run (it was shut down)", Reason.WORKER_LEFT)

    def worker_failed(self, rec: WorkerRecord, failure: control_pb2.Failure) -> None:
        run = self._run_of(rec, failure.run_id)
        if run is None:
            return
        # the worker is back to idle; it has no last interval to wait for
        run.finished[rec.worker_id] = control_pb2.Finished(run_id=failure.run_id)
        run.request_abort(
            Outcome(lc.FAILED, failure.reason or Reason.WORKER_ERROR, failure.message)
        )
        run.changed.set()

    def worker_pools(self, rec: WorkerRecord, sample: control_pb2.PoolSample) -> None:
        """The setup worker sampled the pools: every worker of the run gets them."""
        run = self._run_of(rec, sample.run_id)
        if run is None:
            return
        run.pools = list(sample.pools)
        for worker in run.workers:
            self.send_pools(run, worker)

    def send_pools(self, run: ActiveRun, rec: WorkerRecord) -> None:
        if run.pools:
            self.registry.send(
                rec,
                control_pb2.AttachResponse(
                    set_pools=control_pb2.SetPools(run_id=run.run_id, pools=run.pools)
                ),
            )

    def worker_heartbeat(self, rec: WorkerRecord, hb: control_pb2.Heartbeat) -> None:
        run = self.active.get(rec.run_id)
        if run is None:
            return
        if run.state == lc.MEASUREMENT:
            samples = run.cpu_samples.get(rec.worker_id)
            if samples is None:  # (not setdefault: it would build a Counter per message)
                samples = run.cpu_samples[rec.worker_id] = Counter()
            samples[round(hb.cpu_percent, 1)] += 1
        if hb.HasField("clock_uncertainty") and rec in run.workers:
            self._check_clock(run, rec, hb)

    def worker_metrics(self, rec: WorkerRecord, report: control_pb2.MetricsReport) -> None:
        """Merge an interval report; InvalidReport (after the run was told, see
        :meth:`_invalid_report`) if it fails its check: the servicer ends the stream."""
        run = self._run_of(rec, report.run_id)
        if run is None:
            interrupted = self.interrupted.get(report.run_id)
            if interrupted is not None:  # a run a crash interrupted: counted at most once
                try:
                    interrupted.add(rec.worker_id, report)
                except InvalidReport as bad:
                    log.warning(
                        "interrupted run %s: worker %s sent an invalid report for interval "
                        "%d, dropped: %s",
                        report.run_id,
                        rec.worker_id,
                        report.interval_id,
                        bad,
                    )
                    raise
            return
        metrics = run.metrics
        complete = metrics.sealed_upto
        merging = time.perf_counter()
        try:
            added = metrics.add(rec.worker_id, report)
        except InvalidReport as bad:
            self._invalid_report(run, rec, report, bad)
            raise
        self.ingest.add(time.perf_counter() - merging)
        if not added:
            run.duplicate_reports[rec.worker_id] += 1
            return
        if report.interval_id <= complete:  # a sealed second changed: store it again
            run.journal.changed(report.interval_id)
        if report.resent:
            # only the resend after a re-attach delivered it: the old stream lost it
            run.recovered_reports[rec.worker_id] += 1
            log.info(
                "run %s: worker %s's interval %d arrived when sent again after a re-attach",
                run.run_id,
                rec.worker_id,
                report.interval_id,
            )
        self._query_failures(run, report)
        if metrics.sealed_upto != complete and run.broadcaster.subscribers:
            run.broadcaster.publish(run.update())  # a second is complete: show it now

    def _invalid_report(
        self,
        run: ActiveRun,
        rec: WorkerRecord,
        report: control_pb2.MetricsReport,
        bad: InvalidReport,
    ) -> None:
        """Nothing of the report was merged; the worker is out of the run, as if lost
        (on_worker_loss): numbers without its intervals from here on cannot be whole, and
        nothing more it sends for the run counts."""
        log.warning(
            "run %s: worker %s on %s sent an invalid report for interval %d, dropped: %s",
            run.run_id,
            rec.worker_id,
            rec.hello.host,
            report.interval_id,
            bad,
        )
        why = f"sent an invalid report for interval {report.interval_id} ({bad})"
        self._worker_gone(run, rec, why, Reason.INVALID_REPORT)
        if rec.worker_id not in run.dropped:  # (failing the run: out of it all the same)
            self._drop(run, rec)

    @staticmethod
    def _query_failures(run: ActiveRun, report: control_pb2.MetricsReport) -> None:
        """Record the report's errors per kind; on_query_failure may end the run."""
        known = len(run.failures.first_errors)
        if not run.failures.observe(report):
            return  # no errors: neither the verdict nor the first errors changed
        why = run.failures.verdict()
        if why and run.state in lc.LOAD_PHASES:
            run.request_abort(Outcome(lc.FAILED, Reason.QUERY_FAILED, why))
        if len(run.failures.first_errors) != known and run.broadcaster.subscribers:
            run.broadcaster.publish(run.update())  # a kind's first error: show it now

    def worker_ack(self, rec: WorkerRecord, ack: control_pb2.Ack) -> None:
        run = self.active.get(rec.run_id)
        if run is None or not ack.HasField("lateness"):
            return
        # a planned command arrived after its instant: it took effect at once, late
        late = ack.lateness.ToNanoseconds()
        worst, count = run.lateness.get(rec.worker_id, (0, 0))
        run.lateness[rec.worker_id] = (max(worst, late), count + 1)
        if late > LATE_WARN_NS and count == 0:
            run.warnings.append(
                f"plan not honoured: worker {rec.worker_id} on {rec.hello.host} received a "
                f"planned command {late / 1e6:.1f} ms after its instant; it took effect on "
                "arrival, so that worker's boundary was late by as much"
            )
            log.warning("run %s: %s", run.run_id, run.warnings[-1])

    def _check_clock(self, run: ActiveRun, rec: WorkerRecord, hb: control_pb2.Heartbeat) -> None:
        """Warn (once per worker) when a worker's clock offset is known only roughly."""
        uncertainty = hb.clock_uncertainty.ToNanoseconds()
        if uncertainty > CLOCK_WARN_NS and rec.worker_id not in run.clock_warned:
            run.clock_warned.add(rec.worker_id)
            run.warnings.append(
                f"clock uncertain: worker {rec.worker_id} on {rec.hello.host} knows the "
                f"controller's clock only to within {uncertainty / 1e6:.1f} ms (half its best "
                "round trip), so its phase boundaries may be off by as much"
            )
            log.warning("run %s: %s", run.run_id, run.warnings[-1])

    def worker_lost(self, rec: WorkerRecord) -> None:
        run = self.active.get(rec.run_id)
        if run is None:
            return
        run.changed.set()
        silent = f"silent for more than {self.registry.loss_timeout_s:g}s"
        self._worker_gone(run, rec, silent, Reason.WORKER_LOST)

    def _worker_gone(self, run: ActiveRun, rec: WorkerRecord, why: str, reason: str) -> None:
        """A worker dropped out: the run fails, or goes on degraded (on_worker_loss)."""
        survivors = [
            w
            for w in run.workers
            if not w.lost and w is not rec and w.worker_id not in run.finished
        ]
        if (
            run.workload.load.on_worker_loss is OnWorkerLoss.CONTINUE
            and run.state in lc.LOAD_PHASES
            and survivors
        ):
            # the run goes on without it; what it reported so far is kept
            run.degraded = True
            run.warnings.append(
                f"worker {rec.worker_id} on {rec.hello.host} {why} in "
                f"{lc.state_name(run.state)}; the run went on with "
                f"{len(survivors)} worker(s) and keeps the intervals it reported"
            )
            self._drop(run, rec)
            run.broadcaster.publish(run.update())
            return
        run.request_abort(
            Outcome(lc.FAILED, reason, f"worker {rec.worker_id} on {rec.hello.host} {why}")
        )

    @staticmethod
    def _drop(run: ActiveRun, rec: WorkerRecord) -> None:
        """The worker is out of the run: later seconds are complete without it, nothing
        more of it counts, and on re-attach it is told to stop."""
        run.metrics.retire(rec.worker_id)
        run.dropped.add(rec.worker_id)
        rec.run_id = ""
        rec.assignment = None

    def worker_revived(self, rec: WorkerRecord, claimed_run: str) -> None:
        """A worker marked lost speaks again on its old stream: if it still works for a run
        it was dropped from (or that ended), tell it to stop; no orphaned load."""
        if claimed_run and claimed_run != rec.run_id and claimed_run not in rec.told_to_stop:
            rec.told_to_stop.add(claimed_run)
            log.warning(
                "worker %s came back working for run %s: stopping it", rec.worker_id, claimed_run
            )
            self.registry.send(
                rec,
                control_pb2.AttachResponse(
                    stop=control_pb2.Stop(
                        run_id=claimed_run, reason="dropped_from_run", drain_timeout=seconds(0)
                    )
                ),
            )

    def worker_attached(self, rec: WorkerRecord, hello: control_pb2.Hello) -> None:
        """(Re)attach: resend the full desired state, or tell it to drop a stale run."""
        if rec.assignment is not None and rec.run_id in self.active:
            resync = control_pb2.Assign()
            resync.CopyFrom(rec.assignment)
            resync.resync = True
            self.registry.send(rec, control_pb2.AttachResponse(assign=resync))
        elif hello.run_id:
            self.registry.send(
                rec,
                control_pb2.AttachResponse(
                    stop=control_pb2.Stop(
                        run_id=hello.run_id, reason="run_ended", drain_timeout=seconds(0)
                    )
                ),
            )
