"""History on disk: controller crash and restart, runs list/show/compare/export, SLO exit 4."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from hdrh.log import HistogramLogReader

from snowload import hdr
from snowload.v1 import run_pb2, run_pb2_grpc
from tests.cluster import start_daemon

WORKLOAD = """
name = "{name}"
[target]
database = "hist.db"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY)",
       "INSERT OR IGNORE INTO t VALUES (1), (2)"]
[load]
workers = 1
connections = 2
warmup = "1s"
duration = "{duration}"
think_time = "1ms"
[[query]]
name = "one"
sql = "SELECT k FROM t WHERE k = ?"
params = [{{ int = [1, 2] }}]
[[query]]
name = "total"
sql = "SELECT count(*) FROM t"
{slo}
"""


def env_for(tmp: Path) -> dict[str, str]:
    return dict(os.environ, SNOWLOAD_HOME=str(tmp / "home"), SNOWLOAD_DB=str(tmp / "results.db"))


def cli(tmp: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snowload.cli", *args],
        env=env_for(tmp),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write(tmp: Path, name: str, duration: str = "2s", slo: str = "") -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(WORKLOAD.format(name=name, duration=duration, slo=slo))
    return path


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """Two finished runs in one results database."""
    tmp = tmp_path_factory.mktemp("history")
    ids = []
    for name in ("first", "second"):
        done = cli(tmp, "run", str(write(tmp, name)), "--json")
        assert done.returncode == 0, done.stderr
        ids.append(json.loads(done.stdout)["run_id"])
    return tmp, ids[0], ids[1]


def test_list_and_show(history: tuple[Path, str, str]) -> None:
    tmp, first, second = history
    listed = cli(tmp, "runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["run_id"] for r in rows] == [second, first]
    assert rows[0]["state"] == "COMPLETED" and rows[0]["measurement"]["count"] > 0
    shown = cli(tmp, "runs", "show", first[:6], "--json")
    assert shown.returncode == 0, shown.stderr
    run = json.loads(shown.stdout)
    assert run["run_id"] == first
    assert [e["state"] for e in run["events"]] == [
        "PENDING",
        "PREPARING",
        "WARMUP",
        "MEASUREMENT",
        "PROCESSING",
        "COMPLETED",
    ]
    assert run["workers_detail"][0]["connections"] == 2
    # the tail from the stored histograms agrees with the summary's figures
    tail = cli(tmp, "runs", "show", first, "--json", "--percentiles")
    assert tail.returncode == 0, tail.stderr
    spectrum = json.loads(tail.stdout)["percentiles"]
    meas = run["phases"]["MEASUREMENT"]
    for kind, row in spectrum["MEASUREMENT"].items():
        stats = meas if kind == "all" else meas["by_kind"][kind]
        assert row["count"] == stats["count"] - stats["errors"]
        assert row["p50"] == stats["p50_ms"] and row["p99"] == stats["p99_ms"]
        assert row["max"] == stats["max_ms"]
        values = [row[k] for k in ("p50", "p90", "p95", "p99", "p99.9", "p99.99", "max")]
        assert values == sorted(values)
    assert set(spectrum["MEASUREMENT"]) == {"all", *meas["by_kind"]}
    printed = cli(tmp, "runs", "show", first, "--percentiles")
    assert printed.returncode == 0 and "p99.99" in printed.stdout
    table = cli(tmp, "runs", "list")
    assert first in table.stdout and "COMPLETED" in table.stdout
    missing = cli(tmp, "runs", "show", "does-not-exist")
    assert missing.returncode == 2 and "no run" in missing.stderr


def test_compare_reports_deltas_per_kind(history: tuple[Path, str, str]) -> None:
    tmp, first, second = history
    done = cli(tmp, "runs", "compare", first, second, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result["by_kind"]) == {"all", "one", "total"}
    row = result["by_kind"]["one"]["qps"]
    assert row["delta"] == pytest.approx(row["b"] - row["a"])
    assert row["relative"] == pytest.approx((row["b"] - row["a"]) / row["a"])
    assert "p95_ms" in result["by_kind"]["one"]
    text = cli(tmp, "runs", "compare", first, second)
    assert "B - A" in text.stdout


def test_export_hlog_csv_json(history: tuple[Path, str, str]) -> None:
    tmp, first, _ = history
    shown = json.loads(cli(tmp, "runs", "show", first, "--json").stdout)
    total = sum(p["count"] - p["errors"] for p in shown["phases"].values())

    hlog = tmp / "run.hlog"
    assert cli(tmp, "runs", "export", first, "--format", "hlog", "-o", str(hlog)).returncode == 0
    reader = HistogramLogReader(str(hlog), hdr.new_histogram())
    counted = intervals = 0
    while (h := reader.get_next_interval_histogram()) is not None:
        counted += h.get_total_count()
        intervals += 1
    assert counted == total > 0
    assert intervals >= 3

    out = cli(tmp, "runs", "export", first, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    series = json.loads(cli(tmp, "runs", "export", first, "--format", "json").stdout)["series"]
    assert len(rows) == len(series) >= 3
    assert out.stdout.splitlines()[0].startswith("second,phase,end_time")
    assert [int(r["second"]) for r in rows] == list(range(1, len(rows) + 1))
    assert sum(int(r["count"]) for r in rows) == total


def test_impossible_slo_exits_4_with_failed_verdict(tmp_path: Path) -> None:
    slo = "[slo]\np95_ms = 0.0001\nerror_rate = 0.5\n[slo.query.one]\np99_ms = 10000"
    done = cli(tmp_path, "run", str(write(tmp_path, "slo", duration="1s", slo=slo)), "--json")
    assert done.returncode == 4, done.stderr
    summary = json.loads(done.stdout)
    assert summary["state"] == "COMPLETED"
    assert summary["slo"]["passed"] is False
    verdicts = {(v["kind"], v["metric"]): v for v in summary["slo"]["verdicts"]}
    assert verdicts[(None, "p95_ms")]["passed"] is False
    assert verdicts[(None, "error_rate")]["passed"] is True
    assert verdicts[("one", "p99_ms")]["passed"] is True
    assert "SLO FAILED" in done.stderr


def _start_daemon(tmp: Path) -> tuple[subprocess.Popen[str], str]:
    return start_daemon(["--listen", "127.0.0.1:0", "--local-workers", "1"], env_for(tmp))


async def test_history_survives_a_controller_killed_mid_run(tmp_path: Path) -> None:
    proc, address = _start_daemon(tmp_path)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = run_pb2_grpc.RunServiceStub(channel)
            text = WORKLOAD.format(name="kept", duration="1s", slo="")
            done = await stub.StartRun(run_pb2.StartRunRequest(workload_toml=text), timeout=10)
            kept = done.run.run_id
            async for _ in stub.WatchRun(run_pb2.WatchRunRequest(run_id=kept), timeout=60):
                pass
            text = WORKLOAD.format(name="killed", duration="60s", slo="")
            started = await stub.StartRun(run_pb2.StartRunRequest(workload_toml=text), timeout=10)
            killed = started.run.run_id
            async for update in stub.WatchRun(run_pb2.WatchRunRequest(run_id=killed), timeout=60):
                if update.run.state == 4:  # MEASUREMENT
                    break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    proc, address = _start_daemon(tmp_path)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = run_pb2_grpc.RunServiceStub(channel)
            got = await stub.GetRun(run_pb2.GetRunRequest(run_id=killed), timeout=5)
            assert got.run.state == 7  # FAILED
            assert got.run.reason == "controller_restarted"
            intact = await stub.GetRun(run_pb2.GetRunRequest(run_id=kept), timeout=5)
            assert intact.run.state == 6  # COMPLETED
            assert intact.run.summary.phases[-1].overall.count > 0
            listed = await stub.ListRuns(run_pb2.ListRunsRequest(), timeout=5)
            assert [r.run_id for r in listed.runs] == [killed, kept]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_compare_adds_open_model_and_find_max_rows() -> None:
    from controller.runs_cli import compare

    def run(rate: float, lag: float, best: float) -> run_pb2.Run:
        r = run_pb2.Run()
        phase = r.summary.phases.add(phase=4)
        phase.overall.count = 100
        phase.overall.qps = rate
        phase.target_rate = 1000
        phase.achieved_rate = rate
        phase.lag.p99_ms = lag
        r.find_max.concluded = True
        r.find_max.best_level = best
        r.find_max.best.qps = best * 10
        return r

    result = compare(run(990, 2.0, 32), run(1000, 1.0, 48))
    mode = result["mode"]
    assert mode["achieved_rate"]["delta"] == 10
    assert mode["lag_p99_ms"]["relative"] == -0.5
    assert mode["find_max_best_level"] == {"a": 32.0, "b": 48.0, "delta": 16.0, "relative": 0.5}
    closed = compare(run_pb2.Run(), run_pb2.Run())
    assert "mode" not in closed
