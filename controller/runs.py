"""A run as the controller holds it while it is active, and its public (proto) view."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from google.protobuf.duration_pb2 import Duration

from controller import lifecycle as lc
from controller.load_control import FindMaxSearch
from controller.metrics import RunMetrics
from controller.query_failures import QueryFailures
from controller.registry import WorkerRecord
from controller.run_journal import KEEP_SECONDS, RunJournal
from controller.watch import Broadcaster
from snowload.v1 import common_pb2, control_pb2, run_pb2
from snowload.workload import Mode, Workload

MODE_TO_PROTO = {
    Mode.CLOSED: common_pb2.LOAD_MODE_CLOSED,
    Mode.OPEN: common_pb2.LOAD_MODE_OPEN,
    Mode.FIND_MAX: common_pb2.LOAD_MODE_FIND_MAX,
}


@dataclass(frozen=True)
class Outcome:
    """How a run ends: a terminal state, a reason and a human message."""

    state: common_pb2.State
    reason: str
    message: str = ""


class Aborted(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


def seconds(value: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(value * 1e9))
    return d


@dataclass
class ActiveRun:
    run_id: str
    workload: Workload
    create_ns: int = field(default_factory=time.time_ns)
    state: common_pb2.State = lc.PENDING
    reason: str = ""
    message: str = ""
    state_since: float = field(default_factory=time.monotonic)
    start_ns: int = 0
    start_mono: float = 0.0
    phase_ns: dict[int, int] = field(default_factory=dict)
    """Controller clock when each state began."""
    measurement_end_ns: int = 0
    warmup_end_ns: int = 0
    end_ns: int = 0
    events: list[run_pb2.PhaseEvent] = field(default_factory=list)
    workers: list[WorkerRecord] = field(default_factory=list)
    ready: dict[str, int] = field(default_factory=dict)
    """Controller clock when each worker reported READY."""
    finished: dict[str, control_pb2.Finished] = field(default_factory=dict)
    metrics: RunMetrics = field(default_factory=RunMetrics)
    broadcaster: Broadcaster = field(default_factory=Broadcaster)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    abort: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    task: asyncio.Task[None] | None = None
    slo: list[common_pb2.SloVerdict] = field(default_factory=list)
    shares: dict[str, int] = field(default_factory=dict)
    """Connections assigned to each worker."""
    enrichment: common_pb2.EnrichmentStatus = common_pb2.ENRICHMENT_STATUS_UNSPECIFIED
    server: common_pb2.Enrichment = field(default_factory=common_pb2.Enrichment)
    level: float = 0.0
    """The load currently asked for (connections, or queries/s in open mode)."""
    sent_load: dict[str, tuple[int, float]] = field(default_factory=dict)
    recruited: list[str] = field(default_factory=list)
    stops_sent: bool = False
    pools: list[control_pb2.PoolValues] = field(default_factory=list)
    sequence_slots: int = 1
    enricher_id: str = ""
    find_max: FindMaxSearch | None = None
    degraded: bool = False
    dropped: set[str] = field(default_factory=set)
    """Workers the run went on without; anything they still send is ignored."""
    warnings: list[str] = field(default_factory=list)
    cpu_samples: dict[str, Counter[float]] = field(default_factory=dict)
    """Worker CPU (% of one core, to 0.1) from heartbeats received during MEASUREMENT:
    how often each value was seen (a week-long run's memory stays flat)."""
    plan: common_pb2.PhasePlan | None = None
    """The phase boundaries on the controller's clock, once every worker was READY."""
    lateness: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per worker: the largest lateness of a planned command (ns) and how many were late."""
    clock_warned: set[str] = field(default_factory=set)
    decided_ns: int = 0
    """When an unplanned end (abort) was decided: MEASUREMENT ends for everyone there."""
    stop_ns: int = 0
    recovered_reports: Counter[str] = field(default_factory=Counter)
    """Per worker: interval reports only the resend after a re-attach delivered."""
    duplicate_reports: Counter[str] = field(default_factory=Counter)
    """Per worker: interval reports received again (ignored)."""
    failures: QueryFailures = field(init=False)
    """First errors and error samples per kind; the on_query_failure policy."""
    journal: RunJournal = field(init=False)
    """Which sealed seconds still have to reach the results store."""

    def __post_init__(self) -> None:
        self.metrics.queries = frozenset(q.name for q in self.workload.queries)
        self.failures = QueryFailures(self.workload.load.on_query_failure)
        find_max = self.workload.load.find_max
        step_s = int(find_max.step_duration_s) + 60 if find_max is not None else 0
        self.journal = RunJournal(self.metrics, max(KEEP_SECONDS, step_s))

    @property
    def terminal(self) -> bool:
        return lc.is_terminal(self.state)

    def request_abort(self, outcome: Outcome) -> bool:
        if self.abort.done() or self.terminal:
            return False
        self.decided_ns = time.time_ns()
        self.abort.set_result(outcome)
        return True

    def transition(self, target: common_pb2.State, reason: str = "", at_ns: int = 0) -> None:
        """Move to ``target``; ``at_ns`` is the planned instant it began (default now)."""
        self.state = lc.check_transition(self.state, target)
        now = at_ns or time.time_ns()
        self.state_since = time.monotonic()
        self.phase_ns[target] = now
        event = run_pb2.PhaseEvent(state=target, reason=reason)
        event.event_time.FromNanoseconds(now)
        self.events.append(event)

    # -- derived views ---------------------------------------------------------------

    def phase_duration_s(self, phase: int) -> float:
        began = self.phase_ns.get(phase)
        if began is None:
            return 0.0
        if phase == lc.WARMUP:
            end = self.warmup_end_ns or (0 if self.state == lc.WARMUP else self.end_ns)
        else:
            end = self.measurement_end_ns
        end = end or time.time_ns()
        return max(0.0, (end - began) / 1e9)

    def summary(self) -> common_pb2.RunSummary:
        out = common_pb2.RunSummary()
        for phase in (lc.WARMUP, lc.MEASUREMENT):
            if phase not in self.phase_ns:
                continue
            ps = self.metrics.phase_summary(phase, self.phase_duration_s(phase))
            if ps is not None:
                out.phases.append(ps)
        return out

    def to_proto(self, *, with_details: bool = True) -> run_pb2.Run:
        w = self.workload
        run = run_pb2.Run(
            run_id=self.run_id,
            name=w.name,
            state=self.state,
            reason=self.reason,
            message=self.message,
            mode=MODE_TO_PROTO[w.load.mode],
            target=w.target.driver.value,
            workers=w.load.workers,
            connections=w.load.connections,
            warmup=seconds(w.load.warmup_s),
            duration=seconds(w.load.duration_s),
            summary=self.summary(),
        )
        run.create_time.FromNanoseconds(self.create_ns)
        if self.start_ns:
            run.start_time.FromNanoseconds(self.start_ns)
        if lc.MEASUREMENT in self.phase_ns:
            run.measurement_start_time.FromNanoseconds(self.phase_ns[lc.MEASUREMENT])
        if self.measurement_end_ns:
            run.measurement_end_time.FromNanoseconds(self.measurement_end_ns)
        if self.end_ns:
            run.end_time.FromNanoseconds(self.end_ns)
        run.slo.extend(self.slo)
        if self.slo:  # no verdicts (no [slo], or not evaluated yet) is not "passed"
            run.slo_passed = all(v.passed for v in self.slo)
        run.enrichment = self.enrichment
        if self.find_max is not None:
            run.find_max.CopyFrom(self.find_max.to_proto())
        run.target_rate = w.load.rate
        run.degraded = self.degraded
        run.warnings.extend(self.warnings)
        first = self.metrics.warehouse.first
        if first is not None:
            run.warehouse.CopyFrom(first)
            run.credits = self.metrics.credits(self.end_ns or time.time_ns())
            price = float(self.workload.target.options.get("credit_price", 0) or 0)
            run.cost = run.credits * price
        if self.server.ByteSize():
            run.server.CopyFrom(self.server)
        if self.plan is not None:
            run.plan.CopyFrom(self.plan)
        run.events.extend(self.events)  # small, and watchers want phase timestamps
        if with_details:
            run.workload_json = w.to_json()
            run.pools.extend(self.pools)
            run.run_workers.extend(self.run_workers())
            run.error_samples.extend(self.failures.samples())
        return run

    def run_workers(self) -> list[run_pb2.RunWorker]:
        out = []
        for index, rec in enumerate(self.workers):
            fin = self.finished.get(rec.worker_id)
            hb = rec.heartbeat
            row = run_pb2.RunWorker(
                worker_id=rec.worker_id,
                host=rec.hello.host,
                index=index,
                connections=self.shares.get(rec.worker_id, 0),
                intervals=self.metrics.intervals_from(rec.worker_id),
                count=sum(t.count + sum(e.count for e in t.errors) for t in fin.totals)
                if fin
                else 0,
                errors=sum(e.count for t in fin.totals for e in t.errors) if fin else 0,
                lost=rec.lost,
                cpu_percent=hb.cpu_percent if hb else 0.0,
                rss_bytes=hb.rss_bytes if hb else 0,
                recovered_reports=self.recovered_reports[rec.worker_id],
                duplicate_reports=self.duplicate_reports[rec.worker_id],
            )
            if hb is not None:
                row.clock_offset.CopyFrom(hb.clock_offset)
                row.clock_uncertainty.CopyFrom(hb.clock_uncertainty)
            late_ns, late_count = self.lateness.get(rec.worker_id, (0, 0))
            if late_count:
                row.max_lateness.FromNanoseconds(late_ns)
                row.late_commands = late_count
            if rec.worker_id in self.ready:
                row.ready_time.FromNanoseconds(self.ready[rec.worker_id])
            out.append(row)
        return out

    def progress(self) -> run_pb2.Progress:
        now = time.monotonic()
        prog = run_pb2.Progress(
            state_elapsed=seconds(now - self.state_since),
            run_elapsed=seconds(max(0.0, now - self.start_mono) if self.start_mono else 0.0),
        )
        point = self.metrics.complete_point()
        if point is not None:
            latest = point.to_proto()
            prog.latest.CopyFrom(latest)
            prog.qps = latest.overall.qps
            prog.p50_ms = latest.overall.p50_ms
            prog.p95_ms = latest.overall.p95_ms
            prog.p99_ms = latest.overall.p99_ms
            prog.active_connections = latest.active_connections
            prog.workers_active = latest.workers_active
        prog.target_level = self.level
        prog.first_errors.extend(self.failures.first_errors)
        prog.qps_10s = self.metrics.rolling_qps(10)
        prog.qps_30s = self.metrics.rolling_qps(30)
        phase = self.state if self.state in lc.LOAD_PHASES else lc.MEASUREMENT
        duration = self.phase_duration_s(phase)
        began = self.phase_ns.get(phase, 0)
        if phase == self.state and point is not None and point.end_ns > began > 0:
            # the live totals cover complete seconds: rates over the time they cover
            duration = (point.end_ns - began) / 1e9
        for (ph, kind), cell in sorted(self.metrics.cells.items()):
            if ph == phase:
                prog.count += cell.count
                prog.errors += cell.error_count
                prog.by_kind[kind].CopyFrom(cell.stats(duration))
        overall = self.metrics.phase_totals.get(phase)
        if overall is not None and prog.count:
            prog.phase_overall.CopyFrom(overall.stats(duration))
        return prog

    def update(self, *, final: bool = False) -> run_pb2.WatchRunResponse:
        return run_pb2.WatchRunResponse(
            run=self.to_proto(with_details=final),
            progress=self.progress(),
            workers=[rec.info() for rec in self.workers],
            final=final,
        )
