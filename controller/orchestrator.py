"""Drives runs through their lifecycle (worker messages: controller/worker_events.py).

One asyncio task per run walks PENDING -> PREPARING -> (WARMUP) -> MEASUREMENT ->
PROCESSING -> COMPLETED; anything that ends a run early (StopRun, a lost worker, a
worker failure, a ready timeout) resolves the run's ``abort`` future, which every wait
in that task races against. The controller never connects to the target database.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from google.protobuf.timestamp_pb2 import Timestamp

from controller import lifecycle as lc
from controller import plan, slo
from controller.ingest import IngestStats
from controller.lifecycle import Reason
from controller.load_control import split_rate
from controller.load_driver import SPARE_SLOTS, LoadDriver
from controller.recovery import InterruptedRun
from controller.registry import WorkerRecord, WorkerRegistry
from controller.run_end import enrichment_worker, run_record, saturation_warnings
from controller.run_persistence import RunPersistence
from controller.runs import Aborted, ActiveRun, Outcome, seconds
from controller.seconds_writer import SecondsWriter
from controller.store import RunStore
from controller.worker_events import WorkerEvents
from snowload.v1 import common_pb2, control_pb2, run_pb2
from snowload.workload import Mode, Workload

log = logging.getLogger("snowload.controller")
DRAIN_TIMEOUT_S = 5.0
PROGRESS_INTERVAL_S = 1.0


class RunNotFound(KeyError):
    pass


class RunManager(WorkerEvents, RunPersistence):
    def __init__(self, registry: WorkerRegistry, store: RunStore) -> None:
        self.registry = registry
        self.store = store
        self.active: dict[str, ActiveRun] = {}
        self.drain_timeout_s = DRAIN_TIMEOUT_S
        self.saturation_cpu_percent = 90.0
        """A worker at or above this CPU (% of one core) is at a Python process's ceiling."""
        self.on_run_end: Callable[[ActiveRun], None] | None = None
        self.ingest = IngestStats()
        """Reports merged and the time it took (exported to Prometheus)."""
        registry.on_lost = self.worker_lost
        self.writer = SecondsWriter(store)
        """Sealed seconds go to the store from its thread while runs go on."""
        self._flusher: asyncio.Task[None] | None = None
        self.interrupted: dict[str, InterruptedRun] = {}
        self.unsaved: dict[str, ActiveRun] = {}
        """Ended runs the store refused (controller/run_persistence.py)."""
        """Runs a crashed controller left, open to what their workers send again."""

    # -- public API ------------------------------------------------------------------

    def start(self, workload: Workload) -> ActiveRun:
        run = ActiveRun(run_id=uuid.uuid4().hex[:12], workload=workload)
        event = run_pb2.PhaseEvent(state=lc.PENDING)
        event.event_time.FromNanoseconds(run.create_ns)
        run.events.append(event)
        run.phase_ns[lc.PENDING] = run.create_ns
        self.active[run.run_id] = run
        self.store.put(run.to_proto())
        loop = asyncio.get_running_loop()
        run.task = loop.create_task(self._execute(run))
        self.start_flusher()
        return run

    def stop(self, run_id: str) -> run_pb2.Run:
        run = self.active.get(run_id)
        if run is None:
            stored = self.store.get(run_id)
            if stored is None:
                raise RunNotFound(run_id)
            raise lc.IllegalTransition(stored.state, lc.CANCELLED)
        if run.terminal or run.abort.done():
            raise lc.IllegalTransition(run.state, lc.CANCELLED)
        planned_end = plan.planned_end_ns(run.plan)
        if planned_end and time.time_ns() >= planned_end:
            # the stop races the planned end and lost: the measurement is complete, and
            # the run ends as planned (the workers stopped at the end on their own)
            return run.to_proto()
        run.request_abort(Outcome(lc.CANCELLED, Reason.USER_REQUESTED, "stopped by request"))
        return run.to_proto()

    def get(self, run_id: str) -> run_pb2.Run:
        run = self.active.get(run_id) or self.unsaved.get(run_id)
        if run is not None:
            return run.to_proto()
        stored = self.store.get(run_id)
        if stored is None:
            raise RunNotFound(run_id)
        return stored

    async def shutdown(self) -> None:
        """Cancel active runs cleanly (reason controller_shutdown) and wait for them."""
        for run in list(self.active.values()):
            run.request_abort(
                Outcome(lc.CANCELLED, Reason.CONTROLLER_SHUTDOWN, "controller shutting down")
            )
        tasks = [r.task for r in self.active.values() if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self.drain_timeout_s + 5)
        await self.close_writer()
        self.give_up_unsaved()

    # -- the run task ----------------------------------------------------------------

    async def _execute(self, run: ActiveRun) -> None:
        ticker = asyncio.get_running_loop().create_task(self._tick(run))
        try:
            outcome = await self._lifecycle(run)
        except Aborted as exc:
            outcome = exc.outcome
        except Exception as exc:  # a controller bug must still end the run
            log.exception("run %s crashed", run.run_id)
            outcome = Outcome(lc.FAILED, "controller_error", f"{type(exc).__name__}: {exc}")
        try:
            # an unplanned end: MEASUREMENT ends at the instant it was decided, or at the
            # planned end if that came first (a StopRun racing the end changes nothing)
            now = run.decided_ns or time.time_ns()
            planned = plan.planned_end_ns(run.plan)
            if planned and now >= planned:
                now = planned
            if lc.MEASUREMENT in run.phase_ns and not run.measurement_end_ns:
                run.measurement_end_ns = max(now, run.phase_ns[lc.MEASUREMENT])
            if lc.WARMUP in run.phase_ns and not run.warmup_end_ns:
                run.warmup_end_ns = run.phase_ns.get(lc.MEASUREMENT, now)
            run.stop_ns = now
            self._fix_end(run)
            await self._release_workers(run, outcome)
        finally:
            ticker.cancel()
            try:
                await self._store_seconds(run)
            finally:
                self._finish(run, outcome)

    async def _lifecycle(self, run: ActiveRun) -> Outcome:
        load = run.workload.load
        workers = await self._await_workers(run, load.workers, load.ready_timeout_s)
        self._transition(run, lc.PREPARING)
        driver = LoadDriver(run, self.registry, self._sleep)
        self._assign(run, workers, driver)
        if driver.controls_level:
            driver.apply(driver.initial_level())
        await self._until(
            run,
            lambda: len(run.ready) == len(run.workers),
            load.ready_timeout_s,
            Outcome(
                lc.FAILED,
                Reason.READY_TIMEOUT,
                "workers not READY within "
                f"{load.ready_timeout_s:g}s: "
                + ", ".join(w.worker_id for w in run.workers if w.worker_id not in run.ready),
            ),
        )
        # the start time exists only once every assigned worker is READY: the plan fixes
        # it a lead ahead, with every boundary known from there, on this clock
        decide = time.time_ns()
        lead = plan.lead_ns(
            (w.heartbeat.round_trip.ToNanoseconds() if w.heartbeat else 0 for w in run.workers),
            len(run.workers),
            plan.fanout_ns(w.delivery_ns for w in run.workers),
        )
        run.plan = plan.make_plan(decide, lead, load.warmup_s, driver.planned_measurement_s())
        run.start_ns = run.plan.load_start_time.ToNanoseconds()
        run.start_mono = time.monotonic() + lead / 1e9
        self._broadcast_start(run)
        driver.prime()
        first = lc.WARMUP if load.warmup_s > 0 else lc.MEASUREMENT
        await self._sleep_until(run, run.start_ns)
        self._enter_phase(run, first, run.start_ns)
        if first == lc.WARMUP:
            measurement_start = run.plan.measurement_start_time.ToNanoseconds()
            await self._sleep_until(run, measurement_start)
            run.warmup_end_ns = measurement_start
            self._enter_phase(run, lc.MEASUREMENT, measurement_start)
        reason = await driver.measure()
        run.measurement_end_ns = plan.planned_end_ns(run.plan) or time.time_ns()
        self._fix_end(run)
        outcome = Outcome(lc.COMPLETED, reason)
        # the load stops first, bookkeeping after: the window ends when it says it does
        self._send_stops(run, outcome)
        self._transition(run, lc.PROCESSING)
        return outcome

    async def _await_workers(self, run: ActiveRun, n: int, timeout_s: float) -> list[WorkerRecord]:
        deadline = time.monotonic() + timeout_s
        while True:
            changed = self.registry.changed
            idle = self.registry.idle()
            if len(idle) >= n:
                return idle[:n]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Aborted(
                    Outcome(
                        lc.FAILED,
                        Reason.NO_WORKERS,
                        f"needed {n} idle workers, {len(idle)} attached within {timeout_s:g}s",
                    )
                )
            await self._race(run, changed.wait(), remaining)

    def _assign(self, run: ActiveRun, workers: list[WorkerRecord], driver: LoadDriver) -> None:
        load = run.workload.load
        base, extra = divmod(load.connections, len(workers))
        workload_json = run.workload.to_json()
        shares = [base + (1 if i < extra else 0) for i in range(len(workers))]
        short = [
            f"{rec.worker_id} (capacity {rec.hello.capacity}, share {share})"
            for rec, share in zip(workers, shares, strict=True)
            if rec.hello.capacity and share > rec.hello.capacity
        ]
        recruiting = driver.controls_level and not load.stepped_by_rate
        if short and recruiting:
            # staged and find-max runs take what each worker accepts and recruit the rest
            shares = [
                min(share, rec.hello.capacity or share)
                for rec, share in zip(workers, shares, strict=True)
            ]
        elif short:
            raise Aborted(
                Outcome(
                    lc.FAILED,
                    Reason.CAPACITY,
                    "connections exceed what workers accept: " + ", ".join(short),
                )
            )
        rates = split_rate(load.rate if load.mode is Mode.OPEN else 0.0, len(workers))
        # sequences stripe over the workers; runs that may recruit keep spare slots
        run.sequence_slots = len(workers) + (SPARE_SLOTS if recruiting else 0)
        for i, rec in enumerate(workers):
            assign = control_pb2.Assign(
                run_id=run.run_id,
                workload_json=workload_json,
                worker_index=i,
                worker_count=len(workers),
                connections=shares[i],
                rate=rates[i],
                run_setup=i == 0,
                phase=lc.PREPARING,
                sequence_slot=i,
                sequence_slots=run.sequence_slots,
            )
            rec.run_id = run.run_id
            rec.assignment = assign
            run.shares[rec.worker_id] = assign.connections
            run.workers.append(rec)
            self.registry.send(rec, control_pb2.AttachResponse(assign=assign))

    def _enter_phase(self, run: ActiveRun, phase: lc.State, at_ns: int) -> None:
        """The run's state follows its plan: the workers switched at ``at_ns`` on their
        own (Start carried the instant); here only the record and the watchers."""
        run.transition(phase, at_ns=at_ns)
        for rec in run.workers:
            if rec.assignment is not None:
                rec.assignment.phase = phase
        self._publish_state(run)

    def _broadcast_start(self, run: ActiveRun) -> None:
        """Start, with the plan, to every worker (it arrives ahead of the load start)."""
        assert run.plan is not None
        stamp = Timestamp()
        stamp.FromNanoseconds(run.start_ns)
        for rec in run.workers:
            if rec.assignment is not None:
                rec.assignment.started = True
                rec.assignment.start_time.CopyFrom(stamp)
                rec.assignment.plan.CopyFrom(run.plan)
            self.registry.send(
                rec,
                control_pb2.AttachResponse(
                    start=control_pb2.Start(run_id=run.run_id, start_time=stamp, plan=run.plan)
                ),
            )
        run.metrics.expect([rec.worker_id for rec in run.workers])
        run.metrics.origin_ns = run.start_ns
        # (no store write here: the Starts go out first, the run is stored at load start)

    def _fix_end(self, run: ActiveRun) -> None:
        """The measurement end is known: it goes into the plan (and re-attach resyncs)."""
        if run.plan is None or not run.measurement_end_ns:
            return
        if plan.planned_end_ns(run.plan) != run.measurement_end_ns:
            run.plan.measurement_end_time.FromNanoseconds(run.measurement_end_ns)
            for rec in run.workers:
                if rec.assignment is not None:
                    rec.assignment.plan.CopyFrom(run.plan)

    def _send_stops(self, run: ActiveRun, outcome: Outcome) -> None:
        """Stop every worker of the run (once); the setup worker also fetches server-side
        timings when the run completed."""
        if run.stops_sent:
            return
        run.stops_sent = True
        # the instant the load ends for every worker (planned, or decided just now)
        end_ns = run.measurement_end_ns or run.stop_ns or time.time_ns()
        run.metrics.stop_load(end_ns)
        load = run.workload.load
        enricher = enrichment_worker(run, outcome)
        run.enricher_id = enricher.worker_id if enricher is not None else ""
        for rec in run.workers:
            if rec.worker_id in run.finished or rec.worker_id in run.dropped:
                continue
            stop = control_pb2.Stop(
                run_id=run.run_id,
                reason=outcome.reason,
                drain_timeout=seconds(self.drain_timeout_s),
            )
            stop.measurement_end_time.FromNanoseconds(end_ns)
            if lc.MEASUREMENT in run.phase_ns:
                stop.measurement_start_time.FromNanoseconds(run.phase_ns[lc.MEASUREMENT])
            if rec is enricher:
                stop.enrich = True
                stop.enrich_timeout.CopyFrom(seconds(load.enrichment_timeout_s))
                stop.expected_queries = run.metrics.received_count()
            self.registry.send(rec, control_pb2.AttachResponse(stop=stop))
        if enricher is not None:
            run.enrichment = common_pb2.ENRICHMENT_STATUS_PENDING

    async def _release_workers(self, run: ActiveRun, outcome: Outcome) -> None:
        """Stop the workers (if not yet) and wait, bounded, for their last intervals."""
        self._send_stops(run, outcome)
        load = run.workload.load
        enricher = next((w for w in run.workers if w.worker_id == run.enricher_id), None)
        if enricher is not None:
            run.broadcaster.publish(run.update())

        def all_done() -> bool:
            # a dropped worker that came back is not lost, but nothing of it is awaited
            return all(
                r.worker_id in run.finished or r.lost or r.worker_id in run.dropped
                for r in run.workers
            )

        extra = load.enrichment_timeout_s if enricher is not None else 0.0
        deadline = time.monotonic() + self.drain_timeout_s + extra + 5.0
        while not all_done() and time.monotonic() < deadline:
            run.changed.clear()
            try:
                await asyncio.wait_for(run.changed.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        if enricher is not None:
            fin = run.finished.get(enricher.worker_id)
            if fin is not None and fin.HasField("enrichment"):
                run.server.CopyFrom(fin.enrichment)
            else:
                run.server.CopyFrom(
                    common_pb2.Enrichment(
                        status=common_pb2.ENRICHMENT_STATUS_FAILED,
                        message="no enrichment result before the time limit",
                    )
                )
            run.enrichment = run.server.status
        for rec in run.workers:
            if rec.run_id == run.run_id:
                rec.run_id = ""
                rec.assignment = None

    def _finish(self, run: ActiveRun, outcome: Outcome) -> None:
        run.end_ns = time.time_ns()
        if not run.terminal:
            run.transition(outcome.state, outcome.reason)
        run.reason = outcome.reason
        run.message = outcome.message
        run.metrics.settle()
        measurement = run.metrics.phase_summary(
            lc.MEASUREMENT, run.phase_duration_s(lc.MEASUREMENT)
        )
        if outcome.state == lc.COMPLETED:
            run.slo = slo.evaluate(run.workload.slo, measurement)
        saturation_warnings(run, self.saturation_cpu_percent)
        if run.enrichment == common_pb2.ENRICHMENT_STATUS_UNSPECIFIED:
            run.enrichment = common_pb2.ENRICHMENT_STATUS_SKIPPED
        try:
            self.store.save(run_record(run))
        except Exception as exc:  # the run must still end, and the stream must still say so
            self.keep_unsaved(run, exc)
        self.active.pop(run.run_id, None)
        run.broadcaster.publish(run.update(final=True))
        log.info("run %s %s (%s)", run.run_id, lc.state_name(run.state), run.reason)
        if self.on_run_end is not None:
            self.on_run_end(run)

    def series(self, run_id: str) -> list[common_pb2.SeriesPoint]:
        if run_id not in self.active | self.unsaved and self.store.get(run_id) is None:
            raise RunNotFound(run_id)
        return self.stored_and_live_series(run_id)

    # -- waiting ---------------------------------------------------------------------

    def _transition(self, run: ActiveRun, target: lc.State) -> None:
        run.transition(target)
        self._publish_state(run)

    def _publish_state(self, run: ActiveRun) -> None:
        try:
            self.store.put(run.to_proto())
        except Exception as exc:  # (disk full, read-only): the run goes on, and says so
            warning = f"results store: the run's state could not be written ({exc})"
            if warning not in run.warnings:
                run.warnings.append(warning)
            log.warning("run %s: %s", run.run_id, warning)
        run.broadcaster.publish(run.update())

    async def _race(self, run: ActiveRun, aw: object, timeout_s: float) -> None:
        """Wait for ``aw`` up to ``timeout_s``; raise Aborted if the run is aborted first."""
        waiter = asyncio.ensure_future(aw)  # type: ignore[call-overload]
        try:
            _done, _ = await asyncio.wait(
                {waiter, run.abort}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not waiter.done():
                waiter.cancel()
        if run.abort.done():
            raise Aborted(run.abort.result())

    async def _sleep(self, run: ActiveRun, seconds_: float) -> None:
        await self._race(run, asyncio.sleep(seconds_), seconds_ + 1.0)

    async def _sleep_until(self, run: ActiveRun, at_ns: int) -> None:
        """Until an instant on this clock (aborted runs raise at once)."""
        await self._sleep(run, max(0.0, (at_ns - time.time_ns()) / 1e9))

    async def _until(
        self, run: ActiveRun, predicate: Callable[[], bool], timeout_s: float, on_timeout: Outcome
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Aborted(on_timeout)
            run.changed.clear()
            await self._race(run, run.changed.wait(), remaining)

    async def _tick(self, run: ActiveRun) -> None:
        """Progress once a second when no complete second did it (setup, waits, stalls).
        While the load runs, each second is published as it completes (worker_metrics);
        the grace keeps this tick from landing just before one."""
        while True:
            grace = PROGRESS_INTERVAL_S * (1.25 if run.metrics.reports else 1.0)
            wait = run.broadcaster.last_publish + grace - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            elif run.broadcaster.subscribers:  # nobody watching: nothing to build
                run.broadcaster.publish(run.update())
            else:
                await asyncio.sleep(PROGRESS_INTERVAL_S)
