"""Ctrl-C on a real ``snowload run`` (a real SIGINT), locally and on a daemon, and a run
whose query kind fails from the start, as the person at the terminal sees them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snowload.exit_codes import ExitCode
from tests.cluster import start_daemon

# a query that keeps a connection busy for a good while: stopping has to wait for it
SLOW = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
    "SELECT count(*) FROM n"
)
WORKLOAD = f"""
name = "ctrl-c"
[target]
database = "ctrlc.db"
[load]
workers = 1
connections = 2
warmup = 0
duration = "60s"
[[query]]
name = "slow"
sql = "{SLOW}"
params = [{{ int = [{{low}}, {{high}}] }}]
"""

pytestmark = pytest.mark.slow  # real snowload processes, end to end


def snowload(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "snowload.cli", *args],
        env=env or dict(os.environ, SNOWLOAD_HOME=str(tmp / "home")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(proc: subprocess.Popen[str], marker: str, timeout_s: float = 60) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    seen = ""
    while marker not in seen:
        assert time.monotonic() < deadline, f"never saw {marker!r}: {seen}"
        line = proc.stderr.readline()
        assert line, f"snowload run ended before {marker!r}: {seen}"
        seen += line
    return seen


def workload(tmp: Path, low: int, high: int) -> Path:
    path = tmp / "w.toml"
    path.write_text(WORKLOAD.replace("{low}", str(low)).replace("{high}", str(high)))
    return path


def test_ctrl_c_stops_the_run_cleanly_with_no_traceback(tmp_path: Path) -> None:
    proc = snowload(tmp_path, "run", str(workload(tmp_path, 1, 10)), "--json")
    seen = read_until(proc, "MEASUREMENT")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    err = seen + err
    assert proc.returncode == ExitCode.RUN_FAILED, err
    assert "Traceback" not in err and "TypeError" not in err, err
    assert "stopping the run" in err
    summary = json.loads(out)
    assert (summary["state"], summary["reason"]) == ("CANCELLED", "user_requested")


def test_a_second_ctrl_c_stops_waiting(tmp_path: Path) -> None:
    # each query takes a while, so winding down waits for the ones in flight
    proc = snowload(tmp_path, "run", str(workload(tmp_path, 3_000_000, 4_000_000)), "--json")
    seen = read_until(proc, "MEASUREMENT")
    proc.send_signal(signal.SIGINT)
    seen += read_until(proc, "stopping the run")
    proc.send_signal(signal.SIGINT)
    began = time.monotonic()
    out, err = proc.communicate(timeout=60)
    err = seen + err
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "not waiting" in err
    assert "Traceback" not in err, err
    assert out == ""  # no summary: it did not wait for one
    assert time.monotonic() - began < 15
    # the run is on record, closed, not left "running"
    listed = subprocess.run(
        [sys.executable, "-m", "snowload.cli", "runs", "list", "--json"],
        env=dict(os.environ, SNOWLOAD_HOME=str(tmp_path / "home")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert [r["state"] for r in json.loads(listed.stdout)] == ["CANCELLED"]


def test_ctrl_c_on_a_daemons_run_stops_it_there(tmp_path: Path) -> None:
    env = dict(os.environ, SNOWLOAD_HOME=str(tmp_path / "daemon"))
    daemon, address = start_daemon(["--listen", "127.0.0.1:0", "--local-workers", "1"], env)
    try:
        path = workload(tmp_path, 1, 10)
        proc = snowload(tmp_path, "run", str(path), "--json", "--controller", address)
        seen = read_until(proc, "MEASUREMENT")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        err = seen + err
        assert proc.returncode == ExitCode.RUN_FAILED, err
        assert "Traceback" not in err and "TypeError" not in err, err
        assert json.loads(out)["state"] == "CANCELLED"
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)


TYPO = """
name = "typo"
[target]
database = "typo.db"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY)",
       "INSERT OR IGNORE INTO orders VALUES (1), (2)"]
[load]
workers = 1
connections = 2
warmup = 0
duration = "60s"
think_time = "1ms"
[[query]]
name = "lookup"
sql = "SELECT id FROM ordrs WHERE id = ?"
params = [{ int = [1, 2] }]
[[query]]
name = "count"
sql = "SELECT count(*) FROM orders"
"""


def test_a_query_failing_from_the_start_is_shown_at_once_and_ends_the_run(
    tmp_path: Path,
) -> None:
    path = tmp_path / "typo.toml"
    path.write_text(TYPO)
    began = time.monotonic()
    proc = snowload(tmp_path, "run", str(path), "--json")
    out, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - began
    assert proc.returncode == ExitCode.RUN_FAILED, err
    assert elapsed < 30, f"a 60 s run with a broken query went on for {elapsed:.0f}s"
    # the progress output names the kind and the database's message as it happens...
    lines = err.splitlines()
    shown = next(i for i, line in enumerate(lines) if "error in query 'lookup'" in line)
    assert "[syntax]" in lines[shown] and "no such table: ordrs" in lines[shown]
    failed_at = next(i for i, line in enumerate(lines) if line.endswith(" FAILED"))
    assert shown < failed_at  # before the run had ended
    # ...and the summary says why the run ended, on the terminal and in JSON
    summary = json.loads(out)
    assert (summary["state"], summary["reason"]) == ("FAILED", "query_failed")
    assert "'lookup'" in summary["message"] and "no such table: ordrs" in summary["message"]
    assert summary["first_errors"] == [
        {"kind": "lookup", "category": "syntax", "message": summary["first_errors"][0]["message"]}
    ]
    assert "no such table: ordrs" in summary["first_errors"][0]["message"]
    assert "first error of 'lookup' [syntax]" in err
    # runs show: the samples name their kind
    shown_run = subprocess.run(
        [sys.executable, "-m", "snowload.cli", "runs", "show", summary["run_id"], "--json"],
        env=dict(os.environ, SNOWLOAD_HOME=str(tmp_path / "home")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    samples = json.loads(shown_run.stdout)["error_samples"]
    assert samples and {s["kind"] for s in samples} == {"lookup"}


def test_on_query_failure_continue_keeps_the_old_behaviour(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text(
        TYPO.replace('duration = "60s"', 'duration = "2s"\non_query_failure = "continue"')
    )
    proc = snowload(tmp_path, "run", str(path), "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.OK, err  # no [slo]: errors alone do not fail it
    summary = json.loads(out)
    assert summary["state"] == "COMPLETED"
    meas = summary["phases"]["MEASUREMENT"]["by_kind"]
    assert meas["lookup"]["errors"] == meas["lookup"]["count"] > 0
    assert summary["first_errors"][0]["kind"] == "lookup"
    assert "first error of 'lookup'" in err  # the table's notes say it too
