"""What the worker does for the state machine's effects: prepare a run (setup, pools,
connections), apply commands, drain, enrich, finish. Agent (worker/agent.py) inherits
these; the load itself is in worker/load_effects.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from snowload.v1 import common_pb2, control_pb2
from snowload.workload import parse_json
from worker import clock as wclock
from worker import state_machine as sm
from worker.boundaries import Boundaries, plan_end_ns, same_instants
from worker.drivers import DriverError, get_driver, prepare_failure
from worker.enrichment import Enricher, SnowflakeEnricher, Window, enricher_for
from worker.executor import Executor, RunPlan
from worker.generators import Sequences
from worker.load_effects import LoadEffects
from worker.preparation import ReadyBudget, SetupError, run_setup, sample_pools
from worker.run_context import RunContext
from worker.warehouse import POLL_INTERVAL_S, WarehouseWatcher

log = logging.getLogger("snowload.worker")
SYNC_WAIT_S = 5.0
"""READY waits at most this for a first clock offset."""
SETTLE_NS = 100_000_000
"""After a Stop with its end instant: how long after its arrival the drain's CPU work (the
last report) waits, so that it does not hold up the Stop reaching the other workers
(half the plan's lead after the end instead: no better at 64 workers, docs/benchmarks.md)."""
now_ts = wclock.now_ts


def seconds_duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


class RunEffects(LoadEffects):
    connect_delay_s: float
    _synced: asyncio.Event

    def _handle(self, msg: control_pb2.AttachResponse) -> None:
        # taken before the effects run: a query tagged with a new phase is always issued
        # after the applied_time its Ack reports
        applied = now_ts()
        self.model, effects = sm.receive(self.model, msg)
        self._run_effects(effects, applied)

    def _event(self, result: sm.Result) -> None:
        self.model, effects = result
        self._run_effects(effects, now_ts())

    def _run_effects(self, effects: list[sm.Effect], applied: Timestamp) -> None:
        for eff in effects:
            if isinstance(eff, sm.Acknowledge):
                ack = control_pb2.Ack(seq=eff.seq, applied_time=applied, state=self.model.state)
                late = self._lateness_ns(eff.instant_ns)
                if late:
                    ack.lateness.FromNanoseconds(late)
                self._send(control_pb2.AttachRequest(ack=ack))
            elif isinstance(eff, sm.Ignored):
                log.debug("ignored: %s", eff.why)
            elif isinstance(eff, sm.Prepare):
                self._prepare(eff.assign)
            elif isinstance(eff, sm.AbortPrepare):
                if self.run is not None:
                    self.run.aborted = True
                    if self.run.executor is not None:
                        self.run.executor.control.stopping = True
                        self.run.executor.control.go.set()
                    self.run = None
            elif isinstance(eff, sm.BeginLoad):
                self._begin_load(eff.phase, eff.plan)
            elif isinstance(eff, sm.ApplyPhase):
                if self.run is not None and self.run.executor is not None:
                    at = self.to_perf(eff.at_ns) if eff.at_ns else time.perf_counter_ns()
                    self.run.executor.set_phase(eff.phase, at)
                    self._phase_hooks(eff.phase, at)
            elif isinstance(eff, sm.ApplyPlan):
                if self.run is not None and self.run.executor is not None:
                    self._map_plan(self.run, self.run.executor, eff.plan)
            elif isinstance(eff, sm.ApplyLoad):
                self._apply_load(eff)
            elif isinstance(eff, sm.ApplyPools):
                self._apply_pools(eff.run_id, eff.pools)
            elif isinstance(eff, sm.Drain):
                self._drain(eff)
            elif isinstance(eff, sm.SendReady):
                self._send_ready(eff.run_id)
            elif isinstance(eff, sm.SendFinished):
                self._send_finished(eff.run_id)
            elif isinstance(eff, sm.SendFailure):
                self._send(
                    control_pb2.AttachRequest(
                        failure=control_pb2.Failure(
                            run_id=eff.run_id, reason=eff.reason, message=eff.message
                        )
                    )
                )

    # -- the plan on this clock -----------------------------------------------------------

    def _map_plan(self, ctx: RunContext, executor: Executor, plan: common_pb2.PhasePlan) -> None:
        """The run's plan onto the threads' timeline, with the current clock offset. The
        same instants mapped anew (a better offset estimate) move only where they are still
        ahead (Boundaries.remapped); a plan with other instants applies as sent, and an end
        it moved to an instant already past (a stop decided while this worker was away)
        re-labels what was issued since, as a Stop with that end would."""
        now = time.perf_counter_ns()
        fresh = Boundaries.from_plan(plan, self.to_perf)
        moved_end = ctx.plan is not None and plan_end_ns(ctx.plan) != plan_end_ns(plan)
        if ctx.plan is not None and same_instants(ctx.plan, plan):
            fresh = executor.control.bounds.remapped(fresh, now)
        ctx.plan = plan
        ctx.mapped_offset = self.clock.offset_ns
        executor.set_bounds(fresh)
        if moved_end and fresh.end < now:
            executor.end_at(fresh.end, decided_before=True)

    def _decided_end(self, ctx: RunContext, end_ns: int) -> int | None:
        """A Stop's end (controller clock) on the threads' timeline; None if it is the
        plan's own end, which the threads hold already and stop at on their own. Mapped
        anew, with an offset estimate that moved since (by less than REMAP_NS, or after the
        threads met it), the plan's end would land a little earlier than where they
        stopped, and the queries issued in between would be re-labelled PROCESSING
        although the database saw them tagged MEASUREMENT. An end decided after the plan
        (a StopRun, a failure) is mapped with the offset the plan was."""
        if ctx.plan is not None and plan_end_ns(ctx.plan) == end_ns:
            return None
        offset = ctx.mapped_offset if ctx.plan is not None else self.clock.offset_ns
        return wclock.wall_to_perf(end_ns - offset)

    # -- effects -------------------------------------------------------------------------

    def _prepare(self, assign: control_pb2.Assign) -> None:
        ctx = RunContext(assign=assign)
        self.run = ctx
        asyncio.get_running_loop().create_task(self._prepare_async(ctx))

    async def _prepare_async(self, ctx: RunContext) -> None:
        a = ctx.assign
        began = time.monotonic()
        try:
            workload = parse_json(a.workload_json)
            driver = get_driver(workload.target.driver)
            slots = max(1, a.sequence_slots or a.worker_count)
            plan = RunPlan(
                rate=a.rate,
                run_id=a.run_id,
                workload=workload,
                worker_index=a.worker_index,
                connections=a.connections,
                sequences=Sequences(a.sequence_slot if a.sequence_slots else a.worker_index, slots),
            )
            if a.run_setup and workload.load.enrich:
                ctx.enricher = enricher_for(workload, a.run_id)
            budget = ReadyBudget.starting(workload.load.ready_timeout_s)
            executor = Executor(plan, driver, connect_delay_s=self.connect_delay_s)
            executor.connect_deadline = budget.deadline
            ctx.executor = executor
            if a.run_setup and workload.setup_sql:
                await asyncio.to_thread(
                    run_setup, driver, workload, a.run_id, budget.connect_timeout()
                )
            if a.run_setup and workload.pool_params():
                pools = await asyncio.to_thread(
                    sample_pools, driver, workload, a.run_id, budget.connect_timeout()
                )
                self._send(
                    control_pb2.AttachRequest(
                        pools=control_pb2.PoolSample(run_id=a.run_id, pools=pools)
                    )
                )
            await asyncio.to_thread(executor.open_connections)
            if workload.pool_params():
                # every worker walks its slice of the pools the setup worker sampled
                await asyncio.wait_for(ctx.pools_ready.wait(), workload.load.ready_timeout_s)
            if a.run_setup and WarehouseWatcher.applies(workload):
                ctx.warehouse = WarehouseWatcher(workload, a.run_id)
                ctx.warehouse_task = asyncio.get_running_loop().create_task(
                    self._poll_warehouse(ctx, ctx.warehouse)
                )
        except SetupError as exc:
            self._after_prepare_failure(ctx, "setup_failed", str(exc))
            return
        except TimeoutError:
            self._after_prepare_failure(ctx, "setup_failed", "no value pools before the timeout")
            return
        except DriverError as exc:
            self._after_prepare_failure(ctx, prepare_failure(exc), str(exc))
            return
        except Exception as exc:
            self._after_prepare_failure(ctx, "worker_error", f"{type(exc).__name__}: {exc}")
            return
        # READY only with a settled clock offset: the plan's instants depend on it
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._synced.wait(), SYNC_WAIT_S)
        ctx.prepare_s = time.monotonic() - began
        if ctx.aborted or self.run is not ctx:
            await asyncio.to_thread(executor.stop, 0.0)
            return
        self._event(sm.prepared(self.model, a.run_id))

    def _after_prepare_failure(self, ctx: RunContext, reason: str, message: str) -> None:
        if ctx.executor is not None:
            ctx.executor.control.stopping = True
            ctx.executor.control.go.set()
        if self.run is ctx:
            self.run = None
        self._event(sm.prepare_failed(self.model, ctx.assign.run_id, reason, message))

    async def _poll_warehouse(self, ctx: RunContext, watcher: WarehouseWatcher) -> None:
        """SHOW WAREHOUSES every few seconds for the run's series (failures only logged)."""
        try:
            while True:
                try:
                    ctx.warehouse_sample = await asyncio.to_thread(watcher.sample)
                except Exception as exc:
                    log.info("warehouse poll failed: %s", str(exc).splitlines()[0])
                await asyncio.sleep(POLL_INTERVAL_S)
        finally:
            await asyncio.to_thread(watcher.close)

    def _apply_pools(self, run_id: str, pools: tuple[control_pb2.PoolValues, ...]) -> None:
        ctx = self.run
        if ctx is None or ctx.assign.run_id != run_id or ctx.executor is None:
            return
        ctx.executor.plan.sequences.set_pools(
            {(p.query_index, p.param_index): json.loads(p.values_json) for p in pools}
        )
        ctx.pools_ready.set()

    def _send_ready(self, run_id: str) -> None:
        ctx = self.run
        prep = ctx.prepare_s if ctx else 0.0
        self._send(
            control_pb2.AttachRequest(
                ready=control_pb2.Ready(
                    run_id=run_id,
                    connections=ctx.assign.connections if ctx else 0,
                    prepare_duration=seconds_duration(prep),
                    ready_time=now_ts(),
                )
            )
        )

    def _drain(self, eff: sm.Drain) -> None:
        ctx = self.run
        if ctx is None:
            self._event(sm.drained(self.model, eff.run_id))
            return
        # at once, before the Ack goes out: the end, and no more reports
        if ctx.reporter is not None:
            ctx.reporter.cancel()
        if ctx.warehouse_task is not None:
            ctx.warehouse_task.cancel()
        settle = 0
        stop = eff.stop
        if ctx.executor is not None and stop is not None and stop.HasField("measurement_end_time"):
            # MEASUREMENT ends at the instant the controller planned or decided
            now = time.perf_counter_ns()
            end = self._decided_end(ctx, stop.measurement_end_time.ToNanoseconds())
            if end is not None:
                ctx.executor.end_at(end, decided_before=end < now)
            settle = now + SETTLE_NS
        asyncio.get_running_loop().create_task(self._drain_async(ctx, eff, settle))

    async def _drain_async(self, ctx: RunContext, eff: sm.Drain, settle: int) -> None:
        if ctx.executor is not None:
            # nothing is issued from the end on already; the CPU work waits a little
            # (SETTLE_NS), so that it does not hold up the Stop reaching the other workers
            await asyncio.sleep(max(0, settle - time.perf_counter_ns()) / 1e9)
            await asyncio.to_thread(ctx.executor.stop, eff.drain_timeout_s)
            if ctx.load_started is not None:
                self._report(ctx, last=True)
        if ctx.enricher is not None:
            stop = eff.stop
            if stop is not None and stop.enrich:
                ctx.enrichment = await self._enrich(ctx, ctx.enricher, stop)
            await asyncio.to_thread(ctx.enricher.close)
        self._event(sm.drained(self.model, eff.run_id))

    async def _enrich(
        self, ctx: RunContext, enricher: Enricher, stop: control_pb2.Stop
    ) -> common_pb2.Enrichment:
        if isinstance(enricher, SnowflakeEnricher) and ctx.executor is not None:
            for thread in ctx.executor.threads:
                enricher.client_samples.update(getattr(thread.conn, "query_samples", ()))
        window = Window(
            run_id=ctx.assign.run_id,
            start_ns=stop.measurement_start_time.ToNanoseconds(),
            end_ns=stop.measurement_end_time.ToNanoseconds(),
            expected_queries=stop.expected_queries,
        )
        timeout = stop.enrich_timeout.ToTimedelta().total_seconds() or 60.0
        deadline = time.monotonic() + timeout
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(enricher.collect, window, deadline), timeout + 5
            )
        except TimeoutError:
            return common_pb2.Enrichment(
                status=common_pb2.ENRICHMENT_STATUS_FAILED,
                message=f"enrichment did not finish within {timeout:g}s",
            )

    def _send_finished(self, run_id: str) -> None:
        ctx = self.run
        finished = control_pb2.Finished(run_id=run_id)
        if ctx is not None and ctx.assign.run_id == run_id:
            finished.intervals = ctx.reports_sent
            if ctx.enrichment is not None:
                finished.enrichment.CopyFrom(ctx.enrichment)
            queries = ctx.executor.plan.workload.queries if ctx.executor else ()
            if ctx.executor is not None:
                offset = ctx.mapped_offset
                finished.query_log.CopyFrom(
                    ctx.executor.query_log(lambda perf: wclock.perf_to_wall(perf) + offset)
                )
            for (phase, kind), (count, errors) in sorted(ctx.totals.items()):
                finished.totals.append(
                    control_pb2.KindInterval(
                        kind=queries[kind].name,
                        phase=phase,  # type: ignore[arg-type]
                        count=count,
                        errors=[control_pb2.ErrorCount(category="all", count=errors)]
                        if errors
                        else [],
                    )
                )
            self.run = None
        self._send(control_pb2.AttachRequest(finished=finished))
        # and its state at once (idle again): the heartbeats resume only 1.5 s after the
        # last report, and the controller gives no worker a new run before it knows it idle
        self._send(control_pb2.AttachRequest(heartbeat=self.heartbeat()))

    # -- heartbeats ------------------------------------------------------------------------
