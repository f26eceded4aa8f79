"""The TUI's views of the load modes, on frozen data (no controller): the find_max step
panel, the open model's target-vs-achieved plot and schedule figures, the live SLO guess,
warnings and the degraded mark, and a watch that needs no GetRun on state changes."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import cast

from rich.text import Text
from textual.widgets import DataTable, RichLog, Static

from snowload.v1 import common_pb2, run_pb2
from tests.test_tui_snapshots import (
    FIND_MAX_STEPS,
    T0,
    find_max_model,
    find_max_result,
    find_max_run,
    find_max_series,
    progress,
    run,
    series,
    stats,
    workers,
)
from tests.tui_support import SIZE
from tui import format as fmt
from tui.app import SnowloadApp
from tui.client import ConnectionSettings, RunClient
from tui.live_model import LiveModel
from tui.screens.detail import DetailScreen, header_text
from tui.screens.live import LiveScreen
from tui.watcher import follow_run
from tui.widgets.findmax import FindMaxPanel, conclusion_text, step_rows
from tui.widgets.kpi import KpiBar
from tui.widgets.plots import LAG_COLOR, TARGET_COLOR, LinePlot, latency_lines, rate_lines
from tui.widgets.tables import cell_text

OPEN_WORKLOAD_JSON = (
    '{"load":{"connections":8,"duration":"20s","mode":"open","rate":2000,"warmup":"5s",'
    '"workers":2},"name":"orders-open","query":[],"slo":{"p95_ms":20,"min_qps":1900},'
    '"target":{"database":"orders.db","driver":"sqlite"}}'
)


def plain(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Text) else str(content)


# ------------------------------------------------------------------------- open model


def open_series(seconds: int = 25, rate: float = 2000.0) -> list[common_pb2.SeriesPoint]:
    """An open-model run that keeps up with its target, except for a stall at 17 s."""
    points = series(qps=rate, warmup=5, measured=seconds - 5)
    for p in points:
        p.target_rate = rate
        stalled = p.second in (17, 18)
        p.lag_p99_ms = 45.0 if stalled else 1.5 + 0.4 * math.sin(p.second)
        p.late = 120 if stalled else 0
        p.dropped = 8 if p.second == 18 else 0
        p.service_p99_ms = p.overall.p99_ms * 0.6
    return points


def open_run(state: int = fmt.COMPLETED) -> run_pb2.Run:
    r = run(run_id="a1b2c3d4e5f6", name="orders-open", state=state, qps=1996.0, errors=0)
    r.mode = common_pb2.LOAD_MODE_OPEN
    r.target_rate = 2000.0
    r.workload_json = OPEN_WORKLOAD_JSON
    for ps in r.summary.phases:
        ps.target_rate = 2000.0
        ps.achieved_rate = ps.overall.qps
        ps.service.CopyFrom(stats(ps.overall.count, 0, 0.0, 0.5))
        ps.lag.CopyFrom(stats(ps.overall.count, 0, 0.0, 0.3))
        if ps.phase == fmt.MEASUREMENT:
            ps.late, ps.dropped = 240, 8
    return r


def open_model(*, final: bool) -> LiveModel:
    model = LiveModel("a1b2c3d4e5f6", clock=lambda: T0 + 12.0)
    points = open_series()
    model.apply_run(open_run(fmt.MEASUREMENT))
    model.apply_series(points[:17])
    update = run_pb2.WatchRunResponse(
        run=open_run(fmt.MEASUREMENT), progress=progress(points[:18], 12.8), workers=workers()
    )
    update.run.workload_json = ""
    model.apply_update(update)
    if final:
        done = run_pb2.WatchRunResponse(
            run=open_run(), progress=progress(points, 0.2), workers=workers(), final=True
        )
        model.apply_update(done)
        model.apply_series(points)
    return model


def test_open_model_plots_target_against_achieved_and_the_lag() -> None:
    points = open_series()
    lines = rate_lines(points)
    assert [line.label for line in lines] == ["target", "warmup", "measurement"]
    target = lines[0]
    assert target.color == TARGET_COLOR and set(target.ys) == {2000.0}
    assert target.xs == [float(p.second) for p in points]
    # seconds that carry no target rate: the run's configured rate, over the load phases
    for p in points:
        p.target_rate = 0
    assert rate_lines(points, 1500.0)[0].ys == [1500.0] * len(points)
    assert [line.label for line in rate_lines(points)] == ["warmup", "measurement"]
    lag = latency_lines(open_series(), lag=True)[-1]
    assert (lag.label, lag.color) == ("lag p99", LAG_COLOR)
    assert max(lag.ys) == 45.0


def test_open_model_kpis_live_from_the_newest_second_and_final_from_the_summary() -> None:
    running = open_model(final=False)
    assert running.open_model
    live = {k.label: k.value for k in running.kpis()}
    assert live["target"] == "2,000"
    assert live["lag p99"] == "45.0"  # second 18: the stall
    assert live["late /s"] == "120" and live["dropped/s"] == "8"
    ended = open_model(final=True)
    final = {k.label: k.value for k in ended.kpis()}
    assert final["target"] == "2,000" and final["QPS meas."] == "1,996"
    assert final["lag p99"] == fmt.fmt_ms(0.3 * 7.4)
    assert final["late"] == "240" and final["dropped"] == "8"
    assert len(ended.kpis()) <= 9  # every label fits its box


async def test_open_model_screens_show_the_rate_plot_and_schedule_figures() -> None:
    model = open_model(final=False)
    done = open_run()
    app = SnowloadApp(offline=True)
    async with app.run_test(size=SIZE) as pilot:
        live = LiveScreen(model.run_id, model=model)
        await app.push_screen(live)
        await pilot.pause()
        qps_plot = live.query_one("#qps-plot", LinePlot)
        assert qps_plot.lines[0].label == "target"
        assert "lag p99" in [line.label for line in live.query_one("#latency-plot", LinePlot).lines]
        assert live.query_one("#kpis", KpiBar).values()["lag p99"] == "45.0"
        assert not live.query_one("#find-max", FindMaxPanel).display
        detail = DetailScreen(done.run_id, run=done, points=open_series())
        await app.push_screen(detail)
        await pilot.pause()
        kpis = detail.query_one("#open-kpis", KpiBar)
        assert kpis.display
        shown = kpis.values()
        assert shown["target q/s"] == "2,000" and shown["achieved q/s"] == "1,996"
        assert shown["late"] == "240" and shown["dropped"] == "8"
        assert shown["lag p99 ms"] == fmt.fmt_ms(0.3 * 7.4)
        labels = [line.label for line in detail.query_one("#qps-plot", LinePlot).lines]
        assert labels == ["target", "warmup", "measurement"]
        assert not detail.query_one("#find-max", FindMaxPanel).display
        # a closed-mode run has neither
        closed = run()
        await app.push_screen(DetailScreen(closed.run_id, run=closed, points=series()))
        await pilot.pause()
        other = app.screen
        assert not other.query_one("#open-kpis", KpiBar).display
        assert [line.label for line in other.query_one("#qps-plot", LinePlot).lines] == [
            "warmup",
            "measurement",
        ]


# ---------------------------------------------------------------------------- find_max


def test_find_max_steps_best_and_conclusion() -> None:
    result = find_max_result(len(FIND_MAX_STEPS), concluded=True)
    rows = step_rows(result)
    assert [key for key, _ in rows] == [f"s{i}" for i in range(6)]
    level = rows[2][1][1]
    assert isinstance(level, Text) and level.plain == "12 conns ★"  # the best
    verdict, reason = rows[3][1][7], rows[3][1][8]
    assert verdict.plain == "degraded"
    assert reason.plain == "throughput stopped growing (5,350 vs 5,210 queries/s)"
    text = conclusion_text(result, current_level=None, ended=True).plain
    assert text.startswith("concluded: best 12 connections · 5,210 QPS · p95 2.94 ms")
    assert text.endswith("at 13 connections (5,290 vs 5,210 queries/s)")
    searching = find_max_result(2, concluded=False)
    text = conclusion_text(searching, current_level=12, ended=False).plain
    assert text.startswith("searching… step 3 at 12 connections")
    assert "best so far 8 connections" in text
    # right after a step the controller still asks for the level just measured
    just_measured = conclusion_text(searching, current_level=8, ended=False).plain
    assert just_measured.startswith("searching… step 3 ·")
    none = common_pb2.FindMaxResult(by="rate", concluded=True, reason="error rate 100.0% at 50")
    none.steps.add(level=50, error_rate=1.0, verdict="degraded", reason="error rate 100.0% at 50")
    assert "no stable level" in conclusion_text(none, current_level=None, ended=True).plain
    assert step_rows(none)[0][1][1].plain == "50.0 q/s"


async def test_find_max_panel_grows_step_by_step_on_live_and_detail() -> None:
    model = LiveModel("5d0c7e1f9a23", clock=lambda: T0)
    model.apply_run(find_max_run(1, state=fmt.MEASUREMENT))
    app = SnowloadApp(offline=True)
    async with app.run_test(size=SIZE) as pilot:
        live = LiveScreen(model.run_id, model=model)
        await app.push_screen(live)
        await pilot.pause()
        panel = live.query_one("#find-max", FindMaxPanel)
        assert panel.display and panel.table.row_count == 1
        assert "searching…" in panel.conclusion
        points = find_max_series(3)
        update = run_pb2.WatchRunResponse(
            run=find_max_run(3, state=fmt.MEASUREMENT), progress=progress(points, 14.0)
        )
        update.progress.target_level = 16
        model.apply_update(update)
        live.render_model()
        await pilot.pause()
        assert panel.table.row_count == 3
        assert "step 4 at 16 connections" in panel.conclusion
        assert live.query_one("#kpis", KpiBar).values()["level"] == "16 conns"
        final = find_max_model()
        ended = LiveScreen(final.run_id, model=final)
        await app.push_screen(ended)
        await pilot.pause()
        panel = ended.query_one("#find-max", FindMaxPanel)
        assert panel.table.row_count == len(FIND_MAX_STEPS)
        assert panel.conclusion.startswith("concluded: best 12 connections")
        assert ended.query_one("#kpis", KpiBar).values()["best"] == "12 conns"
        done = find_max_run(len(FIND_MAX_STEPS), state=fmt.COMPLETED)
        detail = DetailScreen(done.run_id, run=done, points=find_max_series(6))
        await app.push_screen(detail)
        await pilot.pause()
        panel = detail.query_one("#find-max", FindMaxPanel)
        assert panel.display and panel.table.row_count == len(FIND_MAX_STEPS)
        assert cell_text(panel.table, "s2", "verdict") == "stable"
        assert panel.conclusion.startswith("concluded: best 12 connections")


# ---------------------------------------------------------------------------- live SLO


def slo_model(p95: float, errors: int) -> LiveModel:
    model = LiveModel("3f9a1c2b7d10", clock=lambda: T0)
    model.apply_run(run(state=fmt.MEASUREMENT))
    prog = progress(series()[:10], 3.0)
    overall = stats(20_000, errors, 2400.0, p95 / 3.1)
    prog.phase_overall.CopyFrom(overall)
    prog.by_kind["insert"].CopyFrom(stats(2_000, 0, 240.0, 0.5))
    model.apply_update(run_pb2.WatchRunResponse(run=run(state=fmt.MEASUREMENT), progress=prog))
    return model


async def test_the_live_slo_table_guesses_from_the_measurement_so_far() -> None:
    good = slo_model(p95=3.1, errors=0)
    live = good.slo_live()
    assert live is not None
    assert [(i.limit.metric, i.passing) for i in live] == [
        ("p95_ms", True),
        ("error_rate", True),
        ("p99_ms", True),
    ]
    bad = slo_model(p95=31.0, errors=100)
    app = SnowloadApp(offline=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = LiveScreen(bad.run_id, model=bad)
        await app.push_screen(screen)
        await pilot.pause()
        slo = screen.query_one("#slo", DataTable)
        assert "measurement so far" in str(slo.border_title)
        assert cell_text(slo, "l0", "actual") == "31.0"
        assert cell_text(slo, "l0", "verdict") == "failing"
        assert cell_text(slo, "l1", "actual") == "0.50%"
        assert cell_text(slo, "l1", "verdict") == "failing"
        assert cell_text(slo, "l2", "verdict") == "passing"  # insert p99
        # the final verdicts replace the guess
        final = run_pb2.WatchRunResponse(run=run(), progress=progress(series(), 0.2), final=True)
        bad.apply_update(final)
        screen.render_model()
        await pilot.pause()
        assert slo.border_title == "SLO FAILED"
        assert cell_text(slo, "v0", "verdict") == "pass"
    # before the measurement (and without merged totals) there is nothing to guess from
    warm = LiveModel("3f9a1c2b7d10")
    warm.apply_run(run(state=fmt.WARMUP))
    assert warm.slo_live() is None


# ------------------------------------------------------------- warnings and degraded


async def test_warnings_are_logged_once_and_degraded_runs_are_marked() -> None:
    model = LiveModel("3f9a1c2b7d10", clock=lambda: T0)
    model.apply_run(run(state=fmt.MEASUREMENT))
    for n in range(3):
        r = run(state=fmt.MEASUREMENT)
        r.degraded = n > 0
        r.warnings.append("worker w1 lost; the run goes on without it")
        if n == 2:
            r.warnings.append("worker w0 saturated (CPU 98%)")
        model.apply_update(run_pb2.WatchRunResponse(run=r, progress=progress(series()[:9], 2)))
    texts = [e.text for e in model.events]
    assert texts.count("warning: worker w1 lost; the run goes on without it") == 1
    assert texts.count("warning: worker w0 saturated (CPU 98%)") == 1
    assert sum("DEGRADED" in t for t in texts) == 1
    app = SnowloadApp(offline=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = LiveScreen(model.run_id, model=model)
        await app.push_screen(screen)
        await pilot.pause()
        title = plain(screen.query_one("#live-title", Static))
        assert "DEGRADED" in title and "2 warning(s)" in title
        log = "\n".join(line.text for line in screen.query_one("#events", RichLog).lines)
        assert log.count("warning: worker w1 lost") == 1
    done = run()
    done.degraded = True
    done.warnings.append("worker w1 lost; the run goes on without it")
    header = header_text(done).plain
    assert "DEGRADED" in header and "1 warning(s)" in header


# --------------------------------------------------------------------- the watch


class EventfulClient:
    """Serves a run whose every update carries its phase events, counting GetRun calls."""

    address = "fake:0"
    settings = ConnectionSettings("fake:0")

    def __init__(self) -> None:
        self.get_runs = 0

    async def get_run(self, run_id: str) -> run_pb2.Run:
        self.get_runs += 1
        return run(state=fmt.PREPARING)

    async def get_series(self, run_id: str) -> list[common_pb2.SeriesPoint]:
        return []

    async def watch(self, run_id: str) -> AsyncIterator[run_pb2.WatchRunResponse]:
        for state in (fmt.WARMUP, fmt.MEASUREMENT, fmt.PROCESSING, fmt.COMPLETED):
            update = run_pb2.WatchRunResponse(
                run=run(state=state), progress=run_pb2.Progress(), final=fmt.is_terminal(state)
            )
            if not update.final:
                update.run.workload_json = ""
            yield update


async def test_state_changes_need_no_getrun_when_updates_carry_events() -> None:
    fake = EventfulClient()
    model = LiveModel("3f9a1c2b7d10")
    await follow_run(cast(RunClient, fake), model, lambda: None)
    assert fake.get_runs == 1  # the first look only
    assert model.state == fmt.COMPLETED
    phases = [e.text for e in model.events if e.text.startswith("phase ")]
    assert phases == [
        "phase PENDING",
        "phase PREPARING",
        "phase WARMUP",
        "phase MEASUREMENT",
        "phase PROCESSING",
    ]
    # with the controller's timestamps: WARMUP began 1.2 s after the run was created
    at = {e.text: e.at for e in model.events}
    assert at["phase WARMUP"] == T0 + 1.2
