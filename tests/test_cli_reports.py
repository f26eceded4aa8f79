"""What the terminal summary and ``runs show`` tell a person: why server-side enrichment
was skipped or failed, server timings under their own headers, a failed run's reason
instead of an empty table; and ``--log-level`` reaching the local workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from controller.store_sqlite import SqliteRunStore
from snowload.exit_codes import ExitCode
from snowload.v1 import common_pb2, run_pb2

WORKLOAD = """
name = "reports"
[target]
database = "reports.db"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY)", "INSERT OR IGNORE INTO t VALUES (1)"]
[load]
workers = 1
connections = 1
warmup = 0
duration = 1
think_time = "5ms"
[[query]]
name = "one"
sql = "SELECT k FROM t WHERE k = ?"
params = [{ int = [1, 1] }]
"""


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snowload.cli", *args],
        env=dict(os.environ, SNOWLOAD_HOME=str(tmp / "home"), SNOWLOAD_DB=str(tmp / "r.db")),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_sqlite_run_says_enrichment_was_skipped_and_debug_reaches_its_workers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.toml"
    path.write_text(WORKLOAD)
    out = cli(tmp_path, "run", str(path), "--json", "--log-level", "DEBUG")
    assert out.returncode == ExitCode.OK, out.stderr
    note = "server-side timings: SKIPPED — sqlite keeps no server-side history"
    assert note in out.stderr
    assert " worker DEBUG " in out.stderr  # the local worker's own DEBUG lines
    shown = cli(tmp_path, "runs", "show", json.loads(out.stdout)["run_id"])
    assert note in " ".join(shown.stdout.split())


def _stored(tmp: Path, run_id: str, status: int, message: str) -> run_pb2.Run:
    run = run_pb2.Run(
        run_id=run_id,
        name="pg",
        state=common_pb2.STATE_COMPLETED,
        reason="duration_elapsed",
        target="postgres",
        enrichment=status,  # type: ignore[arg-type]
    )
    run.create_time.FromSeconds(1_700_000_000)
    ps = run.summary.phases.add(phase=common_pb2.STATE_MEASUREMENT)
    ps.overall.count = 10
    ps.overall.p50_ms = 1.25
    run.server.status = status  # type: ignore[assignment]
    run.server.message = message
    return run


def test_runs_show_says_why_enrichment_failed_or_was_skipped(tmp_path: Path) -> None:
    store = SqliteRunStore(tmp_path / "r.db")
    why_skipped = 'pg_stat_statements is not available: extension "pg_stat_statements" ...'
    store.put(_stored(tmp_path, "skipped", common_pb2.ENRICHMENT_STATUS_SKIPPED, why_skipped))
    why_failed = "no enrichment result before the time limit"
    store.put(_stored(tmp_path, "failed", common_pb2.ENRICHMENT_STATUS_FAILED, why_failed))
    store.close()
    skipped = " ".join(cli(tmp_path, "runs", "show", "skipped").stdout.split())
    assert f"server-side timings: SKIPPED — {why_skipped}" in skipped
    failed = " ".join(cli(tmp_path, "runs", "show", "failed").stdout.split())
    assert f"server-side timings: FAILED — {why_failed}" in failed


def test_server_timings_have_their_own_headers(tmp_path: Path) -> None:
    run = _stored(tmp_path, "pgmeans", common_pb2.ENRICHMENT_STATUS_COMPLETED, "from pgss")
    run.server.timings.add(
        kind="one", phase=common_pb2.STATE_MEASUREMENT, calls=10, mean_ms=0.625, stddev_ms=0.125
    )
    store = SqliteRunStore(tmp_path / "r.db")
    store.put(run)
    store.close()
    lines = cli(tmp_path, "runs", "show", "pgmeans").stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if "stddev" in line)
    columns = [c.strip() for c in lines[header].strip("┃│ ").split("┃")]
    row = next(line for line in lines[header:] if "0.625" in line)
    cells = [c.strip() for c in row.strip("┃│ ").split("│")]
    assert dict(zip(columns, cells, strict=True)) == {
        "query": "one",
        "phase": "MEASUREMENT",
        "calls": "10",
        "mean": "0.625",
        "stddev": "0.125",
        "p50": "-",
        "p95": "-",
        "p99": "-",
        "max": "-",
    }


def test_a_failed_run_prints_its_reason_not_an_empty_table(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(WORKLOAD.replace("CREATE TABLE IF", "CREATE TABEL IF"))
    out = cli(tmp_path, "run", str(path))
    assert out.returncode == ExitCode.RUN_FAILED
    assert "FAILED (setup_failed)" in out.stderr
    assert "syntax error" in out.stderr
    assert "nothing was measured (it reached: PENDING -> PREPARING -> FAILED)" in out.stderr
    assert "p50 ms" not in out.stderr  # no table of nothing
