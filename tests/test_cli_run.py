"""``snowload run`` as a person or a CI job uses it: a real subprocess, real workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hdrh.log import HistogramLogReader

from snowload import hdr
from tests.cluster import start_daemon

WORKLOAD = """
name = "cli"
[target]
database = "cli.db"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v INTEGER)",
       "INSERT OR IGNORE INTO t VALUES (1, 1), (2, 2), (3, 3)"]
[load]
workers = 2
connections = 4
warmup = "1s"
duration = "2s"
think_time = "1ms"
[[query]]
name = "read"
sql = "SELECT v FROM t WHERE k = ?"
params = [{ int = [1, 3] }]
[[query]]
name = "count"
weight = 0.5
sql = "SELECT count(*) FROM t"
"""


def snowload(*args: str, home: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, SNOWLOAD_HOME=str(home))
    return subprocess.Popen(
        [sys.executable, "-m", "snowload.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_run_prints_json_summary_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(WORKLOAD)
    proc = snowload("run", str(path), "--json", home=tmp_path / "home")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["state"] == "COMPLETED"
    assert summary["reason"] == "duration_elapsed"
    assert len(summary["run_id"]) == 12
    assert set(summary["phases"]) == {"WARMUP", "MEASUREMENT"}
    for phase in summary["phases"].values():
        for key in ("count", "errors", "qps", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
            assert key in phase
        assert set(phase["by_kind"]) == {"read", "count"}
        assert phase["count"] == sum(k["count"] for k in phase["by_kind"].values())
        assert phase["count"] > 0 and phase["errors"] == 0
        assert phase["p50_ms"] <= phase["p95_ms"] <= phase["p99_ms"] <= phase["max_ms"]
    meas = summary["phases"]["MEASUREMENT"]
    assert abs(meas["duration_s"] - 2.0) < 0.5
    assert abs(meas["qps"] - meas["count"] / meas["duration_s"]) <= 0.001 * meas["qps"]
    # progress lines and the summary table go to stderr
    assert "MEASUREMENT" in err and "COMPLETED" in err


def test_interrupt_cancels_cleanly_and_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(WORKLOAD)
    proc = snowload("run", str(path), "--json", "--duration", "60s", home=tmp_path / "home")
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    seen = ""
    while "MEASUREMENT" not in seen:
        assert time.monotonic() < deadline, f"never reached MEASUREMENT: {seen}"
        line = proc.stderr.readline()
        assert line, f"snowload run ended early: {seen}"
        seen += line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    summary = json.loads(out)
    assert summary["state"] == "CANCELLED"
    assert summary["reason"] == "user_requested"
    # what was measured before the interrupt is still reported
    assert summary["phases"]["MEASUREMENT"]["count"] > 0
    assert summary["phases"]["MEASUREMENT"]["duration_s"] < 60


def test_failed_run_exits_3_with_reason(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(WORKLOAD.replace('"CREATE TABLE IF NOT EXISTS', '"CREATE TABEL IF NOT EXISTS'))
    proc = snowload("run", str(path), "--json", home=tmp_path / "home")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    summary = json.loads(out)
    assert summary["state"] == "FAILED"
    assert summary["reason"] == "setup_failed"
    assert "syntax" in summary["message"]


def _token_daemon(tmp: Path, token: str) -> tuple[subprocess.Popen[str], str]:
    """`snowload controller` with a token, its own data directory and results database."""
    env = dict(os.environ, SNOWLOAD_HOME=str(tmp / "daemon"), SNOWLOAD_TOKEN=token)
    return start_daemon(["--listen", "127.0.0.1:0"], env)


def test_run_on_a_controller_daemon_with_its_workers(tmp_path: Path) -> None:
    """`snowload run --controller`: the daemon's workers run it, the daemon stores it, the
    command follows it and exits like a local run; without the token it is refused."""
    token = "s3cret-" + os.urandom(8).hex()
    daemon, address = _token_daemon(tmp_path, token)
    worker_env = dict(os.environ, SNOWLOAD_HOME=str(tmp_path / "workers"), SNOWLOAD_TOKEN=token)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "snowload.cli", "worker", "--controller", address],
            env=worker_env,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    client_home = tmp_path / "client"
    path = tmp_path / "w.toml"
    path.write_text(WORKLOAD)
    try:
        # no token: refused, nothing ran, the daemon keeps going
        bare = {k: v for k, v in os.environ.items() if k != "SNOWLOAD_TOKEN"}
        refused = subprocess.run(
            [sys.executable, "-m", "snowload.cli", "run", str(path), "--controller", address],
            env=dict(bare, SNOWLOAD_HOME=str(client_home)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        err = refused.stderr
        assert refused.returncode == 3, err
        assert "UNAUTHENTICATED" in err
        assert daemon.poll() is None

        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "snowload.cli",
                "run",
                str(path),
                "--json",
                "--controller",
                address,
            ],
            env=dict(os.environ, SNOWLOAD_HOME=str(client_home), SNOWLOAD_TOKEN=token),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        summary = json.loads(out)
        assert summary["state"] == "COMPLETED"
        meas = summary["phases"]["MEASUREMENT"]
        assert meas["count"] > 0 and meas["errors"] == 0
        assert "MEASUREMENT" in err and summary["run_id"] in err
        # stored by the daemon (its own results database), not next to the client
        assert not (client_home / "results.db").exists()
        listed = subprocess.run(
            [sys.executable, "-m", "snowload.cli", "runs", "show", summary["run_id"], "--json"],
            env=dict(os.environ, SNOWLOAD_HOME=str(tmp_path / "daemon")),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        stored = json.loads(listed.stdout)
        assert stored["phases"]["MEASUREMENT"]["count"] == meas["count"]

        # ...and `snowload runs --controller` reads the same runs through the API
        def runs(*args: str, token_env: str | None = token) -> subprocess.CompletedProcess[str]:
            env = {k: v for k, v in os.environ.items() if k != "SNOWLOAD_TOKEN"}
            if token_env:
                env["SNOWLOAD_TOKEN"] = token_env
            return subprocess.run(
                [sys.executable, "-m", "snowload.cli", "runs", "--controller", address, *args],
                env=dict(env, SNOWLOAD_HOME=str(client_home)),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        run_id = summary["run_id"]
        got = runs("list", "--json")
        assert got.returncode == 0, got.stderr
        assert [r["run_id"] for r in json.loads(got.stdout)] == [run_id]
        got = runs("show", run_id[:6], "--json")  # a unique prefix, resolved remotely
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["phases"]["MEASUREMENT"]["count"] == meas["count"]
        got = runs("compare", run_id, run_id, "--json")
        assert got.returncode == 0, got.stderr
        deltas = json.loads(got.stdout)["by_kind"]["read"]
        assert all(d["delta"] in (0, None) for d in deltas.values()), deltas
        got = runs("export", run_id, "--format", "csv")
        assert got.returncode == 0, got.stderr
        lines = got.stdout.strip().splitlines()
        assert lines[0].startswith("second,") and len(lines) >= 3
        got = runs("export", run_id, "--format", "hlog")  # histograms through the API too
        assert got.returncode == 0, got.stderr
        hlog = tmp_path / "remote.hlog"
        hlog.write_text(got.stdout)
        reader = HistogramLogReader(str(hlog), hdr.new_histogram())
        total = 0
        while (h := reader.get_next_interval_histogram()) is not None:
            total += h.get_total_count()
        assert (
            total == stored["phases"]["MEASUREMENT"]["count"] + stored["phases"]["WARMUP"]["count"]
        )
        got = runs("enrich", run_id)  # writes: only where the database is
        assert got.returncode == 2 and "results database" in got.stderr
        got = runs("list", token_env=None)
        assert got.returncode == 3 and "UNAUTHENTICATED" in got.stderr
        assert not (client_home / "results.db").exists()
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        daemon.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(30)
        daemon.wait(30)
