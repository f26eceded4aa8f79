"""Server-side timings: pg_stat_statements for real; Snowflake history paging against a
stand-in relation with Snowflake's column names (fakesnow has no query history)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from controller import lifecycle as lc
from controller.server import Controller, ControllerSettings
from controller.store_sqlite import SqliteRunStore
from snowload.v1 import common_pb2, run_pb2
from snowload.workload import parse_toml
from tests.cluster import WorkerProcs, attached, run_to_end, worker_env, workload
from tests.pg import PgCluster
from worker.drivers.snowflake import SnowflakeDriver
from worker.enrichment import PAGE_ROWS, SnowflakeEnricher, Window, normalise_sql
from worker.load_effects import SNAPSHOT_AHEAD_NS

PG_WORKLOAD = """
name = "pg-enrich"
[target]
driver = "postgres"
dsn = "{dsn}"
[setup]
sql = ["DROP TABLE IF EXISTS e", "CREATE TABLE e (k BIGINT PRIMARY KEY, v TEXT)",
       "INSERT INTO e SELECT g, 'x' FROM generate_series(1, 500) g"]
[load]
workers = 1
connections = 2
warmup = "1s"
duration = "2s"
think_time = "1ms"
enrichment_timeout = "20s"
[[query]]
name = "get"
sql = "SELECT v FROM e WHERE k = ?"
params = [{{ int = [1, 500] }}]
[[query]]
name = "sleepy"
weight = 0.2
sql = "SELECT pg_sleep(0.002), ?::int"
params = [{{ int = [1, 9] }}]
"""


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[Controller]:
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0"), SqliteRunStore(tmp_path / "r.db"))
    await ctl.start()
    yield ctl
    await ctl.stop()


def test_normalised_sql_matches_what_postgres_records() -> None:
    assert normalise_sql("/*sl/ab/w0/M/get*/ SELECT v FROM e WHERE k = $1") == normalise_sql(
        "SELECT v FROM e WHERE k = ?"
    )
    assert normalise_sql("select pg_sleep($1), $2::int") == normalise_sql(
        "SELECT pg_sleep(?), ?::int"
    )


async def test_postgres_enrichment_from_pg_stat_statements(
    pg: PgCluster, controller: Controller, tmp_path: Path
) -> None:
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    procs.spawn("enricher")
    try:
        await attached(controller, 1)
        run = await run_to_end(controller, workload(PG_WORKLOAD.format(dsn=pg.dsn)))
        assert run.state == lc.COMPLETED, run.message
        assert run.enrichment == common_pb2.ENRICHMENT_STATUS_COMPLETED, run.server.message
        timings = {t.kind: t for t in run.server.timings}
        assert set(timings) == {"get", "sleepy"}
        measured = {k: c.count for (ph, k), c in run.metrics.cells.items() if ph == lc.MEASUREMENT}
        for kind, t in timings.items():
            # server calls across MEASUREMENT vs client counts: the snapshot that opens the
            # window is taken 50 ms before MEASUREMENT begins (and a loaded host may take it
            # up to as much again later), so they differ by the queries of 100 ms at the
            # run's rate, and the 2 in flight; a window that held the warmup (1 s) or missed
            # the end would be off by far more
            assert SNAPSHOT_AHEAD_NS == 50_000_000
            rate = measured[kind] / 2.0
            margin = 2 + rate * 0.1
            assert abs(t.calls - measured[kind]) <= margin, (kind, t.calls, measured[kind])
            assert t.phase == lc.MEASUREMENT
        assert timings["sleepy"].mean_ms >= 2.0  # pg_sleep(0.002) really ran on the server
        assert timings["get"].mean_ms < timings["sleepy"].mean_ms
        stored = controller.store.get(run.run_id)
        assert stored is not None and stored.enrichment == common_pb2.ENRICHMENT_STATUS_COMPLETED
        assert {t.kind for t in stored.server.timings} == {"get", "sleepy"}

        # a database without pg_stat_statements: SKIPPED, and the run still completes
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS noext")
            conn.execute("CREATE DATABASE noext")
        dsn = pg.dsn.replace("dbname=postgres", "dbname=noext")
        run = await run_to_end(controller, workload(PG_WORKLOAD.format(dsn=dsn)))
        assert run.state == lc.COMPLETED
        assert run.enrichment == common_pb2.ENRICHMENT_STATUS_SKIPPED
        assert "pg_stat_statements" in run.server.message
    finally:
        procs.stop_all()


SF_WORKLOAD = """
name = "sf-enrich"
[target]
driver = "snowflake"
connection = "fake"
options = { query_history = "SLDB.PUBLIC.QH_STANDIN" }
[[query]]
name = "get"
sql = "SELECT 1"
[[query]]
name = "put"
sql = "SELECT 2"
"""

STANDIN = """CREATE OR REPLACE TABLE SLDB.PUBLIC.QH_STANDIN (
  QUERY_ID TEXT, QUERY_TAG TEXT, START_TIME TIMESTAMP_NTZ, END_TIME TIMESTAMP_NTZ,
  TOTAL_ELAPSED_TIME NUMBER, COMPILATION_TIME NUMBER, EXECUTION_TIME NUMBER,
  QUEUED_OVERLOAD_TIME NUMBER, QUEUED_PROVISIONING_TIME NUMBER,
  TRANSACTION_BLOCKED_TIME NUMBER)"""


def fill(conn: object, rows: int, tag_sql: str, run: str = "feedc0de") -> None:
    """``rows`` history rows, one per millisecond from 2026-01-01, tagged by ``tag_sql``."""
    conn.execute_script(  # type: ignore[attr-defined]
        [
            "INSERT INTO SLDB.PUBLIC.QH_STANDIN SELECT "
            f"'{run}-' || LPAD(SEQ4()::TEXT, 6, '0'), {tag_sql}, "
            "DATEADD('millisecond', SEQ4(), '2026-01-01'::TIMESTAMP_NTZ), NULL, "
            "10 + MOD(SEQ4(), 5), 2, 7, 1, 0, MOD(SEQ4(), 2) "
            f"FROM TABLE(GENERATOR(ROWCOUNT => {rows}))"
        ]
    )


@pytest.mark.parametrize("rows", [PAGE_ROWS, PAGE_ROWS + 2345])
def test_snowflake_history_paging_and_join(snowflake_home: Path, rows: int) -> None:
    wl = parse_toml(SF_WORKLOAD, "sf.toml")
    conn = SnowflakeDriver().connect(wl.target, 10)
    try:
        conn.execute_script(
            [
                "CREATE DATABASE IF NOT EXISTS SLDB",
                "CREATE SCHEMA IF NOT EXISTS SLDB.PUBLIC",
                STANDIN,
            ]
        )
        # this run: MEASUREMENT "get" on even ids, WARMUP "put" on odd ids
        fill(
            conn,
            rows,
            "CASE WHEN MOD(SEQ4(), 2) = 0 THEN 'sl/feedc0de/w0/M/get' "
            "ELSE 'sl/feedc0de/w1/W/put' END",
        )
        fill(conn, 50, "'sl/0ther0000/w0/M/get'", run="other")  # another run: excluded
        fill(conn, 50, "NULL", run="untagged")  # untagged: excluded
    finally:
        conn.close()
    enricher = SnowflakeEnricher(wl)
    enricher.client_samples = {"feedc0de-000000": 25_000, "feedc0de-000002": 13_000}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    window = Window(
        run_id="feedc0de0000",
        start_ns=int(start.timestamp() * 1e9),
        end_ns=int(start.timestamp() * 1e9 + rows * 1e6),
        expected_queries=rows,
    )
    began = time.monotonic()
    result = enricher.collect(window, time.monotonic() + 60)
    enricher.close()
    assert result.status == common_pb2.ENRICHMENT_STATUS_COMPLETED, result.message
    assert enricher.pages == 2  # a page exactly full is followed by one more look
    assert f"{rows} queries" in result.message
    cells = {(t.kind, t.phase): t for t in result.timings}
    assert set(cells) == {("get", lc.MEASUREMENT), ("put", lc.WARMUP)}
    assert cells[("get", lc.MEASUREMENT)].calls + cells[("put", lc.WARMUP)].calls == rows
    get = cells[("get", lc.MEASUREMENT)]
    assert get.total.p50_ms >= 10 and get.total.max_ms <= 14.1
    assert get.execution.p50_ms == pytest.approx(7, rel=0.01)
    assert get.queued.max_ms == pytest.approx(1, rel=0.01)  # overload + provisioning
    # joined by query id: client 25 ms and 13 ms vs server totals 10 ms and 12 ms
    assert get.matched == 2
    assert get.app_overhead.max_ms == pytest.approx(15, rel=0.01)
    assert get.app_overhead.min_ms == pytest.approx(1, rel=0.01)
    assert time.monotonic() - began < 60


async def test_sqlite_runs_are_skipped_not_pending(controller: Controller, tmp_path: Path) -> None:
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    procs.spawn("lite")
    try:
        await attached(controller, 1)
        text = (
            'name = "lite"\n[target]\ndatabase = "lite.db"\n[load]\nduration = "1s"\n'
            'connections = 1\n[[query]]\nname = "q"\nsql = "SELECT 1"\n'
        )
        run = await run_to_end(controller, workload(text))
        assert run.state == lc.COMPLETED
        assert run.enrichment == common_pb2.ENRICHMENT_STATUS_SKIPPED
        assert "sqlite" in run.server.message
    finally:
        procs.stop_all()


AQH = """CREATE OR REPLACE TABLE SLDB.PUBLIC.AQH_STANDIN (
  INTERVAL_START_TIME TIMESTAMP_NTZ, INTERVAL_END_TIME TIMESTAMP_NTZ, QUERY_TAG TEXT,
  QUERY_PARAMETERIZED_HASH TEXT, CALLS NUMBER, TOTAL_ELAPSED_TIME OBJECT,
  COMPILATION_TIME OBJECT, EXECUTION_TIME OBJECT, QUEUED_OVERLOAD_TIME OBJECT,
  TRANSACTION_BLOCKED_TIME OBJECT)"""


def _bucket(minute: int, tag: str, calls: int, total_sum: float, tmax: float, p99: float) -> str:
    def obj(s: float, mx: float, q: float) -> str:
        return f"OBJECT_CONSTRUCT('sum', {s}, 'max', {mx}, 'p99', {q})"

    return (
        "INSERT INTO SLDB.PUBLIC.AQH_STANDIN SELECT "
        f"DATEADD('minute', {minute}, '2026-01-01'::TIMESTAMP_NTZ), "
        f"DATEADD('minute', {minute + 1}, '2026-01-01'::TIMESTAMP_NTZ), '{tag}', 'h', {calls}, "
        f"{obj(total_sum, tmax, p99)}, {obj(calls * 0.5, 1, 1)}, {obj(calls * 2.0, 3, 3)}, "
        f"{obj(0, 0, 0)}, {obj(0, 0, 0)}"
    )


def test_runs_enrich_reads_the_aggregate_history_of_hybrid_tables(
    snowflake_home: Path, tmp_path: Path
) -> None:
    wl = parse_toml(
        SF_WORKLOAD.replace("QH_STANDIN", "unused").replace(
            "options = {", 'options = { aggregate_query_history = "SLDB.PUBLIC.AQH_STANDIN",'
        ),
        "sf.toml",
    )
    conn = SnowflakeDriver().connect(wl.target, 10)
    try:
        conn.execute_script(
            [
                "CREATE DATABASE IF NOT EXISTS SLDB",
                "CREATE SCHEMA IF NOT EXISTS SLDB.PUBLIC",
                AQH,
                _bucket(1, "sl/abcdef12/w0/M/get", 600, 3000.0, 40.0, 20.0),
                _bucket(2, "sl/abcdef12/w1/M/get", 400, 2400.0, 90.0, 30.0),
                _bucket(2, "sl/abcdef12/w0/W/put", 50, 500.0, 15.0, 14.0),
                _bucket(3, "sl/99999999/w0/M/get", 999, 1.0, 1.0, 1.0),  # another run
            ]
        )
    finally:
        conn.close()
    db = tmp_path / "r.db"
    store = SqliteRunStore(db)
    run = run_pb2.Run(run_id="abcdef123456", name="hybrid", state=6, target="snowflake")
    run.workload_json = wl.to_json()
    run.create_time.FromSeconds(int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()))
    run.start_time.FromSeconds(int(datetime(2026, 1, 1, 0, 1, tzinfo=UTC).timestamp()))
    run.end_time.FromSeconds(int(datetime(2026, 1, 1, 0, 3, tzinfo=UTC).timestamp()))
    store.put(run)
    store.close()
    env = dict(os.environ, SNOWFLAKE_HOME=str(snowflake_home))
    done = subprocess.run(
        [sys.executable, "-m", "snowload.cli", "runs", "--db", str(db), "enrich", "abcdef"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "1050 calls" in done.stdout
    stored = SqliteRunStore(db).get("abcdef123456")
    assert stored is not None
    assert stored.enrichment == common_pb2.ENRICHMENT_STATUS_COMPLETED
    cells = {(t.kind, t.phase): t for t in stored.server.timings}
    get = cells[("get", lc.MEASUREMENT)]
    assert get.calls == 1000
    assert get.mean_ms == pytest.approx(5.4)  # (3000 + 2400) / 1000: sums, not averages
    assert get.total.max_ms == 90.0 and get.total.p99_ms == 30.0
    assert get.execution.mean_ms == pytest.approx(2.0)
    assert cells[("put", lc.WARMUP)].calls == 50
