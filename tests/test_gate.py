"""The CI gate of ``snowload run --baseline``: its rules on stored runs (a real SQLite
results store), what it refuses before anything runs, and the whole path against a
controller daemon on PostgreSQL: a baseline run, named with ``runs tag``, then the same
workload on a database that became slower exits 5 with the verdicts in the JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from controller import lifecycle as lc
from controller.gate import margin_arg, too_short_for_gate, workload_differences
from controller.run_baseline import BaselineError, judge, resolve
from controller.run_tags import tag_problem
from controller.server import Controller, ControllerSettings
from controller.store import IntervalHistogram, RunRecord
from controller.store_sqlite import SqliteRunStore
from snowload import hdr
from snowload.bootstrap import Metric
from snowload.exit_codes import ExitCode
from snowload.v1 import common_pb2, run_pb2
from snowload.workload import Workload, parse_toml
from tests.cluster import WorkerProcs, attached, run_to_end, worker_env, workload
from tests.pg import PgCluster

WORKLOAD = """
name = "gate"
[target]
driver = "postgres"
dsn = "{dsn}"
[load]
workers = 1
connections = 2
warmup = "0s"
duration = "{duration}"
enrich = false
[[query]]
name = "snooze"
sql = "SELECT snooze()"
"""


def stored_run(
    store: SqliteRunStore, run_id: str, workload: Workload, median_ms: float, seconds: int
) -> run_pb2.Run:
    """A finished run of ``seconds`` full MEASUREMENT seconds, 100 queries each."""
    rng = random.Random(run_id)
    run = run_pb2.Run(
        run_id=run_id,
        name=workload.name,
        state=lc.COMPLETED,
        workload_json=workload.to_json(),
    )
    run.create_time.FromSeconds(1_000 + len(run_id))
    record = RunRecord(run=run)
    for second in range(1, seconds + 1):
        hist = hdr.new_histogram()
        for _ in range(100):
            hist.record_value(int(median_ms * 1000 * (1 + rng.uniform(-0.1, 0.1))))
        point = common_pb2.SeriesPoint(second=second, phase=lc.MEASUREMENT)
        point.duration.FromSeconds(1)
        point.overall.count = 100
        point.by_kind["snooze"].count = 100
        record.series.append(point)
        enc = hdr.encode(hist)
        ns = second * 1_000_000_000
        record.intervals.append(IntervalHistogram(second, lc.MEASUREMENT, ns - 10**9, ns, enc))
        record.intervals.append(
            IntervalHistogram(second, lc.MEASUREMENT, ns - 10**9, ns, enc, "snooze")
        )
    store.save(record)
    return run


def test_margins_and_workload_differences() -> None:
    assert margin_arg("10%") == pytest.approx(0.10)
    assert margin_arg("0.25") == pytest.approx(0.25)
    for bad in ("ten", "-5%"):
        with pytest.raises(argparse.ArgumentTypeError):
            margin_arg(bad)
    base = parse_toml(WORKLOAD.format(dsn="host=a", duration="10s"), source="a.toml")
    longer = parse_toml(WORKLOAD.format(dsn="host=a", duration="60s"), source="b.toml")
    other = parse_toml(
        WORKLOAD.format(dsn="host=b", duration="10s").replace("snooze()", "snooze(), 1"),
        source="c.toml",
    )
    assert workload_differences(base.to_json(), longer.to_dict()) == []
    assert workload_differences(base.to_json(), other.to_dict()) == ["query[0].sql", "target.dsn"]


def test_gate_rules_on_stored_runs(tmp_path: Path) -> None:
    workload = parse_toml(WORKLOAD.format(dsn="host=a", duration="10s"), source="w.toml")
    store = SqliteRunStore(tmp_path / "results.db")
    try:
        stored_run(store, "base-run", workload, 5.0, 10)
        store.tag("nightly", "base-run")
        baseline = resolve(store, "nightly", workload, force=False)
        assert baseline.run.run_id == "base-run" and baseline.seconds.seconds == 10
        # 50 % slower: significantly beyond 10 % on p95 and p99; QPS and errors as before
        slow = stored_run(store, "slow-run", workload, 7.5, 10)
        found = judge(store, baseline, slow, 0.10, resamples=300)
        assert found.regressions == [Metric.P95, Metric.P99]
        assert not found.passed and found.as_dict()["regressions"] == ["p95_ms", "p99_ms"]
        # 4 % slower: significant, yet within a 10 % margin (not within 2 %)
        near = stored_run(store, "near-run", workload, 5.2, 10)
        assert judge(store, baseline, near, 0.10, resamples=300).passed
        assert judge(store, baseline, near, 0.02, resamples=300).regressions == [
            Metric.P95,
            Metric.P99,
        ]
        # faster passes
        assert judge(
            store, baseline, stored_run(store, "fast-run", workload, 3.0, 10), 0, resamples=300
        ).passed

        stored_run(store, "short-run", workload, 5.0, 3)
        with pytest.raises(BaselineError, match=r"has 3 full second.*at least 5"):
            resolve(store, "short-run", workload, force=False)
        with pytest.raises(BaselineError, match="no run or name 'nope'"):
            resolve(store, "nope", workload, force=False)
        other = parse_toml(
            WORKLOAD.format(dsn="host=b", duration="10s").replace('"gate"', '"other"'),
            source="o.toml",
        )
        with pytest.raises(BaselineError, match=r"these fields differ: name, target\.dsn"):
            resolve(store, "nightly", other, force=False)
        assert resolve(store, "nightly", other, force=True).run.run_id == "base-run"
    finally:
        store.close()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snowload.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
async def test_a_slower_database_fails_the_gate_on_a_controller(
    pg: PgCluster, tmp_path: Path
) -> None:
    """The baseline runs on a controller (in this process, with its results database);
    ``runs tag --controller`` names it; ``snowload run --controller --baseline NAME`` on a
    database that became five times slower exits 5."""
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS gate_pg")
        conn.execute("CREATE DATABASE gate_pg")
    dsn = pg.dsn.replace("dbname=postgres", "dbname=gate_pg")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE pace (ms float8)")
        conn.execute("INSERT INTO pace VALUES (4)")
        conn.execute(
            "CREATE FUNCTION snooze() RETURNS void LANGUAGE sql AS "
            "$$ SELECT pg_sleep((SELECT ms FROM pace) / 1000.0) $$"
        )
    text = WORKLOAD.format(dsn=dsn, duration="6s")
    path = tmp_path / "gate.toml"
    path.write_text(text)
    env = dict(os.environ, SNOWLOAD_HOME=str(tmp_path / "home"))
    db = tmp_path / "results.db"
    controller = Controller(ControllerSettings(listen="127.0.0.1:0"), SqliteRunStore(db))
    await controller.start()
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    try:
        procs.spawn("gate-w")
        await attached(controller, 1)
        first = await run_to_end(controller, workload(text))
        assert first.state == lc.COMPLETED, first.message
        base_id = first.run_id
        address = controller.address
        tagged = await asyncio.to_thread(
            cli, env, "runs", "tag", base_id, "nightly", "--controller", address
        )
        assert tagged.returncode == 0, tagged.stderr

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE pace SET ms = 20")
        second = await asyncio.to_thread(
            cli,
            env,
            "run",
            str(path),
            "--controller",
            address,
            "--baseline",
            "nightly",
            "--max-regression",
            "10%",
            "--json",
        )
        assert second.returncode == ExitCode.REGRESSION, second.stderr
        out = json.loads(second.stdout)
        gate = out["baseline"]
        assert gate["baseline"] == f"nightly ({base_id})" and not gate["passed"]
        # 2 connections at 4 ms -> 20 ms: a fifth of the queries a second, far beyond the
        # noise of a loaded host; its tail may be too noisy to call
        assert "qps" in gate["regressions"], gate
        assert set(gate["regressions"]) <= {"qps", "p95_ms", "p99_ms", "error_rate"}
        assert gate["verdicts"]["all"] == "slower"
        overall = gate["by_kind"]["all"]
        assert overall["qps"]["relative_ci95"][1] < -0.10
        assert overall["p50_ms"]["verdict"] == "slower"
        assert "REGRESSION" in second.stderr and "nightly" in second.stderr
    finally:
        procs.stop_all()
        await controller.stop()
    # the names live in the controller's results database; runs compare reads them too
    compared = cli(env, "runs", "compare", "nightly", out["run_id"], "--db", str(db), "--json")
    assert compared.returncode == 0, compared.stderr
    assert json.loads(compared.stdout)["verdicts"]["all"] == "slower"


def test_runs_too_short_to_gate_are_refused_up_front() -> None:
    assert too_short_for_gate(6.0) is None
    message = too_short_for_gate(3.0)
    assert message is not None
    assert "--duration 6s or more" in message and "would measure 3s" in message


def test_names_of_runs() -> None:
    assert tag_problem("nightly/main-1.2_x") == ""
    assert "not a name" in tag_problem("no spaces")
    assert "not a name" in tag_problem("")
