"""``snowload check WORKLOAD [--connect]``: the resolved plan, and every query prepared by
the real target (SQLite, PostgreSQL, the snowflake connector against fakesnow) without
being run. The oracle for "not run": the target's own tables and statistics."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from snowload.exit_codes import ExitCode
from tests.pg import PASSWORD, PASSWORD_USER, PgCluster, free_port

pytestmark = pytest.mark.slow  # real snowload processes, end to end


def check(tmp: Path, text: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp / "w.toml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "snowload.cli", "check", str(path), *args],
        env=dict(os.environ, SNOWLOAD_HOME=str(tmp / "home"), **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


SQLITE = """
name = "check-sqlite"
[target]
database = "{db}"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, total REAL)"]
[load]
workers = 3
connections = 8
warmup = "2s"
duration = 20
[[query]]
name = "lookup"
weight = 3
sql = "SELECT total FROM orders WHERE id = ?"
params = [{{ int = [1, 1000] }}]
[[query]]
name = "insert"
sql = "INSERT INTO orders (total) VALUES (?)"
params = [{{ float = [1.0, 9.0] }}]
[[query]]
name = "typo"
sql = "SELECT totl FROM orders WHERE id = ?"
params = [{{ int = [1, 1000] }}]
"""


def test_the_plan_shows_workers_connections_phases_and_kinds(tmp_path: Path) -> None:
    out = check(tmp_path, SQLITE.format(db=tmp_path / "t.db"), "--json")
    assert out.returncode == ExitCode.OK, out.stderr
    plan = json.loads(out.stdout)
    assert plan["workers"] == 3 and plan["connections"] == 8
    assert plan["connections_per_worker"] == [3, 3, 2]
    assert plan["phases"] == [
        {"phase": "WARMUP", "duration": "2s"},
        {"phase": "MEASUREMENT", "duration": "20s"},
    ]
    assert [(q["name"], q["weight"], q["share"]) for q in plan["queries"]] == [
        ("lookup", 3.0, 0.6),
        ("insert", 1.0, 0.2),
        ("typo", 1.0, 0.2),
    ]
    assert plan["queries"][0]["params"] == [{"int": [1, 1000]}]
    assert plan["on_query_failure"] == "fail"
    assert not (tmp_path / "t.db").exists()  # without --connect nothing touches the target
    text = check(tmp_path, SQLITE.format(db=tmp_path / "t.db"))
    assert text.returncode == 0
    assert "3 worker(s) x 2-3 connection(s) = 8 connections" in text.stdout
    assert "WARMUP 2s -> MEASUREMENT 20s" in text.stdout


def test_an_invalid_workload_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    bad = SQLITE.format(db="x.db").replace("weight = 3", "weight = -3")
    out = check(tmp_path, bad)
    assert out.returncode == ExitCode.BAD_INPUT
    assert f"w.toml:{line_of(bad, 'weight = -3')}: query[0].weight" in out.stderr
    assert "Traceback" not in out.stderr


def test_sqlite_prepares_every_query_and_runs_none(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with sqlite3.connect(db) as conn:  # an existing target with one row
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO orders VALUES (1, 1.0)")
    text = SQLITE.format(db=db)
    out = check(tmp_path, text, "--connect", "--json")
    assert out.returncode == ExitCode.BAD_INPUT, out.stderr
    result = json.loads(out.stdout)["connect"]
    outcomes = {q["name"]: q["outcome"] for q in result["queries"]}
    assert outcomes == {"lookup": "ok", "insert": "ok", "typo": "rejected"}
    typo_line = line_of(text, 'name = "typo"') - 1  # its [[query]] header
    assert f"w.toml:{typo_line}: query 'typo' [syntax]" in out.stderr
    assert "no such column: totl" in out.stderr
    with sqlite3.connect(db) as conn:  # the INSERT was compiled, never run
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1,)


def test_sqlite_queries_on_tables_the_setup_creates_pass_and_nothing_is_kept(
    tmp_path: Path,
) -> None:
    db = tmp_path / "fresh.db"
    text = SQLITE.format(db=db).replace(
        '[[query]]\nname = "typo"\nsql = "SELECT totl FROM orders WHERE id = ?"\n'
        "params = [{ int = [1, 1000] }]\n",
        "",
    )
    out = check(tmp_path, text, "--connect")
    assert out.returncode == ExitCode.OK, out.stderr
    assert "2 of 2 queries prepared (after the setup SQL, rolled back)" in out.stderr
    with sqlite3.connect(db) as conn:  # the setup's table was rolled back
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


PG = """
name = "check-pg"
[target]
driver = "postgres"
dsn = "{dsn}"
[load]
duration = "5s"
[[query]]
name = "insert"
sql = "INSERT INTO check_t (v) VALUES (?)"
params = [{{ int = [1, 9] }}]
[[query]]
name = "lookup"
sql = "SELECT v FROM check_t WHERE v = ?"
params = [{{ int = [1, 9] }}]
[[query]]
name = "typo"
sql = "SELECT v FROM chek_t WHERE v = ?"
params = [{{ int = [1, 9] }}]
"""


def test_postgres_prepares_every_query_and_runs_none(pg: PgCluster, tmp_path: Path) -> None:
    with pg.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS check_t")
        conn.execute("CREATE TABLE check_t (v INT)")
        conn.execute("SELECT pg_stat_statements_reset()")
    text = PG.format(dsn=pg.dsn)
    out = check(tmp_path, text, "--connect", "--json")
    assert out.returncode == ExitCode.BAD_INPUT, out.stderr
    outcomes = {q["name"]: q["outcome"] for q in json.loads(out.stdout)["connect"]["queries"]}
    assert outcomes == {"insert": "ok", "lookup": "ok", "typo": "rejected"}
    typo_line = line_of(text, 'name = "typo"') - 1
    assert f"w.toml:{typo_line}: query 'typo' [syntax]" in out.stderr
    # a rejected query first: the ones after it are still checked on their own
    first = text.replace("INSERT INTO check_t", "INSERT INTO chek_t")
    both = check(tmp_path, first, "--connect", "--json")
    outcomes = {q["name"]: q["outcome"] for q in json.loads(both.stdout)["connect"]["queries"]}
    assert outcomes == {"insert": "rejected", "lookup": "ok", "typo": "rejected"}
    assert 'relation "chek_t" does not exist' in out.stderr
    with pg.connect() as conn:
        assert conn.execute("SELECT count(*) FROM check_t").fetchone() == (0,)
        # the server's statistics: the statements were planned, never executed
        executed = conn.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE %s",
            ("%check_t (v)%",),
        ).fetchone()
        assert executed == (0,)


def test_postgres_login_problems_have_their_own_reason(pg: PgCluster, tmp_path: Path) -> None:
    with pg.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS check_t (v INT)")
    dsn = f"host=127.0.0.1 port={pg.port} dbname=postgres user={PASSWORD_USER}"
    no_pgpass = str(tmp_path / "no-such-pgpass")
    wrong = check(
        tmp_path, PG.format(dsn=dsn), "--connect", PGPASSWORD="wrong", PGPASSFILE=no_pgpass
    )
    assert wrong.returncode == ExitCode.RUN_FAILED
    assert "cannot connect to the target (auth_failed)" in wrong.stderr
    assert "wrong" not in wrong.stderr.replace("password", "")
    closed = f"host=127.0.0.1 port={free_port()} dbname=postgres user=postgres"
    down = check(tmp_path, PG.format(dsn=closed), "--connect")
    assert down.returncode == ExitCode.RUN_FAILED
    assert "(target_unreachable)" in down.stderr
    right = check(
        tmp_path,
        PG.format(dsn=dsn).replace("chek_t", "check_t"),
        "--connect",
        PGPASSWORD=PASSWORD,
        PGPASSFILE=no_pgpass,
    )
    assert right.returncode == ExitCode.OK, right.stderr
    assert "3 of 3 queries prepared" in right.stderr


SNOWFLAKE = """
name = "check-sf"
[target]
driver = "snowflake"
connection = "{connection}"
options = {{ login_timeout = 5 }}
[load]
duration = "5s"
[[query]]
name = "lookup"
sql = "SELECT total FROM SLDB.PUBLIC.check_orders WHERE id = ?"
params = [{{ int = [1, 3] }}]
[[query]]
name = "typo"
sql = "SELECT total FROM SLDB.PUBLIC.chek_orders WHERE id = ?"
params = [{{ int = [1, 3] }}]
"""


def test_snowflake_describes_every_query(snowflake_home: Path, tmp_path: Path) -> None:
    import snowflake.connector

    with snowflake.connector.connect(connection_name="fake") as conn:
        conn.cursor().execute("CREATE DATABASE IF NOT EXISTS SLDB")
        conn.cursor().execute(
            "CREATE OR REPLACE TABLE SLDB.PUBLIC.check_orders (id INT, total FLOAT)"
        )
    env = {"SNOWFLAKE_HOME": str(snowflake_home)}
    text = SNOWFLAKE.format(connection="fake")
    out = check(tmp_path, text, "--connect", "--json", **env)
    assert out.returncode == ExitCode.BAD_INPUT, out.stderr
    outcomes = {q["name"]: q["outcome"] for q in json.loads(out.stdout)["connect"]["queries"]}
    assert outcomes == {"lookup": "ok", "typo": "rejected"}
    typo_line = line_of(text, 'name = "typo"') - 1
    assert f"w.toml:{typo_line}: query 'typo'" in out.stderr
    missing = check(tmp_path, SNOWFLAKE.format(connection="nope"), "--connect", **env)
    assert missing.returncode == ExitCode.RUN_FAILED
    assert "(config_error)" in missing.stderr and "nope" in missing.stderr
