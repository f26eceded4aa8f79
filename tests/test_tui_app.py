"""App-level conventions: command palette entries, built-in themes, coalesced updates,
credentials; and the watcher's reconnect backoff."""

from __future__ import annotations

import asyncio
import socket

import pytest
from textual.widgets import Static

from controller.server import Controller, ControllerSettings
from snowload.v1 import common_pb2, run_pb2
from tests.test_tui_snapshots import live_model, series
from tests.tui_support import SIZE, until
from tui import format as fmt
from tui.app import SnowloadApp
from tui.client import ConnectionSettings, RunClient
from tui.live_model import Connection, LiveModel
from tui.screens.launch import LaunchScreen
from tui.screens.live import LiveScreen
from tui.screens.runs import RunsScreen
from tui.watcher import follow_run
from tui.widgets.plots import (
    MEASUREMENT_COLOR,
    WARMUP_COLOR,
    latency_lines,
    measurement_start,
    qps_lines,
)


async def test_the_command_palette_offers_the_main_actions() -> None:
    app = SnowloadApp(offline=True)
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Launch a run", "Runs", "Compare two runs", "Stop the run", "Theme"):
            assert title in titles
        await pilot.press("ctrl+p")
        await pilot.press(*"Launch a run")
        await pilot.pause(0.5)  # the palette searches in the background
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, LaunchScreen), 5, "Launch")


async def test_every_builtin_theme_renders_the_live_screen() -> None:
    model = live_model(final=True)
    app = SnowloadApp(offline=True)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(LiveScreen(model.run_id, model=model))
        themes = sorted(app.available_themes)
        assert {"textual-dark", "textual-light", "nord"} <= set(themes)
        for name in themes:
            app.theme = name
            await pilot.pause()
            app.screen.refresh(layout=True)
        await pilot.pause()
        assert app.theme == themes[-1]
    # an exception while rendering would have been raised by run_test


class CountingLive(LiveScreen):
    renders = 0

    def on_live_screen_changed(self, _message: LiveScreen.Changed) -> None:
        CountingLive.renders += 1


async def test_a_burst_of_updates_renders_once() -> None:
    model = live_model(final=False)
    app = SnowloadApp(offline=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = CountingLive(model.run_id, model=model)
        await app.push_screen(screen)
        await pilot.pause()
        CountingLive.renders = 0
        for _ in range(1000):  # as a burst from the stream would
            screen.post_message(LiveScreen.Changed())
        await until(pilot, lambda: CountingLive.renders > 0, 5, "a render")
        await pilot.pause(0.2)
        assert 1 <= CountingLive.renders <= 3, CountingLive.renders


def closed_port_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def test_reconnect_backoff_doubles_from_0_2_to_5_seconds() -> None:
    client = RunClient(ConnectionSettings(closed_port_address(), rpc_timeout_s=2))
    model = LiveModel("0123456789ab")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 8:
            raise asyncio.CancelledError
        await asyncio.sleep(0)

    with pytest.raises(asyncio.CancelledError):
        await follow_run(client, model, lambda: None, sleep=sleep)
    await client.close()
    assert waits == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert model.connection is Connection.RECONNECTING
    assert "cannot reach the controller at" in model.connection_detail
    assert [e.text for e in model.events if e.text.startswith("stream lost")]  # logged once


async def test_a_refused_token_is_said_plainly_and_the_right_one_works() -> None:
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0", token="s3cret"))
    await ctl.start()
    try:
        wrong = SnowloadApp(ctl.address, settings=ConnectionSettings("", token="nope"))
        async with wrong.run_test(size=SIZE) as pilot:
            runs = wrong.screen
            assert isinstance(runs, RunsScreen)
            status = runs.query_one("#runs-status", Static)
            await until(pilot, lambda: "refused" in str(status.content), 10, "the refusal")
            assert f"the controller at {ctl.address} refused the call" in str(status.content)
            assert "token" in str(status.content)
            # a Live screen gives up at once: retrying cannot help
            wrong.open_live("0123456789ab")
            await until(pilot, lambda: isinstance(wrong.screen, LiveScreen), 5, "Live")
            live = wrong.screen
            assert isinstance(live, LiveScreen)
            await until(pilot, lambda: live.model.connection is Connection.GAVE_UP, 10, "gave up")
        right = SnowloadApp(ctl.address, settings=ConnectionSettings("", token="s3cret"))
        async with right.run_test(size=SIZE) as pilot:
            runs = right.screen
            assert isinstance(runs, RunsScreen)
            status = runs.query_one("#runs-status", Static)
            await until(pilot, lambda: "0 runs" in str(status.content), 10, "the runs list")
    finally:
        await ctl.stop()


def test_the_warmup_is_a_series_of_its_own_with_a_marker() -> None:
    points = series()[:9]  # 5 s of warmup, then the measurement
    lines = qps_lines(points)
    assert [(line.label, line.color) for line in lines] == [
        ("warmup", WARMUP_COLOR),
        ("measurement", MEASUREMENT_COLOR),
    ]
    assert lines[0].xs == [1, 2, 3, 4, 5, 6]  # joined to the first measured second
    assert lines[1].xs == [6, 7, 8, 9]
    assert measurement_start(points) == 5.5
    assert measurement_start(series(warmup=0)[:5]) is None
    assert [line.label for line in latency_lines(points)] == ["p50", "p95", "p99"]


def test_formatting_compare_deltas_and_redaction() -> None:
    a = run_pb2.Run(run_id="a")
    b = run_pb2.Run(run_id="b")
    for r, qps, p95, errors in ((a, 1000.0, 2.0, 0), (b, 1500.0, 1.0, 10)):
        ps = r.summary.phases.add(phase=fmt.MEASUREMENT)
        ps.overall.CopyFrom(common_pb2.LatencyStats(count=1000, errors=errors, qps=qps, p95_ms=p95))
        ps.by_kind["q"].CopyFrom(ps.overall)
    result = fmt.compare_runs(a, b)
    assert list(result) == ["all", "q"]
    qps = result["all"]["qps"]
    assert (qps.a, qps.b, qps.delta, qps.relative) == (1000.0, 1500.0, 500.0, 0.5)
    assert fmt.is_improvement("qps", qps.delta) is True
    p95 = result["q"]["p95_ms"]
    assert p95.relative == -0.5 and fmt.is_improvement("p95_ms", p95.delta) is True
    assert fmt.is_improvement("error_rate", result["all"]["error_rate"].delta) is False
    assert fmt.fmt_relative(p95.relative) == "-50.0%"
    assert fmt.redact_dsn("host=db password=s3cret user=u") == "host=db password=*** user=u"
    assert fmt.redact_dsn("postgresql://u:s3cret@db/x") == "postgresql://u:***@db/x"
    assert fmt.fmt_seconds(125) == "2m05s" and fmt.fmt_ms(0.0123) == "0.012"
