"""``snowload runs profile RUN ENTRY`` against the real servers: PostgreSQL's EXPLAIN
(ANALYZE, BUFFERS) with the recorded parameters (the plan's actual row count is what the
parameter selects), read-only unless ``--allow-writes`` (a write is refused before it
runs, or by the READ ONLY transaction; with the flag it runs and is rolled back); and
Snowflake's QUERY_HISTORY row through fakesnow (which has no GET_QUERY_OPERATOR_STATS:
the profile says so).

The runs are stored records in a real results database; their query log entries name
statements of this test's own tables.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import psycopg

from controller import lifecycle as lc
from controller.store import RunRecord
from controller.store_sqlite import SqliteRunStore
from snowload.cli import main
from snowload.v1 import common_pb2, run_pb2
from snowload.workload import parse_toml
from tests.pg import PgCluster, free_port
from worker.drivers.snowflake import SnowflakeDriver

PG_WORKLOAD = """
name = "profiled"
[target]
driver = "postgres"
dsn = "{dsn}"
[[query]]
name = "range"
sql = "SELECT count(*) FROM prof WHERE k <= ?"
params = [{{ int = [1, 100] }}]
[[query]]
name = "put"
sql = "INSERT INTO prof VALUES (?)"
params = [{{ int = [1000, 2000] }}]
[[query]]
name = "tick"
sql = "SELECT nextval('prof_seq') + ?"
params = [{{ int = [1, 2] }}]
"""
SF_WORKLOAD = """
name = "sf-profiled"
[target]
driver = "snowflake"
connection = "fake"
options = { query_history = "SLDB.PUBLIC.QH_PROFILE" }
[[query]]
name = "get"
sql = "SELECT 1"
"""


def store_run(db: Path, run_id: str, workload_toml: str, *entries: tuple[str, str, str]) -> None:
    """A finished run whose query log holds ``entries`` (kind, params JSON, server id)."""
    workload = parse_toml(workload_toml, "test.toml")
    run = run_pb2.Run(run_id=run_id, name=workload.name, state=lc.COMPLETED)
    run.workload_json = workload.to_json()
    run.create_time.GetCurrentTime()
    queries = []
    for n, (kind, params, server_id) in enumerate(entries, start=1):
        e = common_pb2.QueryEntry(
            entry_id=n,
            kind=kind,
            phase=lc.MEASUREMENT,  # type: ignore[arg-type]
            worker="w",
            latency_ms=1.5,
            params_json=params,
            server_id=server_id,
            slowest=True,
        )
        e.start_time.GetCurrentTime()
        queries.append(e)
    store = SqliteRunStore(db)
    try:
        store.save(RunRecord(run=run, queries=queries))
    finally:
        store.close()


def profile(db: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["runs", "profile", *args, "--db", str(db)])
    return code, out.getvalue(), err.getvalue()


def test_postgres_explain_analyze_with_the_recorded_parameters(
    pg: PgCluster, tmp_path: Path
) -> None:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS prof")
        conn.execute("CREATE TABLE prof (k int PRIMARY KEY)")
        conn.execute("INSERT INTO prof SELECT generate_series(1, 100)")
        conn.execute("DROP SEQUENCE IF EXISTS prof_seq")
        conn.execute("CREATE SEQUENCE prof_seq")
    db = tmp_path / "results.db"
    store_run(
        db,
        "pgrun",
        PG_WORKLOAD.format(dsn=pg.dsn),
        ("range", "[37]", "4242"),
        ("put", "[1500]", "4242"),
        ("tick", "[1]", "4242"),
        ("range", "", "4242"),  # parameters not recorded
    )
    code, out, err = profile(db, "pgrun", "1", "--json")
    assert code == 0, err
    plan = json.loads(out)["plan"]
    text = "\n".join(plan)
    # ANALYZE ran it with k <= 37: the scan really returned 37 rows; BUFFERS were counted
    assert "rows=37 loops=1" in text and "Buffers:" in text and "Execution Time" in text
    assert json.loads(out)["entry"]["params"] == [37]

    def count() -> int:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM prof").fetchone()
            assert row is not None
            return int(row[0])

    # an INSERT is refused before it runs
    code, out, err = profile(db, "pgrun", "2")
    assert code == 2 and "may write" in err and "--allow-writes" in err and count() == 100
    # a SELECT that writes (a sequence) passes the statement check, not the transaction
    code, out, err = profile(db, "pgrun", "3")
    assert code == 2 and "read-only transaction" in err and err.count("\n") == 1
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        called = conn.execute("SELECT is_called FROM prof_seq").fetchone()
    assert called == (False,)
    # allowed: it runs (the plan inserts one row), and is rolled back
    code, out, err = profile(db, "pgrun", "2", "--allow-writes")
    assert code == 0, err
    assert "Insert on prof" in out and "rolled back" in out and count() == 100
    code, out, err = profile(db, "pgrun", "4")
    assert code == 2 and "no recorded parameters" in err


def test_an_unreachable_target_is_one_line_and_exit_3(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    dsn = f"host=127.0.0.1 port={free_port()} dbname=postgres user=postgres"
    store_run(db, "gone", PG_WORKLOAD.format(dsn=dsn), ("range", "[3]", "1"))
    code, out, err = profile(db, "gone", "1")
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and "cannot reach" in err and "network" in err


def test_snowflake_history_row_through_fakesnow(snowflake_home: Path, tmp_path: Path) -> None:
    wl = parse_toml(SF_WORKLOAD, "sf.toml")
    conn = SnowflakeDriver().connect(wl.target, 10)
    try:
        conn.execute_script(
            [
                "CREATE DATABASE IF NOT EXISTS SLDB",
                "CREATE SCHEMA IF NOT EXISTS SLDB.PUBLIC",
                "CREATE OR REPLACE TABLE SLDB.PUBLIC.QH_PROFILE (QUERY_ID TEXT, "
                "QUERY_TAG TEXT, TOTAL_ELAPSED_TIME NUMBER, EXECUTION_TIME NUMBER)",
                "INSERT INTO SLDB.PUBLIC.QH_PROFILE VALUES "
                "('01b2-aaaa', 'sl/x/w0/M/get', 12, 7), ('01b2-bbbb', 'other', 99, 98)",
            ]
        )
    finally:
        conn.close()
    db = tmp_path / "results.db"
    store_run(db, "sfrun", SF_WORKLOAD, ("get", "[]", "01b2-aaaa"), ("get", "[]", "01b2-none"))
    code, out, err = profile(db, "sfrun", "01b2-aaaa", "--json")  # by its query id
    assert code == 0, err
    found = json.loads(out)
    assert found["history"]["query_id"] == "01b2-aaaa"
    assert found["history"]["total_elapsed_time"] == 12
    # fakesnow has no GET_QUERY_OPERATOR_STATS: said in a note, not a failure
    assert found["operators"] == []
    assert any("GET_QUERY_OPERATOR_STATS" in n for n in found["notes"])
    code, out, err = profile(db, "sfrun", "2", "--json")
    assert code == 0 and any("no row" in n for n in json.loads(out)["notes"])
