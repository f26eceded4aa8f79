"""A connection parked by SetLoad sleeps until the load control changes: it is woken by
the change (not by polling), issues nothing while parked, and resumes well before its
longest wait (PARK_MAX_S) when the level rises. Real SQLite, real connection threads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from snowload.v1 import common_pb2
from snowload.workload import parse_toml
from worker.connection import PARK_MAX_S
from worker.drivers import get_driver
from worker.executor import Executor, LoadControl, RunPlan
from worker.generators import Sequences

WORKLOAD = """
name = "parked"
[target]
driver = "sqlite"
database = "{db}"
[load]
mode = "{mode}"
{level}
workers = 1
connections = 2
[[query]]
name = "one"
sql = "SELECT 1"
"""


def test_wait_change_returns_on_a_change_and_times_out_without_one() -> None:
    control = LoadControl()
    seen = control.epoch
    began = time.monotonic()
    assert control.wait_change(seen, 0.05) is False
    assert time.monotonic() - began >= 0.05
    threading.Timer(0.05, lambda: setattr(control, "target_connections", 3)).start()
    began = time.monotonic()
    assert control.wait_change(seen, 10.0) is True
    assert time.monotonic() - began < 5.0  # woken by the change, not by the timeout
    assert control.target_connections == 3
    # an epoch already behind returns at once
    assert control.wait_change(seen, 10.0) is True


@pytest.mark.parametrize(
    ("mode", "level", "rate"),
    [("closed", 'think_time = "5ms"', 0.0), ("open", "rate = 200", 200.0)],
)
def test_a_parked_connection_issues_nothing_and_resumes_when_woken(
    tmp_path: Path, mode: str, level: str, rate: float
) -> None:
    wl = parse_toml(
        WORKLOAD.format(db=tmp_path / "p.db", mode=mode, level=level), source="parked.toml"
    )
    plan = RunPlan("r", wl, 0, 2, Sequences(0, 1), rate=rate, active_connections=1)
    executor = Executor(plan, get_driver(wl.target.driver), phase=common_pb2.STATE_MEASUREMENT)
    executor.open_connections()
    try:
        executor.start()
        first, second = executor.threads
        deadline = time.monotonic() + 10
        while len(first.samples) < 5:
            assert time.monotonic() < deadline, "the active connection issued nothing"
            time.sleep(0.01)
        time.sleep(0.2)
        assert second.samples == [] and not second.active
        raised = time.monotonic()
        executor.set_connections(2)
        while not second.samples:
            # woken by the change: well before the parked thread would look again itself
            assert time.monotonic() - raised < PARK_MAX_S / 2, "the parked one did not resume"
            time.sleep(0.005)
    finally:
        executor.stop(2.0)
