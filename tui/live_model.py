"""What the Live screen shows, kept apart from Textual: a model fed with the public API's
messages (WatchRun updates, GetRun, GetRunSeries) that the screen renders.

Bounded on purpose: the plotted series and the events log are ``deque(maxlen=...)``.
The state never moves backwards, and a terminal state, once seen, is final.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from snowload.v1 import common_pb2, run_pb2
from tui import format as fmt

MAX_POINTS = 3600
"""Seconds of series kept for the plots (an hour)."""
MAX_EVENTS = 500


class Connection(StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    GAVE_UP = "gave up"


class Level(StrEnum):
    INFO = "info"
    PHASE = "phase"
    OK = "ok"
    WARN = "warn"
    ERROR = "error"


@dataclass(frozen=True)
class EventLine:
    seq: int
    at: float
    """Epoch seconds."""
    level: Level
    text: str


@dataclass(frozen=True)
class Stage:
    """One step of the phase timeline."""

    name: str
    status: str
    """done | current | todo | skipped | failed"""
    elapsed_s: float | None = None
    planned_s: float | None = None


@dataclass(frozen=True)
class Kpi:
    label: str
    value: str


TIMELINE = (fmt.PREPARING, fmt.WARMUP, fmt.MEASUREMENT, fmt.PROCESSING)


class LiveModel:
    def __init__(self, run_id: str, *, clock: Callable[[], float] = time.time) -> None:
        self.run_id = run_id
        self.clock = clock
        self.run: run_pb2.Run | None = None
        """The newest view of the run (updates carry no events or workload)."""
        self.details: run_pb2.Run | None = None
        """The newest view that carries events and the workload JSON."""
        self.progress: run_pb2.Progress | None = None
        self._progress_state = common_pb2.STATE_UNSPECIFIED
        """The state ``progress`` was measured in (its timers mean nothing in another)."""
        self.workers: list[run_pb2.WorkerInfo] = []
        self.points: deque[common_pb2.SeriesPoint] = deque(maxlen=MAX_POINTS)
        self.events: deque[EventLine] = deque(maxlen=MAX_EVENTS)
        self.final = False
        self.connection = Connection.CONNECTING
        self.connection_detail = ""
        self.slo_limits: list[fmt.SloLimit] = []
        self.updates = 0
        self._seq = 0
        self._logged_states: set[int] = set()
        self._workers_seen: dict[str, bool] = {}
        self._errors_seen: tuple[int, int] = (0, 0)
        self._warnings_seen: set[str] = set()
        self._degraded_seen = False

    # -- views ---------------------------------------------------------------------------

    @property
    def state(self) -> int:
        return self.run.state if self.run is not None else common_pb2.STATE_UNSPECIFIED

    @property
    def terminal(self) -> bool:
        return fmt.is_terminal(self.state)

    def log(self, level: Level, text: str, at: float | None = None) -> None:
        self._seq += 1
        self.events.append(EventLine(self._seq, self.clock() if at is None else at, level, text))

    # -- inputs --------------------------------------------------------------------------

    def apply_run(self, run: run_pb2.Run) -> None:
        """A Run from GetRun, StartRun or a final update."""
        if run.workload_json or run.events:
            self.details = run
            if run.workload_json:
                self.slo_limits = fmt.slo_limits(run.workload_json)
            self._log_phase_events(run)
        self._set_run(run)

    def apply_update(self, update: run_pb2.WatchRunResponse) -> None:
        self.updates += 1
        if self.final:
            return
        self.progress = update.progress
        self._progress_state = update.run.state
        self._apply_workers(update.workers)
        latest = update.progress.latest
        if latest.second:
            self._add_point(latest)
        self._check_errors(update.progress, update.run.state)
        if update.final:
            self.apply_run(update.run)
        else:
            self._set_run(update.run)

    def apply_series(self, points: Iterable[common_pb2.SeriesPoint]) -> None:
        """The run's series so far (GetRunSeries): authoritative, replaces what we hold."""
        self.points.clear()
        for p in points:
            self._add_point(p)

    def stream_lost(self, detail: str, retry_in_s: float) -> None:
        if self.connection is not Connection.RECONNECTING:
            self.log(Level.WARN, f"stream lost: {detail}")
        self.connection = Connection.RECONNECTING
        self.connection_detail = f"{detail} · retrying in {retry_in_s:g}s"

    def stream_ok(self) -> None:
        if self.connection is Connection.RECONNECTING:
            self.log(Level.OK, "stream restored")
        if not self.final:
            self.connection = Connection.LIVE
            self.connection_detail = ""

    def give_up(self, detail: str) -> None:
        """Stop following: retrying cannot help (no such run, refused credentials)."""
        self.connection = Connection.GAVE_UP
        self.connection_detail = detail
        self.log(Level.ERROR, detail)

    # -- internals -------------------------------------------------------------------------

    def _set_run(self, run: run_pb2.Run) -> None:
        if self.final:
            return
        if self.run is not None and fmt.STATE_ORDER.get(run.state, 0) < fmt.STATE_ORDER.get(
            self.run.state, 0
        ):
            return  # an older view than the one shown: never move backwards
        previous = self.state
        self.run = run
        self._check_warnings(run)
        if run.state != previous and run.state not in self._logged_states:
            self._logged_states.add(run.state)
            if not fmt.is_terminal(run.state):
                self.log(Level.PHASE, f"phase {fmt.state_name(run.state)}")
        if fmt.is_terminal(run.state):
            self._finish(run)

    def _check_warnings(self, run: run_pb2.Run) -> None:
        if run.degraded and not self._degraded_seen:
            self._degraded_seen = True
            self.log(Level.WARN, "run DEGRADED: it goes on without a lost worker")
        for warning in run.warnings:
            if warning not in self._warnings_seen:
                self._warnings_seen.add(warning)
                self.log(Level.WARN, f"warning: {warning}")

    def _finish(self, run: run_pb2.Run) -> None:
        self.final = True
        self.connection = Connection.ENDED
        self.connection_detail = ""
        self.details = run if (run.events or run.workload_json) else self.details
        level = Level.OK if run.state == fmt.COMPLETED else Level.ERROR
        text = f"run {fmt.state_name(run.state)}"
        if run.reason:
            text += f" ({run.reason})"
        if run.message:
            text += f": {run.message}"
        self.log(level, text)
        if run.slo:
            verdict = "passed" if run.slo_passed else "FAILED"
            failed = [fmt.describe_verdict(v) for v in run.slo if not v.passed]
            self.log(
                Level.OK if run.slo_passed else Level.ERROR,
                f"SLO {verdict}" + (": " + "; ".join(failed) if failed else ""),
            )
        for sample in run.error_samples:
            self.log(Level.ERROR, f"error [{sample.category}]: {sample.message}")

    def _log_phase_events(self, run: run_pb2.Run) -> None:
        for event in run.events:
            if event.state in self._logged_states or fmt.is_terminal(event.state):
                continue
            self._logged_states.add(event.state)
            text = f"phase {fmt.state_name(event.state)}"
            if event.reason:
                text += f" ({event.reason})"
            self.log(Level.PHASE, text, at=fmt.ts_seconds(event.event_time))

    def _add_point(self, p: common_pb2.SeriesPoint) -> None:
        if self.points and p.second <= self.points[-1].second:
            if p.second == self.points[-1].second:
                self.points[-1] = p  # a partial second completed
            return
        self.points.append(p)

    def _apply_workers(self, workers: Iterable[run_pb2.WorkerInfo]) -> None:
        current = list(workers)
        ids = {w.worker_id for w in current}
        for w in current:
            was = self._workers_seen.get(w.worker_id)
            if was is None:
                self.log(Level.INFO, f"worker {w.worker_id} joined ({w.host}, pid {w.pid})")
            elif was and not w.connected:
                age = fmt.seconds_of(w.heartbeat_age)
                self.log(Level.ERROR, f"worker {w.worker_id} lost (silent {age:.1f}s)")
            elif not was and w.connected:
                self.log(Level.OK, f"worker {w.worker_id} back")
            self._workers_seen[w.worker_id] = w.connected
        for gone in [k for k in self._workers_seen if k not in ids]:
            self.log(Level.WARN, f"worker {gone} left the run")
            del self._workers_seen[gone]
        self.workers = current

    def _check_errors(self, progress: run_pb2.Progress, state: int) -> None:
        phase = state if state in fmt.LOAD_PHASES else fmt.MEASUREMENT
        seen_phase, seen = self._errors_seen
        if phase != seen_phase:
            seen = 0
        if progress.errors > seen:
            cats = progress.latest.errors_by_category
            detail = ", ".join(f"{k} x{v}" for k, v in sorted(cats.items()))
            self.log(
                Level.ERROR,
                f"{progress.errors - seen:,} new error(s) in {fmt.state_name(phase)}"
                + (f": {detail}" if detail else ""),
            )
        self._errors_seen = (phase, max(seen, progress.errors))

    # -- derived views for the screen -------------------------------------------------------

    def event_times(self) -> dict[int, float]:
        out: dict[int, float] = {}
        source = self.details.events if self.details is not None else []
        for e in source:
            out.setdefault(e.state, fmt.ts_seconds(e.event_time))
        return out

    def timeline(self) -> list[Stage]:
        run = self.run
        if run is None:
            return [Stage(fmt.state_name(s), "todo") for s in TIMELINE] + [Stage("done", "todo")]
        current = run.state
        times = self.event_times()
        ordered = sorted(times.items(), key=lambda kv: kv[1])
        rank = fmt.STATE_ORDER.get(current, 0)
        stages: list[Stage] = []
        if current == fmt.PENDING:
            stages.append(Stage("PENDING", "current", self._state_elapsed()))
        for s in TIMELINE:
            planned = self._planned(s)
            name = fmt.state_name(s)
            if s == current:
                stages.append(Stage(name, "current", self._state_elapsed(), planned))
            elif s in times:
                later = [t for st, t in ordered if t >= times[s] and st != s]
                elapsed = (min(later) - times[s]) if later else None
                stages.append(Stage(name, "done", elapsed, planned))
            elif s == fmt.WARMUP and fmt.seconds_of(run.warmup) == 0:
                stages.append(Stage(name, "skipped"))
            elif fmt.STATE_ORDER[s] < rank and not fmt.is_terminal(current):
                stages.append(Stage(name, "done", None, planned))
            else:
                stages.append(Stage(name, "todo", None, planned))
        if fmt.is_terminal(current):
            label = fmt.state_name(current)
            stages.append(Stage(label, "done" if current == fmt.COMPLETED else "failed"))
        else:
            stages.append(Stage("done", "todo"))
        return stages

    def _planned(self, state: int) -> float | None:
        if self.run is None:
            return None
        if state == fmt.WARMUP:
            return fmt.seconds_of(self.run.warmup)
        if state == fmt.MEASUREMENT:
            return fmt.seconds_of(self.run.duration)
        return None

    def _state_elapsed(self) -> float | None:
        if self.progress is None or self._progress_state != self.state:
            return None  # e.g. GetRun moved the state on while the stream was down
        return fmt.seconds_of(self.progress.state_elapsed)

    def total_elapsed(self) -> float | None:
        """Since the run was created (accepted)."""
        run = self.run
        if run is None or not run.HasField("create_time"):
            return None
        created = fmt.ts_seconds(run.create_time)
        if fmt.is_terminal(run.state) and run.HasField("end_time"):
            return max(0.0, fmt.ts_seconds(run.end_time) - created)
        began = self.event_times().get(run.state)
        elapsed = self._state_elapsed()
        if began is not None and elapsed is not None:
            return max(0.0, began - created + elapsed)
        return None

    def kpis(self) -> list[Kpi]:
        prog = self.progress
        run = self.run
        conns_planned = run.connections if run is not None else 0
        meas = fmt.measurement(run) if run is not None and self.final else None
        if meas is not None:
            o = meas.overall
            return [
                Kpi("QPS meas.", fmt.fmt_qps(o.qps)),
                Kpi("QPS 10s", fmt.fmt_qps(prog.qps_10s) if prog else "-"),
                Kpi("QPS 30s", fmt.fmt_qps(prog.qps_30s) if prog else "-"),
                Kpi("p50 ms", fmt.fmt_ms(o.p50_ms)),
                Kpi("p95 ms", fmt.fmt_ms(o.p95_ms)),
                Kpi("p99 ms", fmt.fmt_ms(o.p99_ms)),
                Kpi("errors", f"{fmt.fmt_rate(fmt.error_rate(o))} ({o.errors:,})"),
                Kpi("connections", f"- / {conns_planned}"),
            ]
        if prog is None:
            return [
                Kpi(label, "-")
                for label in (
                    "QPS now",
                    "QPS 10s",
                    "QPS 30s",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "errors",
                    "connections",
                )
            ]
        rate = prog.errors / prog.count if prog.count else 0.0
        return [
            Kpi("QPS now", fmt.fmt_qps(prog.qps)),
            Kpi("QPS 10s", fmt.fmt_qps(prog.qps_10s)),
            Kpi("QPS 30s", fmt.fmt_qps(prog.qps_30s)),
            Kpi("p50 ms", fmt.fmt_ms(prog.p50_ms)),
            Kpi("p95 ms", fmt.fmt_ms(prog.p95_ms)),
            Kpi("p99 ms", fmt.fmt_ms(prog.p99_ms)),
            Kpi("errors", f"{fmt.fmt_rate(rate)} ({prog.errors:,})"),
            Kpi("connections", f"{prog.active_connections} / {conns_planned}"),
        ]

    def by_kind(self) -> tuple[str, dict[str, common_pb2.LatencyStats]]:
        """(phase label, stats per kind): live totals of the current load phase, or the
        MEASUREMENT summary once the run has ended."""
        run = self.run
        if run is not None and self.final:
            meas = fmt.measurement(run)
            return "MEASUREMENT", dict(meas.by_kind) if meas is not None else {}
        if self.progress is None:
            return "", {}
        phase = self.state if self.state in fmt.LOAD_PHASES else fmt.MEASUREMENT
        return fmt.state_name(phase), dict(self.progress.by_kind)
