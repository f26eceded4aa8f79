"""A controller killed mid-MEASUREMENT loses nothing it had sealed more than a few
seconds before, and the restarted controller shows the interrupted run in full.

A real daemon (``snowload controller``) with two real worker processes on a SQLite
target; SIGKILL of the daemon in MEASUREMENT; a restart on the same results database and
address. The workers re-attach, are told to stop, and send their recent intervals again.
The oracle is the statements SQLite executed, as its trace logged them
(SNOWLOAD_SQLITE_TRACE_DIR): every query the workers ran is in the run once.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest

from controller import lifecycle as lc
from snowload import hdr
from snowload.v1 import common_pb2, run_pb2, run_pb2_grpc
from tests.cluster import WorkerProcs, listed, read_traces, start_daemon, worker_env
from worker.report_log import REPORT_LOG_ENV, read_reports

WORKLOAD = """
name = "crash"
[target]
database = "crash.db"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v INTEGER)",
       "INSERT OR IGNORE INTO t VALUES (1, 0)"]
[load]
mode = "open"
rate = 200
max_lag = "15ms"
workers = 2
connections = 4
warmup = "1s"
duration = "60s"
[[query]]
name = "read"
weight = 17
sql = "SELECT v FROM t WHERE k = ?"
params = [{ int = [1, 1] }]
[[query]]
name = "write"
weight = 2
sql = "UPDATE t SET v = v + 1 WHERE k = ?"
params = [{ int = [1, 1] }]
[[query]]
name = "slow"
weight = 1
sql = '''WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000)
         SELECT count(*) FROM c'''
[slo]
p95_ms = 1000
error_rate = 0.01
"""
"""Open mode, so the run has lag, late and dropped figures (the slow kind, ~200 ms on a
quiet host, far over a connection's 40 ms between slots, makes the queries planned after
it on its connection start late or be dropped, however idle the host), and an
SLO, so it has verdicts."""

STORED_BEFORE_KILL_S = 5.0
"""The promise: the series survives up to at most this long before the kill."""


def daemon(tmp: Path, port: int = 0) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, SNOWLOAD_HOME=str(tmp / "home"))
    return start_daemon(["--listen", f"127.0.0.1:{port}", "--db", str(tmp / "results.db")], env)


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SNOWLOAD_DB=str(tmp / "results.db"), SNOWLOAD_HOME=str(tmp / "home"))
    return subprocess.run(
        [sys.executable, "-m", "snowload.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def last_stored_end_ns(db_path: Path, run_id: str) -> int:
    """The end of the newest stored second, read from the file the dead daemon left."""
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        rows = db.execute("SELECT point FROM series WHERE run_id = ?", (run_id,)).fetchall()
    ends = []
    for (blob,) in rows:
        point = common_pb2.SeriesPoint()
        point.ParseFromString(blob)
        ends.append(point.end_time.ToNanoseconds())
    return max(ends, default=0)


async def test_sigkill_mid_measurement_keeps_the_run_and_the_resent_intervals_count_once(
    tmp_path: Path, traces: Path
) -> None:
    """Fails if the seconds wait for the end of the run to be stored, if the restarted
    controller does not merge them into the run's numbers, if intervals the workers send
    again are dropped or counted twice, or if the run does not say it was interrupted."""
    proc, address = daemon(tmp_path)
    port = int(address.rsplit(":", 1)[1])
    reports = tmp_path / "reports"
    reports.mkdir()
    env = worker_env(tmp_path / "home", traces)
    env[REPORT_LOG_ENV] = str(reports)  # what the workers sent: the open-mode oracle
    procs = WorkerProcs(address, env)
    procs.spawn("w0")
    procs.spawn("w1")
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = run_pb2_grpc.RunServiceStub(channel)
            await listed(stub, 2)
            started = await stub.StartRun(
                run_pb2.StartRunRequest(workload_toml=WORKLOAD), timeout=10
            )
            run_id = started.run.run_id
            async for update in stub.WatchRun(run_pb2.WatchRunRequest(run_id=run_id), timeout=60):
                if update.run.state == lc.MEASUREMENT and update.progress.latest.second >= 5:
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_ns = time.time_ns()
        stored_end = last_stored_end_ns(tmp_path / "results.db", run_id)
        assert (killed_ns - stored_end) / 1e9 <= STORED_BEFORE_KILL_S

        proc, address = daemon(tmp_path, port)  # same database, same address
        async with grpc.aio.insecure_channel(address) as channel:
            stub = run_pb2_grpc.RunServiceStub(channel)
            got = (await stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)).run
            assert got.state == lc.FAILED and got.reason == "controller_restarted"
            # at once: the stored seconds merged into the run's numbers
            measured = {p.phase: p for p in got.summary.phases}
            assert measured[lc.MEASUREMENT].overall.count > 0
            # the workers re-attach, are told to stop, and send their intervals again
            deadline = time.monotonic() + 40
            while "sent again" not in got.message:
                assert time.monotonic() < deadline, got.message
                await asyncio.sleep(0.2)
                got = (await stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)).run
            points = (
                await stub.GetRunSeries(run_pb2.GetRunSeriesRequest(run_id=run_id), timeout=5)
            ).points
            histograms = await stub.GetRunHistograms(
                run_pb2.GetRunHistogramsRequest(run_id=run_id), timeout=5
            )
            workers = (await stub.ListWorkers(run_pb2.ListWorkersRequest(), timeout=5)).workers
            assert {w.worker_id for w in workers if not w.run_id} == {"w0", "w1"}  # stopped
    finally:
        procs.stop_all()
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)

    traced = Counter((s.phase, s.kind) for s in read_traces(traces, run_id))
    assert {k for _, k in traced} == {"read", "write", "slow"}
    assert traced[(lc.MEASUREMENT, "read")] > 0
    # every statement the workers ran is in the run exactly once: per phase and kind...
    summarized = Counter(
        {(p.phase, kind): s.count for p in got.summary.phases for kind, s in p.by_kind.items()}
    )
    assert summarized == traced
    # ... and second by second
    assert [p.second for p in points] == list(range(1, len(points) + 1))
    assert sum(p.overall.count for p in points) == sum(traced.values())
    # percentiles from the stored histograms, read by HdrHistogram itself
    for phase in got.summary.phases:
        encoded = next(
            h.histogram for h in histograms.phases if h.phase == phase.phase and h.kind == ""
        )
        whole = hdr.decode(encoded)
        assert whole.get_total_count() == phase.overall.count - phase.overall.errors
        assert phase.overall.p99_ms == whole.get_value_at_percentile(99.0) / 1000.0
        assert phase.overall.max_ms == whole.get_max_value() / 1000.0
    # the open-mode figures are those the workers reported, phase by phase: lag read by
    # HdrHistogram from the workers' own intervals, late and dropped summed from them
    sent = [r for r in read_reports(reports) if r.run_id == run_id]  # (each one logged once)
    for phase in got.summary.phases:
        lag = hdr.new_histogram()
        late = dropped = 0
        for report in sent:
            for sched in report.schedule:
                if sched.phase == phase.phase:
                    if sched.lag_histogram:
                        lag.add(hdr.decode(sched.lag_histogram))
                    late += sched.late
                    dropped += sched.dropped
        assert (phase.late, phase.dropped) == (late, dropped), lc.state_name(phase.phase)
        assert phase.lag.count == lag.get_total_count() > 0
        assert phase.lag.p99_ms == lag.get_value_at_percentile(99.0) / 1000.0
        assert phase.lag.max_ms == lag.get_max_value() / 1000.0
        # the phase's target rate is the mean over its full stored seconds; each second
        # targeted the shares (100/s each) of the workers that reported it: both before
        # the kill, one alone in a trailing second after it where the other had stopped
        full = [
            p for p in points if p.phase == phase.phase and p.duration.ToNanoseconds() > 500_000_000
        ]
        rates = [p.target_rate for p in full if p.target_rate]
        assert set(rates) <= {100.0, 200.0}
        assert all(p.target_rate == 200.0 for p in full if p.second <= 5)
        assert phase.target_rate == pytest.approx(sum(rates) / len(rates))
    measured = next(p for p in got.summary.phases if p.phase == lc.MEASUREMENT)
    assert measured.late > 0 and measured.dropped > 0  # (the figures are not all zero)
    # the SLO verdicts of the MEASUREMENT it covers, on the stored histogram's p95
    whole = hdr.decode(
        next(h.histogram for h in histograms.phases if h.phase == lc.MEASUREMENT and not h.kind)
    )
    verdicts = {v.metric: v for v in got.slo}
    assert set(verdicts) == {"p95_ms", "error_rate"}
    assert verdicts["p95_ms"].actual == whole.get_value_at_percentile(95.0) / 1000.0
    assert verdicts["p95_ms"].passed == (verdicts["p95_ms"].actual <= 1000)
    assert verdicts["error_rate"].actual == measured.overall.errors / measured.overall.count
    assert got.slo_passed == all(v.passed for v in got.slo)
    # marked as interrupted, with its phase events and workers
    assert any(w.startswith("interrupted: ") for w in got.warnings)
    assert [e.state for e in got.events][-1] == lc.FAILED
    assert lc.MEASUREMENT in [e.state for e in got.events]
    assert {w.worker_id for w in got.run_workers} == {"w0", "w1"}

    shown = cli(tmp_path, "runs", "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert "controller_restarted" in shown.stdout and "interrupted" in shown.stdout
    human = cli(tmp_path, "runs", "show", run_id)
    assert "warning: interrupted: " in human.stdout, human.stdout
    exported = cli(tmp_path, "runs", "export", run_id, "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(rows) == len(points)
    exported_json = json.loads(cli(tmp_path, "runs", "export", run_id).stdout)
    assert len(exported_json["series"]) == len(points)
