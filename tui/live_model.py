"""What the Live screen shows, kept apart from Textual: a model fed with the public API's
messages (WatchRun updates, GetRun, GetRunSeries) that the screen renders.

Updates carry the run's phase events, its find_max steps, warnings and the current phase's
merged totals (``Progress.phase_overall``, what the SLO is judged on), so a stream alone
keeps every view current; GetRun adds the workload (the SLO limits) and the final details.

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


@dataclass(frozen=True)
class LiveSlo:
    """One SLO limit against the measurement so far: a guess until the final verdicts."""

    limit: fmt.SloLimit
    actual: float | None
    """None while nothing has been measured for its scope."""

    @property
    def passing(self) -> bool | None:
        if self.actual is None:
            return None
        return fmt.slo_holds(self.limit.metric, self.limit.limit, self.actual)


def _ms_or_dash(stats: common_pb2.LatencyStats, field: str = "p99_ms") -> str:
    return fmt.fmt_ms(float(getattr(stats, field))) if stats.count else "-"


def open_phase_kpis(ps: common_pb2.PhaseSummary) -> list[Kpi]:
    """An open-model phase: target and achieved rate, schedule lag, late and dropped
    queries, and the uncorrected service time."""
    achieved = ps.achieved_rate or ps.overall.qps
    return [
        Kpi("target q/s", fmt.fmt_qps(ps.target_rate) if ps.target_rate else "-"),
        Kpi("achieved q/s", fmt.fmt_qps(achieved)),
        Kpi("lag p95 ms", _ms_or_dash(ps.lag, "p95_ms")),
        Kpi("lag p99 ms", _ms_or_dash(ps.lag)),
        Kpi("service p99 ms", _ms_or_dash(ps.service)),
        Kpi("late", f"{ps.late:,}"),
        Kpi("dropped", f"{ps.dropped:,}"),
    ]


TIMELINE = (fmt.PREPARING, fmt.WARMUP, fmt.MEASUREMENT, fmt.PROCESSING)


class LiveModel:
    def __init__(self, run_id: str, *, clock: Callable[[], float] = time.time) -> None:
        self.run_id = run_id
        self.clock = clock
        self.run: run_pb2.Run | None = None
        """The newest view of the run (updates carry no workload JSON)."""
        self.phase_events: list[run_pb2.PhaseEvent] = []
        """The newest phase events (GetRun, and every update of a current controller)."""
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
        if run.workload_json:
            self.slo_limits = fmt.slo_limits(run.workload_json)
        self._take_events(run)
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
            self._take_events(update.run)
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

    def _take_events(self, run: run_pb2.Run) -> None:
        """Keep the newest phase events (an older view has fewer) and log new phases with
        the controller's timestamps and reasons."""
        if self.final or not run.events or len(run.events) < len(self.phase_events):
            return
        if self.run is not None and fmt.STATE_ORDER.get(run.state, 0) < fmt.STATE_ORDER.get(
            self.run.state, 0
        ):
            return
        self.phase_events = list(run.events)
        self._log_phase_events(run)

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
        for e in self.phase_events:
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

    @property
    def open_model(self) -> bool:
        """Load by arrival rate (open mode, or seconds that carry a target rate)."""
        if fmt.is_open_model(self.run):
            return True
        latest = self.progress.latest if self.progress is not None else None
        return bool(latest is not None and latest.target_rate) or fmt.is_open_model(
            None, self.points
        )

    @property
    def find_max(self) -> common_pb2.FindMaxResult | None:
        """The step table of a find_max run (live while the search runs), else None."""
        run = self.run
        return run.find_max if run is not None and fmt.is_find_max(run) else None

    def target_level(self) -> float | None:
        """The load the controller asks for now (connections, or queries/s), while running."""
        if self.progress is None or self.terminal or self.state not in fmt.LOAD_PHASES:
            return None
        return self.progress.target_level or None

    def kpis(self) -> list[Kpi]:
        """At most 9 figures with short labels (so that they fit their boxes): the
        measurement once the run has ended, else the newest second and the phase so far."""
        prog = self.progress
        run = self.run
        conns_planned = run.connections if run is not None else 0
        found = self.find_max
        meas = fmt.measurement(run) if run is not None and self.final else None
        if meas is not None:
            o = meas.overall
            errors = Kpi("errors", f"{fmt.fmt_rate(fmt.error_rate(o))} ({o.errors:,})")
            if self.open_model:
                return [
                    Kpi("QPS meas.", fmt.fmt_qps(meas.achieved_rate or o.qps)),
                    Kpi("target", fmt.fmt_qps(meas.target_rate) if meas.target_rate else "-"),
                    Kpi("p95 ms", fmt.fmt_ms(o.p95_ms)),
                    Kpi("p99 ms", fmt.fmt_ms(o.p99_ms)),
                    Kpi("svc p99", _ms_or_dash(meas.service)),
                    Kpi("lag p99", _ms_or_dash(meas.lag)),
                    Kpi("late", f"{meas.late:,}"),
                    Kpi("dropped", f"{meas.dropped:,}"),
                    errors,
                ]
            third = Kpi("QPS 30s", fmt.fmt_qps(prog.qps_30s) if prog else "-")
            if found is not None:
                best = found.best_level
                shown = fmt.fmt_level(best, found.by, short=True) if best else "-"
                third = Kpi("best", shown)
            return [
                Kpi("QPS meas.", fmt.fmt_qps(o.qps)),
                Kpi("QPS 10s", fmt.fmt_qps(prog.qps_10s) if prog else "-"),
                third,
                Kpi("p50 ms", fmt.fmt_ms(o.p50_ms)),
                Kpi("p95 ms", fmt.fmt_ms(o.p95_ms)),
                Kpi("p99 ms", fmt.fmt_ms(o.p99_ms)),
                errors,
                Kpi("conns", f"- / {conns_planned}"),
            ]
        if prog is None:
            labels = ["QPS now", "QPS 10s", "QPS 30s", "p50 ms", "p95 ms", "p99 ms"]
            if self.open_model:
                labels = ["QPS now", "target", "p50 ms", "p95 ms", "p99 ms", "lag p99"]
                labels += ["late /s", "dropped/s"]
            elif found is not None:
                labels[2] = "level"
            return [Kpi(label, "-") for label in (*labels, "errors", "conns")][:9]
        rate = prog.errors / prog.count if prog.count else 0.0
        errors = Kpi("errors", f"{fmt.fmt_rate(rate)} ({prog.errors:,})")
        if self.open_model:
            latest = prog.latest
            seen = bool(latest.second)
            target = latest.target_rate or prog.target_level or (run.target_rate if run else 0)
            return [
                Kpi("QPS now", fmt.fmt_qps(prog.qps)),
                Kpi("target", fmt.fmt_qps(target) if target else "-"),
                Kpi("p50 ms", fmt.fmt_ms(prog.p50_ms)),
                Kpi("p95 ms", fmt.fmt_ms(prog.p95_ms)),
                Kpi("p99 ms", fmt.fmt_ms(prog.p99_ms)),
                Kpi("lag p99", fmt.fmt_ms(latest.lag_p99_ms) if seen else "-"),
                Kpi("late /s", f"{latest.late:,}" if seen else "-"),
                Kpi("dropped/s", f"{latest.dropped:,}" if seen else "-"),
                errors,
            ]
        third = Kpi("QPS 30s", fmt.fmt_qps(prog.qps_30s))
        if found is not None:
            level = self.target_level()
            third = Kpi("level", fmt.fmt_level(level, found.by, short=True) if level else "-")
        return [
            Kpi("QPS now", fmt.fmt_qps(prog.qps)),
            Kpi("QPS 10s", fmt.fmt_qps(prog.qps_10s)),
            third,
            Kpi("p50 ms", fmt.fmt_ms(prog.p50_ms)),
            Kpi("p95 ms", fmt.fmt_ms(prog.p95_ms)),
            Kpi("p99 ms", fmt.fmt_ms(prog.p99_ms)),
            errors,
            Kpi("conns", f"{prog.active_connections} / {conns_planned}"),
        ]

    def slo_live(self) -> list[LiveSlo] | None:
        """The SLO limits against the MEASUREMENT so far (``Progress.phase_overall`` and the
        per-kind totals), while the measurement runs or is being processed; None before it,
        once the final verdicts are in, or from a controller that sends no merged totals."""
        prog = self.progress
        live_states = (fmt.MEASUREMENT, fmt.PROCESSING)
        if (
            prog is None
            or self.final
            or self.state not in live_states
            or self._progress_state not in live_states
            or not prog.HasField("phase_overall")
            or not self.slo_limits
        ):
            return None
        out = []
        for lim in self.slo_limits:
            stats = prog.phase_overall if not lim.kind else prog.by_kind.get(lim.kind)
            out.append(LiveSlo(lim, fmt.slo_actual(lim.metric, stats)))
        return out

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
