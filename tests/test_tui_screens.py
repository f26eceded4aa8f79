"""The TUI against a real controller with real workers: launch a run from the Launch screen,
follow it to COMPLETED on the Live screen, find it on Runs, open its detail, export it,
compare it with another run; stop a run with confirmation; clear messages for a controller
that is not there and for an invalid workload; a find_max search step by step and an
open-model run against its target rate, live and in detail."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import DataTable, Input, OptionList, RichLog, Static, TabbedContent

from snowload.v1 import run_pb2
from tests.tui_support import (
    SCREENSHOTS,
    SIZE,
    UPDATE_SCREENSHOTS,
    cluster,
    find_max_toml,
    model_state,
    open_toml,
    until,
    workload_toml,
)
from tui import format as fmt
from tui.app import SnowloadApp
from tui.client import ConnectionSettings, RunClient
from tui.live_model import Connection
from tui.screens.compare import CompareScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.detail import DetailScreen
from tui.screens.launch import LaunchScreen
from tui.screens.live import LiveScreen
from tui.screens.runs import RunsScreen
from tui.widgets.findmax import FindMaxPanel
from tui.widgets.kpi import KpiBar
from tui.widgets.plots import LinePlot
from tui.widgets.tables import cell_text
from tui.widgets.timeline import PhaseTimeline

pytestmark = pytest.mark.slow


def plain(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Text) else str(content)


def log_text(log: RichLog) -> str:
    return "\n".join(line.text for line in log.lines)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SNOWLOAD_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_launch_watch_find_detail_export_and_compare(home: Path) -> None:
    path = home / "tui_a.toml"
    path.write_text(workload_toml(name="tui-a", database="tui_a.db", workers=2), encoding="utf-8")
    shots = SCREENSHOTS if UPDATE_SCREENSHOTS else home
    async with cluster(home, workers=2) as c:
        client_b = RunClient(ConnectionSettings(c.address))
        app = SnowloadApp(c.address)
        async with app.run_test(size=SIZE) as pilot:
            runs = app.screen
            assert isinstance(runs, RunsScreen)
            status = runs.query_one("#runs-status", Static)
            await until(pilot, lambda: "2 worker(s) attached" in plain(status), 10, "Runs status")

            # -- Launch: type a path, override the load, start with the mouse
            await pilot.press("l")
            launch = app.screen
            assert isinstance(launch, LaunchScreen)
            files = launch.query_one("#files", OptionList)
            await until(pilot, lambda: files.option_count > 0, 5, "examples listed")
            await pilot.click("#path")
            launch.query_one("#path", Input).value = ""
            await pilot.press(*str(path), "enter")
            for field, value in (
                ("workers", "1"),
                ("connections", "2"),
                ("warmup", "2s"),
                ("duration", "2s"),
            ):
                await pilot.click(f"#{field}")
                await pilot.press(*value)
            summary = launch.query_one("#summary", Static)
            await until(
                pilot,
                lambda: (
                    "1 worker(s) · 2 connection(s)" in plain(summary)
                    and "warmup 2s · measurement 2s" in plain(summary)
                ),
                5,
                "the parsed summary with the overrides",
            )
            assert "lookup" in plain(summary) and "bump" in plain(summary)
            await pilot.click("#start")
            await until(pilot, lambda: isinstance(app.screen, LiveScreen), 10, "the Live screen")
            live = app.screen
            assert isinstance(live, LiveScreen)
            run_a = live.run_id

            # another run meanwhile, on the other worker, for the comparison
            text_b = workload_toml(name="tui-b", database="tui_b.db", connections=3)
            started_b = await client_b.start_run(
                run_pb2.StartRunRequest(workload_toml=text_b, source_name="b.toml")
            )
            run_b = started_b.run_id

            # -- Live: phases, KPIs, plots, tables, events; then the final state stays
            shown = lambda: model_state(live.model)  # noqa: E731
            await until(pilot, lambda: live.model.terminal, 60, "the end of the run", shown)
            await pilot.pause(0.2)
            assert live.model.state == fmt.COMPLETED
            assert live.model.connection is Connection.ENDED
            title = plain(live.query_one("#live-title", Static))
            assert "tui-a" in title and "COMPLETED (duration_elapsed)" in title
            timeline = str(live.query_one("#timeline", PhaseTimeline).content)
            for stage in ("✓ PREPARING", "✓ WARMUP", "✓ MEASUREMENT", "✓ PROCESSING"):
                assert stage in timeline
            assert "✓ COMPLETED" in timeline and "total" in timeline
            kpis = live.query_one("#kpis", KpiBar).values()
            assert float(kpis["QPS meas."].replace(",", "")) > 0
            assert kpis["errors"].startswith("0.00%")
            kinds = live.query_one("#kinds", DataTable)
            assert {k.value for k in kinds.rows} == {"lookup", "bump"}
            assert int(cell_text(kinds, "lookup", "count").replace(",", "")) > 0
            workers = live.query_one("#workers", DataTable)
            assert workers.row_count == 1
            slo = live.query_one("#slo", DataTable)
            assert slo.border_title == "SLO passed"
            assert cell_text(slo, "v0", "verdict") == "pass"
            events = log_text(live.query_one("#events", RichLog))
            for line in ("phase WARMUP", "phase MEASUREMENT", "run COMPLETED", "joined"):
                assert line in events, shown()
            qps_plot = live.query_one("#qps-plot", LinePlot)
            labels = [line.label for line in qps_plot.lines]
            # a second belongs to the phase most of its queries ran in: a loaded machine can
            # give the 2 s warmup's seconds to the measurement
            if any(p.phase == fmt.WARMUP for p in live.model.points):
                assert labels[:2] == ["warmup", "measurement"]
                assert qps_plot.marker_x is not None  # the warmup boundary
            else:
                assert labels[:1] == ["measurement"]
            assert live.check_action("stop", ()) is False  # nothing left to stop
            app.save_screenshot("live.svg", str(shots))

            # -- Runs: both runs, filtered, marked A and B, compared
            await pilot.press("escape")
            assert app.screen is runs
            table = runs.query_one("#runs", DataTable)

            def both_completed() -> bool:
                keys = {k.value for k in table.rows}
                return {run_a, run_b} <= keys and all(
                    "COMPLETED" in cell_text(table, r, "state") for r in (run_a, run_b)
                )

            await until(pilot, both_completed, 30, "both runs COMPLETED on Runs")
            assert cell_text(table, run_a, "name") == "tui-a"
            assert cell_text(table, run_a, "slo") == "pass"
            await pilot.press("slash", *"tui-b")
            await until(pilot, lambda: table.row_count == 1, 5, "the filter")
            assert next(iter(table.rows)).value == run_b
            await pilot.press("escape")
            await until(pilot, lambda: table.row_count == 2, 5, "the filter cleared")

            order = [k.value for k in table.rows]
            table.move_cursor(row=order.index(run_a))
            await pilot.press("space")
            table.move_cursor(row=order.index(run_b))
            await pilot.press("space")
            assert runs.marked == [run_a, run_b]
            await pilot.press("c")
            compare = app.screen
            assert isinstance(compare, CompareScreen)
            await until(pilot, lambda: compare.sides is not None, 10, "the comparison")
            await pilot.pause(0.2)
            cmp_table = compare.query_one("#compare", DataTable)
            keys = {k.value for k in cmp_table.rows}
            assert {"all/qps", "lookup/p95_ms", "bump/error_rate"} <= keys
            assert cell_text(cmp_table, "all/qps", "a") != "-"
            assert cell_text(cmp_table, "all/qps", "relative").endswith("%")
            overlay = compare.query_one("#compare-qps", LinePlot)
            assert [line.label for line in overlay.lines] == ["A", "B"]
            app.save_screenshot("compare.svg", str(shots))

            # -- Detail of A: tables, SLO, enrichment; export JSON to the data directory
            await pilot.press("escape")
            assert app.screen is runs
            table.move_cursor(row=[k.value for k in table.rows].index(run_a))
            await pilot.press("enter")
            detail = app.screen
            assert isinstance(detail, DetailScreen)
            await until(pilot, lambda: detail.run is not None, 10, "the detail")
            phases = detail.query_one("#phases", DataTable)
            assert {k.value for k in phases.rows} == {"WARMUP", "MEASUREMENT"}
            detail_kinds = detail.query_one("#kinds", DataTable)
            assert "MEASUREMENT/lookup" in {k.value for k in detail_kinds.rows}
            assert "enrichment SKIPPED" in plain(detail.query_one("#detail-title", Static))
            assert "PROCESSING" in plain(detail.query_one("#extra", Static))
            slo_table = detail.query_one("#slo", DataTable)
            assert cell_text(slo_table, "v0", "verdict") == "pass"
            await pilot.press("n")
            assert detail.query_one(TabbedContent).active == "tab-percentiles"
            await until(pilot, lambda: detail.histograms is not None, 10, "the histograms")
            tail = detail.query_one("#percentiles", DataTable)
            keys = [k.value for k in tail.rows]
            assert keys[0] == "MEASUREMENT/all" and "MEASUREMENT/lookup" in keys
            # the same histogram semantics as the summary's figures
            for column in ("p50", "p99"):
                assert cell_text(tail, "MEASUREMENT/lookup", column) == cell_text(
                    detail_kinds, "MEASUREMENT/lookup", column
                )
            await pilot.press("n")
            assert detail.query_one(TabbedContent).active == "tab-slo"
            assert len(detail.points) >= 3
            await pilot.press("e")
            await until(pilot, lambda: detail.exported is not None, 10, "the export")
            exported = detail.exported
            assert exported is not None and exported.parent == home / "exports"
            data = json.loads(exported.read_text(encoding="utf-8"))
            assert data["run_id"] == run_a and data["state"] == "COMPLETED"
            assert data["phases"]["MEASUREMENT"]["by_kind"]["lookup"]["count"] > 0
            assert sum(p["count"] for p in data["series"]) == sum(
                ph["count"] for ph in data["phases"].values()
            )
        await client_b.close()
    assert (shots / "live.svg").exists() and (shots / "compare.svg").exists()


async def test_stop_asks_for_confirmation_then_cancels(home: Path) -> None:
    async with cluster(home, workers=1) as c:
        client = RunClient(ConnectionSettings(c.address))
        run = await client.start_run(
            run_pb2.StartRunRequest(
                workload_toml=workload_toml(name="tui-stop", database="stop.db"),
                warmup="0s",
                duration="60s",
            )
        )
        app = SnowloadApp(c.address)
        async with app.run_test(size=SIZE) as pilot:
            app.open_live(run.run_id)
            await until(pilot, lambda: isinstance(app.screen, LiveScreen), 5, "Live")
            live = app.screen
            assert isinstance(live, LiveScreen)
            await until(
                pilot,
                lambda: live.model.state == fmt.MEASUREMENT,
                30,
                "MEASUREMENT",
                lambda: model_state(live.model),
            )
            await pilot.press("s")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")  # changed our mind: nothing happens
            assert app.screen is live
            await pilot.pause(0.3)
            assert not live.model.terminal
            await pilot.press("s")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await until(pilot, lambda: live.model.terminal, 20, "the run to end")
            assert live.model.state == fmt.CANCELLED
            assert live.model.run is not None and live.model.run.reason == "user_requested"
            assert "CANCELLED (user_requested)" in plain(live.query_one("#live-title", Static))
            assert app.screen is live  # it stays, usable
        got = await client.get_run(run.run_id)
        assert got.state == fmt.CANCELLED
        await client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_controller_is_named_not_a_traceback() -> None:
    address = f"127.0.0.1:{free_port()}"
    app = SnowloadApp(address)
    async with app.run_test(size=SIZE) as pilot:
        runs = app.screen
        assert isinstance(runs, RunsScreen)
        status = runs.query_one("#runs-status", Static)
        await until(pilot, lambda: "cannot reach" in plain(status), 15, "the unreachable message")
        assert f"cannot reach the controller at {address}" in plain(status)
        assert status.has_class("error")
        await until(
            pilot,
            lambda: any(address in str(n.message) for n in app._notifications),
            5,
            "a notification naming the address",
        )
        # the Live screen of any run says the same, and keeps retrying
        app.open_live("0123456789ab")
        await until(pilot, lambda: isinstance(app.screen, LiveScreen), 5, "Live")
        live = app.screen
        assert isinstance(live, LiveScreen)
        await until(
            pilot, lambda: live.model.connection is Connection.RECONNECTING, 15, "reconnecting"
        )
        assert address in plain(live.query_one("#live-status", Static))
    assert app.return_code in (None, 0)


async def test_launch_shows_a_validation_error_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    text = workload_toml().replace("weight = 1\n", "weight = -3\n")
    bad.write_text(text, encoding="utf-8")
    good = tmp_path / "good.toml"
    good.write_text(workload_toml(workers=2, connections=2), encoding="utf-8")
    app = SnowloadApp(offline=True)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(LaunchScreen(str(bad)))
        launch = app.screen
        assert isinstance(launch, LaunchScreen)
        summary = launch.query_one("#summary", Static)
        await until(pilot, lambda: "invalid workload" in plain(summary), 5, "the error")
        line = next(i for i, s in enumerate(text.splitlines(), 1) if s == "weight = -3")
        shown = plain(summary)
        assert f"{bad}:{line}: query[1].weight: must be a positive number, got -3" in shown
        assert f"{line} │ weight = -3" in shown
        # an override that contradicts the file is an error too
        path_input = launch.query_one("#path", Input)
        path_input.value = str(good)
        await pilot.click("#path")
        await pilot.press("enter")
        await until(pilot, lambda: "name         tui-test" in plain(summary), 5, "good file")
        await pilot.click("#workers")
        await pilot.press("3")
        await until(pilot, lambda: "invalid workload" in plain(summary), 5, "override error")
        assert "connections: must be at least load.workers (3)" in plain(summary)
        # starting needs a controller: offline, it says so instead of failing
        await pilot.press("ctrl+s")
        status = launch.query_one("#launch-status", Static)
        await until(pilot, lambda: bool(plain(status)), 5, "the launch status")


async def test_a_find_max_search_grows_step_by_step_and_concludes(home: Path) -> None:
    async with cluster(home, workers=1) as c:
        client = RunClient(ConnectionSettings(c.address))
        started = await client.start_run(
            run_pb2.StartRunRequest(workload_toml=find_max_toml(), source_name="fm.toml")
        )
        run_id = started.run_id
        app = SnowloadApp(c.address)
        async with app.run_test(size=SIZE) as pilot:
            app_client = await app.wait_client()
            assert app_client is not None
            get_runs: list[str] = []
            get_run = app_client.get_run

            async def counting_get_run(wanted: str) -> run_pb2.Run:
                get_runs.append(wanted)
                return await get_run(wanted)

            app_client.get_run = counting_get_run  # type: ignore[method-assign]
            app.open_live(run_id)
            await until(pilot, lambda: isinstance(app.screen, LiveScreen), 5, "Live")
            await pilot.pause()
            live = app.screen
            assert isinstance(live, LiveScreen)
            shown = lambda: model_state(live.model)  # noqa: E731
            panel = live.query_one("#find-max", FindMaxPanel)
            slo = live.query_one("#slo", DataTable)

            # while the search runs: the steps so far, where it is, the SLO so far
            await until(
                pilot,
                lambda: panel.table.row_count >= 1 and not live.model.terminal,
                30,
                "a first step while the search runs",
                shown,
            )
            assert panel.display
            assert panel.conclusion.startswith("searching…"), panel.conclusion
            assert cell_text(panel.table, "s0", "level") in ("1 conns", "1 conns ★")
            assert live.query_one("#kpis", KpiBar).values()["level"].endswith("conns")
            assert "measurement so far" in str(slo.border_title)
            assert cell_text(slo, "l0", "actual") != "-"
            assert cell_text(slo, "l0", "verdict") == "passing"

            # the end: every step and the conclusion
            await until(pilot, lambda: live.model.terminal, 60, "the end of the search", shown)
            await pilot.pause(0.2)
            assert live.model.state == fmt.COMPLETED, shown()
            result = live.model.run.find_max if live.model.run is not None else None
            assert result is not None and result.concluded
            steps = panel.table.row_count
            assert steps >= 2 and steps == len(result.steps)
            conclusion = panel.conclusion
            assert conclusion.startswith("concluded: best "), conclusion
            assert f"best {fmt.fmt_level(result.best_level, 'connections')}" in conclusion
            assert result.reason in conclusion
            assert cell_text(slo, "v0", "verdict") == "pass"  # the final verdicts
            # phase changes came with their events on the stream: no GetRun after the first
            lost = any(e.text.startswith("stream lost") for e in live.model.events)
            assert get_runs.count(run_id) == 1 or lost, get_runs
            events = log_text(live.query_one("#events", RichLog))
            assert "phase MEASUREMENT" in events and "run COMPLETED" in events

            # -- Run detail: the same steps and conclusion
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), 5, "Detail")
            detail = app.screen
            assert isinstance(detail, DetailScreen)
            await until(pilot, lambda: detail.run is not None, 10, "the detail")
            await pilot.pause(0.1)
            detail_panel = detail.query_one("#find-max", FindMaxPanel)
            assert detail_panel.display
            assert detail_panel.table.row_count == steps
            assert detail_panel.conclusion == conclusion
            await pilot.press("e")
            await until(pilot, lambda: detail.exported is not None, 10, "the export")
            assert detail.exported is not None
            data = json.loads(detail.exported.read_text(encoding="utf-8"))
            assert data["mode"] == "find_max" and data["find_max"]["concluded"] is True
            assert len(data["find_max"]["steps"]) == steps
        await client.close()


async def test_an_open_model_run_shows_target_against_achieved_and_the_lag(home: Path) -> None:
    async with cluster(home, workers=1) as c:
        client = RunClient(ConnectionSettings(c.address))
        started = await client.start_run(
            run_pb2.StartRunRequest(workload_toml=open_toml(), source_name="open.toml")
        )
        app = SnowloadApp(c.address)
        async with app.run_test(size=SIZE) as pilot:
            app.open_live(started.run_id)
            await until(pilot, lambda: isinstance(app.screen, LiveScreen), 5, "Live")
            await pilot.pause()
            live = app.screen
            assert isinstance(live, LiveScreen)
            shown = lambda: model_state(live.model)  # noqa: E731
            kpis = live.query_one("#kpis", KpiBar)
            qps_plot = live.query_one("#qps-plot", LinePlot)

            # live: the newest second's lag, and the target drawn under the achieved rate
            def lag_shown() -> bool:
                return kpis.values().get("lag p99", "-") != "-" and not live.model.terminal

            await until(pilot, lag_shown, 30, "the live lag p99", shown)
            assert kpis.values()["target"] == "200"
            assert qps_plot.lines[0].label == "target"
            assert not live.query_one("#find-max", FindMaxPanel).display

            await until(pilot, lambda: live.model.terminal, 30, "the end of the run", shown)
            await pilot.pause(0.2)
            assert live.model.state == fmt.COMPLETED, shown()
            final = kpis.values()
            assert final["target"] == "200"
            assert final["lag p99"] != "-" and "late" in final and "dropped" in final
            target = next(line for line in qps_plot.lines if line.label == "target")
            assert set(target.ys) == {200.0}

            # -- Run detail: the MEASUREMENT's schedule figures and the same plot
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), 5, "Detail")
            detail = app.screen
            assert isinstance(detail, DetailScreen)
            await until(pilot, lambda: detail.run is not None, 10, "the detail")
            await pilot.pause(0.1)
            open_kpis = detail.query_one("#open-kpis", KpiBar)
            assert open_kpis.display
            figures = open_kpis.values()
            assert figures["target q/s"] == "200"
            assert float(figures["achieved q/s"].replace(",", "")) > 100
            assert figures["lag p99 ms"] != "-"
            labels = [line.label for line in detail.query_one("#qps-plot", LinePlot).lines]
            assert labels[0] == "target" and "measurement" in labels
        await client.close()
