"""The Compare screen shows the verdict and interval of every metric when both runs'
per-second histograms are at hand, and why there are none when the runs are too short."""

from __future__ import annotations

import random

from textual.widgets import DataTable, Static

from snowload import hdr
from snowload.bootstrap import Second
from snowload.v1 import common_pb2, run_pb2
from snowload.verdicts import ALL, RunSeconds
from tui.app import SnowloadApp
from tui.screens.compare import CompareScreen, Side


def side(run_id: str, median_ms: float, seconds: int, seed: int) -> Side:
    rng = random.Random(seed)
    run = run_pb2.Run(run_id=run_id, name="pg", state=common_pb2.STATE_COMPLETED)
    meas = run.summary.phases.add(phase=common_pb2.STATE_MEASUREMENT)
    meas.overall.count = 200 * seconds
    meas.overall.p50_ms = median_ms
    units = []
    for _ in range(seconds):
        hist = hdr.new_histogram()
        for _ in range(200):
            hist.record_value(int(median_ms * 1000 * (1 + rng.uniform(-0.05, 0.05))))
        units.append(Second(1.0, 200, 0, tuple(hdr.recorded(hdr.encode(hist)))))
    return Side(run, [], RunSeconds(run_id, {ALL: units}))


def cell(table: DataTable[object], row: str, column: str) -> str:
    return str(table.get_cell(row, column))


async def test_compare_screen_shows_verdicts() -> None:
    a, b = side("aaaa00000001", 4.0, 8, 1), side("bbbb00000002", 6.0, 8, 2)
    app = SnowloadApp(offline=True)
    async with app.run_test(size=(160, 40)) as pilot:
        await app.push_screen(CompareScreen("aaaa00000001", "bbbb00000002", data=(a, b)))
        await pilot.pause()
        table = app.screen.query_one("#compare", DataTable)
        assert cell(table, "all/p50_ms", "verdict") == "slower"
        low, _, high = cell(table, "all/p50_ms", "ci").partition(" .. ")
        assert 0.3 < float(low.rstrip("%")) / 100 < 0.5 < float(high.rstrip("%")) / 100 < 0.7
        await pilot.press("x")  # swap: B is now the 4 ms run
        await pilot.pause()
        assert cell(table, "all/p50_ms", "verdict") == "faster"


async def test_compare_screen_says_why_short_runs_get_no_verdict() -> None:
    a, b = side("aaaa00000001", 4.0, 3, 1), side("bbbb00000002", 4.0, 8, 2)
    app = SnowloadApp(offline=True)
    async with app.run_test(size=(160, 40)) as pilot:
        await app.push_screen(CompareScreen("aaaa00000001", "bbbb00000002", data=(a, b)))
        await pilot.pause()
        table = app.screen.query_one("#compare", DataTable)
        assert "verdict" not in {c.value for c in table.columns}
        title = str(app.screen.query_one("#compare-title", Static).render())
        assert "has 3 full second(s)" in title and "at least 5" in title
