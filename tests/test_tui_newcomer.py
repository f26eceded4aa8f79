"""The TUI's first hour, against a real controller with real workers: the run's partial
last seconds are not plotted as a collapse (Live, Detail, Compare), workers show their
final state, a stop confirmed after the end says the run already ended, the export says
where it went, Enter is in the Runs footer, Launch starts with a file chosen, and an 80 x
24 terminal shows every figure of the Runs, Live and Detail tables whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, OptionList, Static

from snowload.v1 import common_pb2, run_pb2
from tests.tui_support import SIZE, cluster, model_state, until, workload_toml
from tui import format as fmt
from tui.app import SnowloadApp
from tui.client import ConnectionSettings, RunClient
from tui.live_model import LiveModel
from tui.screens.compare import CompareScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.detail import DetailScreen
from tui.screens.launch import LaunchScreen
from tui.screens.live import LiveScreen
from tui.screens.runs import RunsScreen
from tui.widgets.plots import LinePlot
from tui.widgets.tables import cell_text

pytestmark = pytest.mark.slow
NARROW = (80, 24)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SNOWLOAD_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def record_notices(app: SnowloadApp) -> list[str]:
    """Every notification the app shows from now on ("title: message"), kept after the
    toast has gone (a loaded machine can be slower than a toast's timeout)."""
    seen: list[str] = []
    show = app.notify

    def notify(message: str, **kwargs: Any) -> None:
        seen.append(f"{kwargs.get('title', '')}: {message}")
        show(message, **kwargs)

    app.notify = notify  # type: ignore[method-assign]
    return seen


def plotted_seconds(screen: Any, plot_id: str) -> set[float]:
    return {x for line in screen.query_one(plot_id, LinePlot).lines for x in line.xs}


def assert_tail_not_plotted(screen: Any, points: list[common_pb2.SeriesPoint]) -> None:
    partial = {float(p.second) for p in points if p.partial}
    full = {float(p.second) for p in points if not p.partial}
    assert partial, "the run has no partial second: nothing was checked"
    for plot_id in ("#qps-plot", "#latency-plot"):
        shown = plotted_seconds(screen, plot_id)
        assert shown and not shown & partial, (plot_id, sorted(shown), sorted(partial))
        assert max(shown) == max(full)


def fits(table: DataTable[Any]) -> bool:
    """Every column of ``table`` is in view: nothing hidden past its right edge."""
    return table.virtual_size.width <= table.scrollable_content_region.width


async def test_a_run_seen_through_by_a_newcomer(home: Path) -> None:
    toml = workload_toml(name="tui-new", database="new.db", workers=2, connections=4)
    async with cluster(home, workers=2) as c:
        client = RunClient(ConnectionSettings(c.address))
        # a measurement that ends half-way through a second: its last second is partial
        started = await client.start_run(
            run_pb2.StartRunRequest(workload_toml=toml, warmup="1s", duration="2.5s")
        )
        run_id = started.run_id
        app = SnowloadApp(c.address)
        notices = record_notices(app)
        async with app.run_test(size=SIZE) as pilot:
            runs = app.screen
            assert isinstance(runs, RunsScreen)
            await pilot.pause(0.1)
            enter = runs.active_bindings["enter"].binding
            assert enter.show and enter.description == "Open run"  # in the footer

            app.open_live(run_id)
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
            # a stop asked for while it runs, confirmed after it has ended on its own
            await pilot.press("s")
            assert isinstance(app.screen, ConfirmScreen)
            await until(pilot, lambda: live.model.terminal, 30, "the end of the run")
            await pilot.press("y")
            await until(pilot, lambda: app.screen is live, 5, "the question closed")
            await pilot.pause(0.3)
            said = notices
            assert any("has already ended (COMPLETED" in n for n in said), said
            assert not any("FAILED_PRECONDITION" in n or "illegal" in n for n in said), said
            assert live.model.state == fmt.COMPLETED

            # Live: the final series has a partial tail; the plots leave it out
            await until(
                pilot,
                lambda: any(p.partial for p in live.model.points),
                10,
                "the final series",
            )
            await pilot.pause(0.2)
            assert_tail_not_plotted(live, list(live.model.points))
            workers = live.query_one("#workers", DataTable)
            states = {cell_text(workers, str(k.value), "state") for k in workers.rows}
            assert states == {"FINISHED"}, states

            # Detail: the same, and the export says where it went (the data directory)
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), 5, "Detail")
            detail = app.screen
            assert isinstance(detail, DetailScreen)
            await until(pilot, lambda: detail.run is not None, 10, "the detail")
            await pilot.pause(0.2)
            assert_tail_not_plotted(detail, detail.points)
            await pilot.press("e")
            await until(pilot, lambda: detail.exported is not None, 10, "the export")
            exported = detail.exported
            assert exported is not None and exported.is_absolute() and exported.exists()
            assert exported.parent == home / "exports"
            assert any(str(exported) in n for n in notices), notices

            # Compare (the run with itself): the overlay leaves the tail out too
            app.push_screen(CompareScreen(run_id, run_id))
            compare = app.screen
            assert isinstance(compare, CompareScreen)
            await until(pilot, lambda: compare.sides is not None, 10, "the comparison")
            await pilot.pause(0.2)
            overlay = {
                x for line in compare.query_one("#compare-qps", LinePlot).lines for x in line.xs
            }
            assert overlay and len(overlay) < len(detail.points)

            # a stale view (the run still measuring) asks to stop: the controller refuses,
            # and the screen says why in plain words
            stale = LiveModel(run_id)
            measuring = run_pb2.Run()
            measuring.CopyFrom(detail.run)  # type: ignore[arg-type]
            measuring.state = fmt.MEASUREMENT
            stale.apply_run(measuring)
            app.push_screen(LiveScreen(run_id, model=stale))
            await pilot.pause(0.2)
            await pilot.press("s")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await until(
                pilot,
                lambda: sum("has already ended" in n for n in notices) >= 2,
                10,
                "the plain answer",
                lambda: str(notices),
            )
            assert not any("FAILED_PRECONDITION" in n for n in notices)
        await client.close()


async def test_launch_starts_with_the_first_file_chosen(home: Path) -> None:
    app = SnowloadApp(offline=True)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(LaunchScreen())
        await pilot.pause(0.2)
        launch = app.screen
        assert isinstance(launch, LaunchScreen)
        files = launch.query_one("#files", OptionList)
        await until(pilot, lambda: files.option_count > 0, 5, "examples listed")
        await until(pilot, lambda: launch.workload is not None, 5, "the first file parsed")
        first = files.get_option_at_index(0)
        assert files.highlighted == 0
        assert launch.path == first.id
        assert "name" in str(launch.query_one("#summary", Static).content)


async def test_80x24_shows_every_figure_whole(home: Path) -> None:
    """Runs, Live and Detail in an 80 x 24 terminal: the tables choose their columns so
    that none runs off the edge (QPS, p95, errors and SLO on Runs among them)."""
    toml = workload_toml(name="tui-narrow", database="narrow.db", workers=1)
    async with cluster(home, workers=1) as c:
        client = RunClient(ConnectionSettings(c.address))
        started = await client.start_run(
            run_pb2.StartRunRequest(workload_toml=toml, warmup="0s", duration="1.5s")
        )
        app = SnowloadApp(c.address)
        async with app.run_test(size=NARROW) as pilot:
            app.open_live(started.run_id)
            await until(pilot, lambda: isinstance(app.screen, LiveScreen), 5, "Live")
            live = app.screen
            assert isinstance(live, LiveScreen)
            await until(pilot, lambda: live.model.terminal, 30, "the end of the run")
            await pilot.pause(0.3)
            for table_id in ("#kinds", "#workers", "#slo"):
                assert fits(live.query_one(table_id, DataTable)), table_id
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), 5, "Detail")
            detail = app.screen
            assert isinstance(detail, DetailScreen)
            await until(pilot, lambda: detail.run is not None, 10, "the detail")
            await pilot.pause(0.3)
            phases = detail.query_one("#phases", DataTable)
            assert fits(phases)
            assert {"count", "errors", "qps", "p95", "p99"} <= {
                str(k.value) for k in phases.columns
            }
            await pilot.press("h")
            runs = app.screen
            assert isinstance(runs, RunsScreen)
            table = runs.query_one("#runs", DataTable)
            await until(pilot, lambda: table.row_count == 1, 10, "the run listed")
            await pilot.pause(0.2)
            assert fits(table)
            keys = {str(k.value) for k in table.columns}
            assert {"qps", "p95", "errors", "slo"} <= keys
            assert cell_text(table, started.run_id, "slo") == "pass"
        await client.close()
