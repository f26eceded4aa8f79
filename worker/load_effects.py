"""The load of a run on the worker: begin it at the plan's instants, change its level,
and report its seconds on the run's clock (RunEffects in worker/run_effects.py builds on
this; Agent in worker/agent.py on both)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from snowload.v1 import common_pb2, control_pb2
from worker import clock as wclock
from worker import state_machine as sm
from worker.boundaries import NEVER, Boundaries
from worker.enrichment import Enricher
from worker.executor import Executor
from worker.report_log import log_report
from worker.reports import interval_report
from worker.run_context import RunContext

REPORT_INTERVAL_S = 1.0
SNAPSHOT_AHEAD_NS = 50_000_000
REPORT_DELAYS_NS = (100_000_000, 350_000_000, 600_000_000, 850_000_000)
BOUNDARY_CLEARANCE_NS = 100_000_000


def report_delay_ns(bounds: Boundaries) -> int:
    """How long after each second's end its report is gathered: the first candidate at
    least 100 ms (mod 1 s) from every planned boundary."""
    origin = bounds.load_start
    marks = [at for at, _ in bounds.edges] + ([bounds.end] if bounds.end < NEVER else [])
    fractions = [(at - origin) % 1_000_000_000 for at in marks]
    for delay in REPORT_DELAYS_NS:
        if all(
            min(abs(delay - f), 1_000_000_000 - abs(delay - f)) >= BOUNDARY_CLEARANCE_NS
            for f in fractions
        ):
            return delay
    return REPORT_DELAYS_NS[0]


class LoadEffects:
    """The agent's load: the attributes and sends it needs come from Agent."""

    run: RunContext | None
    model: sm.Model
    clock: wclock.ClockSync
    _background: set[asyncio.Task[Any]]
    _last_report_sent: float

    def _send(self, msg: control_pb2.AttachRequest) -> None:
        raise NotImplementedError

    def heartbeat(self) -> control_pb2.Heartbeat:
        raise NotImplementedError

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def to_perf(self, controller_ns: int) -> int:
        return self.clock.to_perf(controller_ns)

    def _lateness_ns(self, instant_ns: int) -> int:
        """How far past a planned instant (controller clock) the worker's clock is now."""
        if not instant_ns:
            return 0
        return max(0, time.perf_counter_ns() - self.to_perf(instant_ns))

    def _apply_load(self, eff: sm.ApplyLoad) -> None:
        """A planned level change at its instant; an unplanned one at once."""
        executor = self.run.executor if self.run is not None else None
        if executor is None:
            return
        delay = (self.to_perf(eff.at_ns) - time.perf_counter_ns()) / 1e9 if eff.at_ns else 0.0
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._set_level, executor, eff)
        else:
            self._set_level(executor, eff)

    @staticmethod
    def _set_level(executor: Executor, eff: sm.ApplyLoad) -> None:
        if executor.schedule is not None:
            # open mode: the rate is the level; connections (in flight) if given
            executor.set_rate(eff.rate)
            if eff.connections:
                executor.set_connections(eff.connections)
        else:
            executor.set_connections(eff.connections)

    def _phase_hooks(self, phase: int, at_perf: int) -> None:
        """Enrichment notes when MEASUREMENT begins (at its instant)."""
        ctx = self.run
        if ctx is None or ctx.enricher is None or phase != common_pb2.STATE_MEASUREMENT:
            return
        if ctx.measurement_hooked or at_perf >= NEVER:
            return
        ctx.measurement_hooked = True
        self._spawn(self._measurement_snapshot(ctx.enricher, at_perf))

    @staticmethod
    async def _measurement_snapshot(enricher: Enricher, at_perf: int) -> None:
        """Set up now; snapshot SNAPSHOT_AHEAD_NS before MEASUREMENT begins, so that its
        work (a query, and Python holding the GIL) never delays the boundary's queries:
        the server-side totals then hold that much of the warmup's end."""
        await asyncio.to_thread(enricher.before_measurement)
        due = at_perf - SNAPSHOT_AHEAD_NS
        await asyncio.sleep(max(0.0, (due - time.perf_counter_ns()) / 1e9))
        await asyncio.to_thread(enricher.on_measurement_start)

    def _begin_load(self, phase: int, plan: common_pb2.PhasePlan | None) -> None:
        ctx = self.run
        if ctx is None or ctx.executor is None:
            return
        now = time.perf_counter_ns()
        if plan is not None and plan.HasField("load_start_time"):
            bounds = Boundaries.from_plan(plan, self.to_perf)
            ctx.plan = plan
            ctx.mapped_offset = self.clock.offset_ns
        else:  # a controller without plans: the phase from now on
            bounds = Boundaries.from_now(phase or common_pb2.STATE_MEASUREMENT, now)
        ctx.executor.start(bounds)
        self._phase_hooks(common_pb2.STATE_MEASUREMENT, bounds.measurement_start)
        # seconds on the run's clock: interval n covers [load start + n - 1, + n)
        origin = bounds.load_start
        begin = max(origin, now)
        ctx.origin_perf = origin
        ctx.interval_id = (begin - origin) // 1_000_000_000
        ctx.first_interval = ctx.interval_id + 1
        ctx.last_report_ns = wclock.perf_to_wall(begin)
        ctx.load_started = time.monotonic()
        ctx.reporter = asyncio.get_running_loop().create_task(self._report_loop(ctx, bounds))

    async def _report_loop(self, ctx: RunContext, bounds: Boundaries) -> None:
        """Second n ends at load start + n s; its report is gathered a little later (what
        was issued before the end of the second goes in it), at a moment away from the
        plan's boundaries, so the GIL-bound gathering never delays a boundary's queries."""
        delay = report_delay_ns(bounds)
        while True:
            due = ctx.origin_perf + (ctx.interval_id + 1) * 1_000_000_000
            await asyncio.sleep(max(0.0, (due + delay - time.perf_counter_ns()) / 1e9))
            self._report(ctx, last=False, end_perf=due)

    def _report(self, ctx: RunContext, *, last: bool, end_perf: int | None = None) -> None:
        executor = ctx.executor
        if executor is None:
            return
        end = wclock.perf_to_wall(time.perf_counter_ns() if end_perf is None else end_perf)
        cells = executor.collect(NEVER if end_perf is None else end_perf)
        ctx.interval_id += 1
        ctx.reports_sent += 1
        report = interval_report(
            executor,
            cells,
            run_id=ctx.assign.run_id,
            interval_id=ctx.interval_id,
            start_ns=ctx.last_report_ns or end - int(REPORT_INTERVAL_S * 1e9),
            end_ns=end,
            last=last,
            warehouse=ctx.warehouse_sample,
            totals=ctx.totals,
        )
        ctx.last_report_ns = end
        report.first_interval_id = ctx.first_interval
        report.status.CopyFrom(self.heartbeat())
        report.send_time.CopyFrom(report.status.send_time)
        log_report(report)
        message = control_pb2.AttachRequest(metrics=report)
        ctx.recent_reports.append(message)
        self._last_report_sent = time.monotonic()
        self._send(message)
