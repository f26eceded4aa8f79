"""SVG snapshots of the key screens, fed with fixed protobuf messages (no controller), times
frozen (fixed timestamps, a fixed clock for the events log, TZ=UTC).

Update the baselines after an intended change with
``python -m pytest tests/test_tui_snapshots.py --snapshot-update`` and look at them."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import pytest
from textual.pilot import Pilot
from textual.screen import Screen

from snowload.v1 import common_pb2, control_pb2, run_pb2
from tui import format as fmt
from tui.app import SnowloadApp
from tui.live_model import LiveModel
from tui.screens.compare import CompareScreen, Side
from tui.screens.detail import DetailScreen
from tui.screens.live import LiveScreen
from tui.screens.runs import RunsScreen

SIZE = (140, 45)
T0 = 1_736_935_200.0  # 2025-01-15 10:00:00 UTC
KINDS = {"point_lookup": 0.6, "range_scan": 0.2, "insert": 0.1, "update": 0.1}
WORKLOAD_JSON = (
    '{"load":{"connections":8,"duration":"20s","mode":"closed","warmup":"5s","workers":2},'
    '"name":"orders-mix","query":[],"slo":{"error_rate":0.001,"p95_ms":20,'
    '"query":{"insert":{"p99_ms":5}}},"target":{"database":"orders.db","driver":"sqlite"}}'
)

SnapCompare = Callable[..., bool]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# ------------------------------------------------------------------------- fixed data


def set_ts(field: object, seconds: float) -> None:
    field.FromNanoseconds(int(seconds * 1e9))  # type: ignore[attr-defined]


def set_dur(field: object, seconds: float) -> None:
    field.FromNanoseconds(int(seconds * 1e9))  # type: ignore[attr-defined]


def stats(
    count: int, errors: int, qps: float, p50: float, scale: float = 1.0
) -> common_pb2.LatencyStats:
    return common_pb2.LatencyStats(
        count=count,
        errors=errors,
        qps=qps,
        p50_ms=round(p50 * scale, 3),
        p95_ms=round(p50 * 3.1 * scale, 3),
        p99_ms=round(p50 * 7.4 * scale, 3),
        max_ms=round(p50 * 31 * scale, 3),
        mean_ms=round(p50 * 1.4 * scale, 3),
        min_ms=0.004,
    )


def series(
    qps: float = 2400.0, latency: float = 0.9, warmup: int = 5, measured: int = 20
) -> list[common_pb2.SeriesPoint]:
    points = []
    for second in range(1, warmup + measured + 1):
        phase = fmt.WARMUP if second <= warmup else fmt.MEASUREMENT
        ramp = min(1.0, 0.55 + second * 0.12)
        q = qps * ramp * (1 + 0.06 * math.sin(second / 2.3))
        lat = latency * (1.35 if phase == fmt.WARMUP else 1.0) * (1 + 0.15 * math.cos(second / 3.1))
        p = common_pb2.SeriesPoint(
            second=second,
            phase=phase,
            overall=stats(int(q), 1 if second == 17 else 0, round(q, 1), lat),
            active_connections=8,
            workers_active=2,
        )
        set_ts(p.end_time, T0 + 1.2 + second)
        set_dur(p.duration, 1.0)
        for kind, share in KINDS.items():
            p.by_kind[kind].CopyFrom(stats(int(q * share), 0, round(q * share, 1), lat))
        points.append(p)
    return points


def summary(qps: float, latency: float, errors: int) -> common_pb2.RunSummary:
    out = common_pb2.RunSummary()
    for phase, seconds, factor in ((fmt.WARMUP, 5.0, 1.35), (fmt.MEASUREMENT, 20.0, 1.0)):
        ps = out.phases.add(phase=phase)
        set_dur(ps.duration, seconds)
        count = int(qps * seconds)
        err = errors if phase == fmt.MEASUREMENT else 0
        ps.overall.CopyFrom(stats(count, err, qps, latency * factor))
        for i, (kind, share) in enumerate(KINDS.items()):
            kind_err = err if kind == "insert" else 0
            scale = 1.0 + i * 0.8
            ps.by_kind[kind].CopyFrom(
                stats(int(count * share), kind_err, round(qps * share, 1), latency * factor, scale)
            )
        if err:
            ps.errors_by_category["constraint"] = err
    return out


def run(
    *,
    run_id: str = "3f9a1c2b7d10",
    name: str = "orders-mix",
    state: int = fmt.COMPLETED,
    connections: int = 8,
    qps: float = 2400.0,
    latency: float = 0.9,
    errors: int = 101,
    created: float = T0,
) -> run_pb2.Run:
    r = run_pb2.Run(
        run_id=run_id,
        name=name,
        state=state,
        mode=common_pb2.LOAD_MODE_CLOSED,
        target="sqlite",
        workers=2,
        connections=connections,
        workload_json=WORKLOAD_JSON,
        enrichment=common_pb2.ENRICHMENT_STATUS_SKIPPED,
    )
    set_dur(r.warmup, 5.0)
    set_dur(r.duration, 20.0)
    set_ts(r.create_time, created)
    set_ts(r.start_time, created + 1.2)
    timeline = [
        (fmt.PENDING, 0.0, ""),
        (fmt.PREPARING, 0.3, ""),
        (fmt.WARMUP, 1.2, ""),
        (fmt.MEASUREMENT, 6.2, ""),
        (fmt.PROCESSING, 26.2, ""),
    ]
    for st, at, reason in timeline:
        if fmt.STATE_ORDER[st] <= fmt.STATE_ORDER[state]:
            e = r.events.add(state=st, reason=reason)
            set_ts(e.event_time, created + at)
    if fmt.STATE_ORDER[state] >= fmt.STATE_ORDER[fmt.MEASUREMENT]:
        set_ts(r.measurement_start_time, created + 6.2)
        r.summary.CopyFrom(summary(qps, latency, errors))
    if fmt.is_terminal(state):
        e = r.events.add(state=state, reason="duration_elapsed")
        set_ts(e.event_time, created + 27.4)
        set_ts(r.end_time, created + 27.4)
        set_ts(r.measurement_end_time, created + 26.2)
        r.reason = "duration_elapsed"
        meas = fmt.measurement(r)
        assert meas is not None
        rate = fmt.error_rate(meas.overall)
        r.slo.extend(
            [
                common_pb2.SloVerdict(
                    metric="p95_ms", limit=20, actual=meas.overall.p95_ms, passed=True
                ),
                common_pb2.SloVerdict(
                    metric="error_rate", limit=0.001, actual=rate, passed=rate <= 0.001
                ),
                common_pb2.SloVerdict(
                    kind="insert",
                    metric="p99_ms",
                    limit=5,
                    actual=meas.by_kind["insert"].p99_ms,
                    passed=meas.by_kind["insert"].p99_ms <= 5,
                ),
            ]
        )
        r.slo_passed = all(v.passed for v in r.slo)
        r.server.status = common_pb2.ENRICHMENT_STATUS_SKIPPED
        r.server.message = "sqlite keeps no server-side query history"
        for i in range(2):
            r.run_workers.add(
                worker_id=f"w{i}",
                host="loadgen-1",
                index=i,
                connections=4,
                intervals=27,
                count=int(qps * 25 / 2),
                errors=errors // 2,
            )
        if errors:
            r.error_samples.add(
                category="constraint", message="UNIQUE constraint failed: orders.id"
            )
    return r


def workers(hb: float = 0.4) -> list[run_pb2.WorkerInfo]:
    out = []
    for i, (cpu, rss, offset) in enumerate(
        ((71.0, 48_300_000, 0.0004), (68.5, 47_900_000, -0.0011))
    ):
        w = run_pb2.WorkerInfo(
            worker_id=f"w{i}",
            host="loadgen-1",
            pid=4100 + i,
            state=control_pb2.WORKER_STATE_RUNNING,
            connected=True,
            active_connections=4,
            cpu_percent=cpu,
            rss_bytes=rss,
        )
        set_dur(w.heartbeat_age, hb + i * 0.3)
        set_dur(w.clock_offset, offset)
        set_dur(w.clock_uncertainty, 0.0003 + i * 0.0001)
        out.append(w)
    return out


def progress(points: list[common_pb2.SeriesPoint], state_elapsed: float) -> run_pb2.Progress:
    latest = points[-1]
    prog = run_pb2.Progress(
        qps=latest.overall.qps,
        p50_ms=latest.overall.p50_ms,
        p95_ms=latest.overall.p95_ms,
        p99_ms=latest.overall.p99_ms,
        errors=1,
        count=sum(p.overall.count for p in points if p.phase == fmt.MEASUREMENT),
        active_connections=8,
        workers_active=2,
        qps_10s=2391.4,
        qps_30s=2288.0,
    )
    prog.latest.CopyFrom(latest)
    set_dur(prog.state_elapsed, state_elapsed)
    set_dur(prog.run_elapsed, latest.second + 0.4)
    for kind, share in KINDS.items():
        prog.by_kind[kind].CopyFrom(stats(int(prog.count * share), 0, 2400 * share, 0.9))
    return prog


def live_model(*, final: bool) -> LiveModel:
    """A model fed as the watcher feeds it: GetRun, GetRunSeries, then WatchRun updates."""
    now = [T0 + 12.0]
    model = LiveModel("3f9a1c2b7d10", clock=lambda: now[0])
    running = run(state=fmt.MEASUREMENT)
    points = series()[:14]
    model.apply_run(running)
    model.apply_series(points[:-1])
    model.stream_ok()
    update = run_pb2.WatchRunResponse(
        run=run(state=fmt.MEASUREMENT), progress=progress(points, 7.8), workers=workers()
    )
    update.run.ClearField("events")
    update.run.workload_json = ""
    model.apply_update(update)
    if final:
        now[0] = T0 + 27.5
        done = run(state=fmt.COMPLETED)
        final_update = run_pb2.WatchRunResponse(
            run=done, progress=progress(series(), 1.2), workers=workers(0.2), final=True
        )
        model.apply_update(final_update)
        model.apply_series(series())
    return model


FIND_MAX_WORKLOAD_JSON = (
    '{"load":{"connections":16,"duration":"1m20s","find_max":{"max":32,"start":4,"step":4,'
    '"step_duration":"5s"},"mode":"find_max","warmup":"0s","workers":2},'
    '"name":"orders-knee","query":[],"slo":{"p95_ms":20},'
    '"target":{"database":"orders.db","driver":"sqlite"}}'
)
FIND_MAX_STEPS = (
    # level, QPS, p50 ms, verdict reason ("" = stable)
    (4, 1910.0, 0.8, ""),
    (8, 3720.0, 0.85, ""),
    (12, 5210.0, 0.95, ""),
    (16, 5350.0, 1.6, "throughput stopped growing at 16 connections (5,350 vs 5,210 queries/s)"),
    (14, 5330.0, 1.3, "throughput stopped growing at 14 connections (5,330 vs 5,210 queries/s)"),
    (13, 5290.0, 1.1, "throughput stopped growing at 13 connections (5,290 vs 5,210 queries/s)"),
)
STEP_S = 5


def find_max_result(steps: int, *, concluded: bool) -> common_pb2.FindMaxResult:
    """The first ``steps`` steps of a search by connections that finds its knee at 12."""
    out = common_pb2.FindMaxResult(by="connections", concluded=concluded)
    for i, (level, qps, p50, reason) in enumerate(FIND_MAX_STEPS[:steps]):
        step = out.steps.add(
            level=level,
            error_rate=0.0,
            verdict="degraded" if reason else "stable",
            reason=reason,
        )
        step.stats.CopyFrom(stats(int(qps * (STEP_S - 1)), 0, qps, p50))
        set_ts(step.start_time, T0 + 1.0 + i * STEP_S)
        set_ts(step.end_time, T0 + 1.0 + (i + 1) * STEP_S)
        if not reason and level >= out.best_level:
            out.best_level = level
            out.best.CopyFrom(step.stats)
    if concluded:
        out.reason = FIND_MAX_STEPS[steps - 1][3]
    return out


def find_max_series(steps: int) -> list[common_pb2.SeriesPoint]:
    points = []
    for i, (level, qps, p50, _reason) in enumerate(FIND_MAX_STEPS[:steps]):
        for j in range(STEP_S):
            second = i * STEP_S + j + 1
            q = qps * (0.8 if j == 0 else 1.0) * (1 + 0.03 * math.sin(second))
            p = common_pb2.SeriesPoint(
                second=second,
                phase=fmt.MEASUREMENT,
                overall=stats(int(q), 0, round(q, 1), p50 * (1 + 0.1 * math.cos(second))),
                active_connections=level,
                workers_active=2,
            )
            set_ts(p.end_time, T0 + 1.0 + second)
            set_dur(p.duration, 1.0)
            p.by_kind["point_lookup"].CopyFrom(p.overall)
            points.append(p)
    return points


def find_max_run(steps: int, *, state: int) -> run_pb2.Run:
    """A find_max run after ``steps`` steps; COMPLETED means the search concluded."""
    done = fmt.is_terminal(state)
    r = run_pb2.Run(
        run_id="5d0c7e1f9a23",
        name="orders-knee",
        state=state,
        mode=common_pb2.LOAD_MODE_FIND_MAX,
        target="sqlite",
        workers=2,
        connections=16,
        workload_json=FIND_MAX_WORKLOAD_JSON,
        enrichment=common_pb2.ENRICHMENT_STATUS_SKIPPED,
    )
    set_dur(r.duration, 80.0)
    set_ts(r.create_time, T0 - 0.4)
    set_ts(r.start_time, T0)
    r.find_max.CopyFrom(find_max_result(steps, concluded=done))
    measured = steps * STEP_S
    for st, at in ((fmt.PENDING, -0.4), (fmt.PREPARING, -0.2), (fmt.MEASUREMENT, 0.1)):
        set_ts(r.events.add(state=st).event_time, T0 + at)
    ps = r.summary.phases.add(phase=fmt.MEASUREMENT)
    set_dur(ps.duration, measured)
    total = sum(int(q * STEP_S) for _, q, _, _ in FIND_MAX_STEPS[:steps])
    ps.overall.CopyFrom(stats(total, 0, total / measured, 1.0))
    ps.by_kind["point_lookup"].CopyFrom(ps.overall)
    if done:
        set_ts(r.events.add(state=fmt.PROCESSING).event_time, T0 + measured + 0.2)
        end = r.events.add(state=state, reason="search_concluded")
        set_ts(end.event_time, T0 + measured + 0.5)
        set_ts(r.end_time, T0 + measured + 0.5)
        r.reason = "search_concluded"
        r.slo.add(metric="p95_ms", limit=20, actual=ps.overall.p95_ms, passed=True)
        r.slo_passed = True
    return r


def find_max_model() -> LiveModel:
    """A concluded find_max run as the Live screen saw it: mid-search updates, then final."""
    now = [T0 + 12.0]
    model = LiveModel("5d0c7e1f9a23", clock=lambda: now[0])
    model.apply_run(find_max_run(2, state=fmt.MEASUREMENT))
    model.apply_series(find_max_series(2))
    model.stream_ok()
    points = find_max_series(len(FIND_MAX_STEPS))
    update = run_pb2.WatchRunResponse(
        run=find_max_run(5, state=fmt.MEASUREMENT),
        progress=progress(points[:27], 2.0),
        workers=workers(),
    )
    update.run.workload_json = ""
    update.progress.target_level = 13
    update.progress.errors = 0
    now[0] = T0 + 27.5
    model.apply_update(update)
    now[0] = T0 + 31.0
    final = run_pb2.WatchRunResponse(
        run=find_max_run(len(FIND_MAX_STEPS), state=fmt.COMPLETED),
        progress=progress(points, 0.3),
        workers=workers(0.2),
        final=True,
    )
    final.progress.errors = 0
    model.apply_update(final)
    model.apply_series(points)
    return model


def app_showing(
    make: Callable[[], Screen[None]],
) -> tuple[SnowloadApp, Callable[[Pilot[None]], object]]:
    app = SnowloadApp(offline=True)

    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.app.push_screen(make())
        await pilot.pause()

    return app, run_before


# ------------------------------------------------------------------------------ snapshots


def test_runs_screen(snap_compare: SnapCompare) -> None:
    runs = [
        run(run_id="c41d9e07aa52", name="orders-mix", state=fmt.MEASUREMENT, created=T0 + 3600),
        run(run_id="3f9a1c2b7d10", created=T0 + 1800),
        run(run_id="9b2e4f6a8c01", connections=16, qps=3950.0, latency=1.6, created=T0 + 900),
        run(run_id="77aa01bc3d4e", name="checkout", state=fmt.FAILED, created=T0),
    ]
    runs[2].slo_passed = False
    failed = runs[3]
    failed.reason = "setup_failed"
    failed.ClearField("slo")
    failed.ClearField("summary")
    app, before = app_showing(lambda: RunsScreen(runs))
    assert snap_compare(app, terminal_size=SIZE, run_before=before, press=["down", "space"])


def test_live_screen_running(snap_compare: SnapCompare) -> None:
    model = live_model(final=False)
    app, before = app_showing(lambda: LiveScreen(model.run_id, model=model))
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_live_screen_ended(snap_compare: SnapCompare) -> None:
    model = live_model(final=True)
    app, before = app_showing(lambda: LiveScreen(model.run_id, model=model))
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_detail_screen(snap_compare: SnapCompare) -> None:
    done = run()
    done.target = "snowflake"
    done.enrichment = common_pb2.ENRICHMENT_STATUS_COMPLETED
    done.server.status = common_pb2.ENRICHMENT_STATUS_COMPLETED
    done.server.message = "query history of warehouse LOAD_WH"
    for kind, p50 in (("point_lookup", 31.0), ("insert", 58.0)):
        t = done.server.timings.add(kind=kind, phase=fmt.MEASUREMENT, calls=1200, matched=1187)
        t.total.CopyFrom(stats(1200, 0, 60.0, p50))
        t.execution.CopyFrom(stats(1200, 0, 60.0, p50 * 0.7))
        t.compilation.CopyFrom(stats(1200, 0, 60.0, p50 * 0.2))
        t.queued.CopyFrom(stats(1200, 0, 60.0, 0.4))
        t.app_overhead.CopyFrom(stats(1187, 0, 60.0, 6.5))
    points = series()
    app, before = app_showing(lambda: DetailScreen(done.run_id, run=done, points=points))
    # the server-side timings tab (n: next tab)
    assert snap_compare(app, terminal_size=SIZE, run_before=before, press=["n", "n", "n"])


def test_compare_screen(snap_compare: SnapCompare) -> None:
    a = Side(run(), series())
    b = Side(
        run(run_id="9b2e4f6a8c01", connections=16, qps=3950.0, latency=1.6, errors=0),
        series(qps=3950.0, latency=1.6),
    )
    app, before = app_showing(lambda: CompareScreen(a.run.run_id, b.run.run_id, data=(a, b)))
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_live_screen_find_max(snap_compare: SnapCompare) -> None:
    """The find_max step table (the best step starred) and the search's conclusion."""
    model = find_max_model()
    app, before = app_showing(lambda: LiveScreen(model.run_id, model=model))
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


# ------------------------------------------------------------------ an 80 x 24 terminal

NARROW = (80, 24)


def narrow_runs() -> list[run_pb2.Run]:
    runs = [
        run(run_id="c41d9e07aa52", name="orders-mix", state=fmt.MEASUREMENT, created=T0 + 3600),
        run(run_id="3f9a1c2b7d10", created=T0 + 1800),
        run(run_id="9b2e4f6a8c01", qps=3_950_000.0, latency=1.6, errors=12_345, created=T0 + 900),
        run(run_id="77aa01bc3d4e", name="checkout", state=fmt.FAILED, created=T0),
    ]
    runs[3].reason = "setup_failed"
    runs[3].ClearField("summary")
    return runs


def test_runs_screen_80x24(snap_compare: SnapCompare) -> None:
    """QPS, p95, errors and SLO in view (millions abbreviated), the footer whole."""
    app, before = app_showing(lambda: RunsScreen(narrow_runs()))
    assert snap_compare(app, terminal_size=NARROW, run_before=before, press=["down", "space"])


def test_live_screen_80x24(snap_compare: SnapCompare) -> None:
    """Title and timeline wrapped, the KPIs in a grid, lower plots; the tables below."""
    model = live_model(final=False)
    app, before = app_showing(lambda: LiveScreen(model.run_id, model=model))
    assert snap_compare(app, terminal_size=NARROW, run_before=before)


def test_detail_screen_80x24(snap_compare: SnapCompare) -> None:
    """The phase summary leaves out duration and error rate rather than cut a figure."""
    done = run()
    points = series()
    app, before = app_showing(lambda: DetailScreen(done.run_id, run=done, points=points))
    assert snap_compare(app, terminal_size=NARROW, run_before=before)
