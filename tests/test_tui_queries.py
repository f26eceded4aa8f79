"""The Run detail's "Queries" tab against a real controller with a real worker: the
run's query log as the controller stores it (GetRunQueries), the slowest first, and a
drill-in view of one entry with its parameters, its statement and the profile command."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import DataTable, Static, TabbedContent

from controller import lifecycle as lc
from snowload.workload import parse_toml
from tests.tui_support import SIZE, cluster, until, workload_toml
from tui import format as fmt
from tui.app import SnowloadApp
from tui.screens.detail import DetailScreen
from tui.screens.query import QueryScreen
from tui.widgets.tables import cell_text

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SNOWLOAD_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_the_queries_tab_lists_the_log_and_drills_into_an_entry(home: Path) -> None:
    async with cluster(home, workers=1) as c:
        text = workload_toml(warmup="0s", duration="1s").replace(
            'mode = "closed"', 'mode = "closed"\nslow_queries = 3\nquery_sample = 20'
        )
        run = c.controller.runs.start(parse_toml(text, "tui.toml"))
        assert run.task is not None
        await run.task
        stored = c.controller.runs.store.query_entries(run.run_id)
        assert stored
        slowest = c.controller.runs.store.run_queries(run.run_id, phase=lc.MEASUREMENT, slowest=1)
        app = SnowloadApp(c.address)
        async with app.run_test(size=SIZE) as pilot:
            app.open_detail(run.run_id)
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), 5, "Detail")
            detail = app.screen
            assert isinstance(detail, DetailScreen)
            await until(pilot, lambda: detail.queries is not None, 15, "the query log")
            detail.query_one(TabbedContent).active = "tab-queries"
            await pilot.pause(0.1)
            table = detail.query_one("#queries", DataTable)
            assert table.display
            keys = [str(k.value) for k in table.rows]
            assert sorted(keys, key=int) == [str(e.entry_id) for e in stored]
            # the run's slowest MEASUREMENT query comes first, with its latency and params
            top = slowest[0]
            assert keys[0] == str(top.entry_id)
            assert cell_text(table, keys[0], "ms") == fmt.fmt_ms(top.latency_ms)
            assert "slowest" in cell_text(table, keys[0], "why")
            table.focus()
            table.move_cursor(row=0)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, QueryScreen), 5, "the entry")
            shown = app.screen.query_one("#query-detail", Static).content
            plain = shown.plain if isinstance(shown, Text) else str(shown)
            assert f"entry {top.entry_id} of run {run.run_id}" in plain
            assert top.params is not None
            assert f"$1 = {top.params[0]}" in plain
            assert "items" in plain and "WHERE id = ?" in plain  # the kind's statement
            assert f"snowload runs profile {run.run_id} {top.entry_id}" in plain
            await pilot.press("escape")
            assert app.screen is detail
