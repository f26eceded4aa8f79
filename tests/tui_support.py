"""Shared pieces of the TUI tests (this module holds no tests): a real in-process controller
with real worker processes on SQLite, a small workload, and condition waits with deadlines
that keep the Textual app running while they wait."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from textual.pilot import Pilot

from controller.server import Controller, ControllerSettings
from tests.cluster import WorkerProcs, attached
from tui import format as fmt
from tui.live_model import LiveModel

REPO = Path(__file__).resolve().parent.parent
SIZE = (140, 45)
SCREENSHOTS = REPO / "docs" / "screenshots"
UPDATE_SCREENSHOTS = os.environ.get("SNOWLOAD_UPDATE_SCREENSHOTS") == "1"
"""Set to 1 to rewrite docs/screenshots/*.svg from a real run (else they go to tmp_path)."""


def workload_toml(
    *,
    name: str = "tui-test",
    database: str = "tui.db",
    workers: int = 1,
    connections: int = 2,
    warmup: str = "1s",
    duration: str = "2s",
) -> str:
    """Setup creates and fills a table; two query kinds; an SLO that a healthy run meets."""
    return f"""\
name = "{name}"

[target]
driver = "sqlite"
database = "{database}"

[setup]
sql = [
  "DROP TABLE IF EXISTS items",
  "CREATE TABLE items (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)",
  '''INSERT INTO items (id, value)
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
     SELECT i, i * 7 FROM n''',
]

[load]
mode = "closed"
workers = {workers}
connections = {connections}
warmup = "{warmup}"
duration = "{duration}"
think_time = "1ms"

[[query]]
name = "lookup"
weight = 3
sql = "SELECT value FROM items WHERE id = ?"
params = [{{ int = [1, 500] }}]

[[query]]
name = "bump"
weight = 1
sql = "UPDATE items SET value = value + 1 WHERE id = ?"
params = [{{ int = [1, 500] }}]

[slo]
p95_ms = 250
error_rate = 0.05
"""


SMALL_TABLE = """\
[setup]
sql = [
  "DROP TABLE IF EXISTS items",
  "CREATE TABLE items (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)",
  "INSERT INTO items (id, value) VALUES (1, 7), (2, 14), (3, 21), (4, 28)",
]

[[query]]
name = "read"
sql = "SELECT value FROM items WHERE id = 2"

[slo]
p95_ms = 250
error_rate = 0.05
"""


def find_max_toml(*, name: str = "tui-find-max", database: str = "find_max.db") -> str:
    """A find_max search by connections, 1 to 3, on a trivial SELECT.

    Steps last 2 s: the controller measures a step on the seconds that end after its first
    second, so 1 s steps would measure nothing (each would be judged at 100 % errors)."""
    return f"""\
name = "{name}"

[target]
driver = "sqlite"
database = "{database}"

[load]
mode = "find_max"
workers = 1
think_time = "5ms"

[load.find_max]
start = 1
step = 1
max = 3
step_duration = "2s"

{SMALL_TABLE}"""


def open_toml(*, name: str = "tui-open", database: str = "open.db") -> str:
    """An open-model run: 200 queries/s on 4 connections, a trivial SELECT."""
    return f"""\
name = "{name}"

[target]
driver = "sqlite"
database = "{database}"

[load]
mode = "open"
rate = 200
workers = 1
connections = 4
warmup = "1s"
duration = "2s"

{SMALL_TABLE}"""


@dataclass
class Cluster:
    controller: Controller
    workers: WorkerProcs

    @property
    def address(self) -> str:
        return self.controller.address


@asynccontextmanager
async def cluster(home: Path, workers: int = 2) -> AsyncIterator[Cluster]:
    """An in-process controller on port 0 and ``workers`` real worker processes whose
    SQLite targets live under ``home`` (SNOWLOAD_HOME must already point there)."""
    assert os.environ.get("SNOWLOAD_HOME") == str(home)
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await ctl.start()
    procs = WorkerProcs(ctl.address, dict(os.environ))
    try:
        for i in range(workers):
            procs.spawn(f"tui-w{i}")
        await attached(ctl, workers, timeout_s=30)
        yield Cluster(ctl, procs)
    finally:
        procs.stop_all()
        await ctl.stop()


async def until(
    pilot: Pilot[object],
    predicate: Callable[[], bool],
    timeout_s: float,
    what: str,
    detail: Callable[[], str] | None = None,
) -> None:
    """Let the app run until ``predicate`` holds; fail naming ``what`` (and ``detail()``,
    what was seen instead) after the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            seen = f"; seen: {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}{seen}")
        await pilot.pause(0.05)


def model_state(model: LiveModel) -> str:
    """What a Live screen's model holds, for failure messages."""
    events = "; ".join(e.text for e in model.events)
    return (
        f"state {fmt.state_name(model.state)}, connection {model.connection.value} "
        f"{model.connection_detail}, {len(model.points)} points, events: {events}"
    )
