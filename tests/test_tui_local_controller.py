"""``snowload tui`` without --controller: a controller process of its own, with local
workers, on a free loopback port; its address read from stderr; stopped on exit."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from tests.tui_support import SIZE, until
from tui.app import SnowloadApp
from tui.local_controller import LocalController, LocalControllerError
from tui.screens.runs import RunsScreen

pytestmark = pytest.mark.slow


async def test_the_app_starts_and_stops_its_own_controller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNOWLOAD_HOME", str(tmp_path))
    local = LocalController(1, db=str(tmp_path / "results.db"))
    app = SnowloadApp(local=local)
    try:
        async with app.run_test(size=SIZE) as pilot:
            runs = app.screen
            assert isinstance(runs, RunsScreen)
            await until(pilot, lambda: app.client is not None, 30, "the local controller")
            assert local.address is not None and local.address.startswith("127.0.0.1:")
            assert app.address == local.address
            status = runs.query_one("#runs-status", Static)
            await until(
                pilot,
                lambda: "1 worker(s) attached" in str(status.content),
                30,
                "its local worker",
            )
            assert local.running
    finally:
        code = local.stop()
    assert code == 0  # SIGTERM: a clean shutdown
    assert not local.running


def test_a_controller_that_cannot_start_says_why(tmp_path: Path) -> None:
    # a directory is no results database: the controller exits before it listens
    local = LocalController(0, db=str(tmp_path), startup_timeout_s=30)
    with pytest.raises(LocalControllerError) as err:
        local.start()
    text = str(err.value)
    assert "exited with code 2 before listening" in text
    assert "results database" in text
    assert not local.running
