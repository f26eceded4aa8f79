"""Results tables in PostgreSQL (the real server of tests/pg.py) and Snowflake (fakesnow):
written at the end of a run by a daemon started with --export-to, and by `runs export
--to`; read back with SQL and checked against `runs show --json` / `runs export --format
json` of the stored run; replaced by a second export; refused when newer; atomic."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import psycopg
import pytest

from controller.results_tables import ddl
from snowload.cli import main
from tests.cluster import start_daemon
from tests.pg import PgCluster

WORKLOAD = """
name = "tables"
[target]
driver = "postgres"
dsn = "{dsn}"
[setup]
sql = ["DROP TABLE IF EXISTS rt", "CREATE TABLE rt (k BIGINT PRIMARY KEY, v TEXT)",
       "INSERT INTO rt SELECT g, 'x' FROM generate_series(1, 200) g"]
[load]
workers = 1
connections = 2
warmup = "1s"
duration = "2s"
think_time = "2ms"
enrichment_timeout = "20s"
on_query_failure = "continue"
[[query]]
name = "get"
sql = "SELECT v FROM rt WHERE k = ?"
params = [{{ int = [1, 200] }}]
[[query]]
name = "put"
weight = 0.2
sql = "INSERT INTO rt (k, v) VALUES (?, 'y')"
params = [{{ int = [1, 400] }}]
[slo]
p95_ms = 5000
error_rate = 0.9
"""
MS = 1e-4
"""`runs show --json` rounds milliseconds to 4 decimals."""


def here(*args: str) -> subprocess.CompletedProcess[str]:
    """``snowload ARGS`` in this process (no interpreter start per export; the
    connector reads the session's connections.toml, see tests/conftest.py)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snowload.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def pg_rows(pg: PgCluster, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with pg.connect() as conn:
        return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]


def pg_exec(pg: PgCluster, sql: str, *params: Any) -> None:
    with pg.connect() as conn:
        conn.execute(sql, params)  # type: ignore[arg-type]


def check_against_the_stored_run(
    rows: dict[str, list[tuple[Any, ...]]], shown: dict[str, Any], series: list[dict[str, Any]]
) -> None:
    """``rows``: SQL results off the exported tables; ``shown``: `runs show --json
    --percentiles`; ``series``: `runs export --format json`'s series."""
    (run,) = rows["runs"]
    assert run == (shown["state"], shown["reason"], shown["slo"]["passed"], shown["start_time"])
    stats = {(r[0], r[1]): r[2:] for r in rows["phase_stats"]}
    expected = set()
    for phase, entry in shown["phases"].items():
        for kind, s in [("all", entry), *entry["by_kind"].items()]:
            expected.add((phase, kind))
            count, errors, qps, p50, p95, p99, mx, p999 = stats[(phase, kind)]
            assert (count, errors) == (s["count"], s["errors"]), (phase, kind)
            assert qps == pytest.approx(s["qps"], abs=0.005)
            for got, want in ((p50, s["p50_ms"]), (p95, s["p95_ms"]), (p99, s["p99_ms"])):
                assert got == pytest.approx(want, abs=MS), (phase, kind)
            assert mx == pytest.approx(s["max_ms"], abs=MS)
            tail = shown["percentiles"].get(phase, {}).get(kind)
            if tail:
                assert p999 == pytest.approx(tail["p99.9"], abs=MS)
    assert set(stats) == expected
    assert shown["phases"]["MEASUREMENT"]["by_kind"]["put"]["errors"] > 0  # (duplicate keys)
    got_series = [(r[0], r[1], r[2], r[3]) for r in rows["series"]]
    want_series = [(p["second"], p["phase"], p["count"], p["errors"]) for p in series]
    assert got_series == want_series and got_series
    verdicts = sorted(rows["slo"], key=repr)
    want = sorted(
        (
            (v["kind"], v["metric"], v["limit"], v["actual"], v["passed"])
            for v in shown["slo"]["verdicts"]
        ),
        key=repr,
    )
    assert verdicts == [tuple(v) for v in want] and verdicts
    server = {(r[0], r[1]): r[2:] for r in rows["server"]}
    timings = shown["server"]["timings"]
    assert timings and len(server) == len(timings)
    for t in timings:
        calls, mean = server[(t["kind"], t["phase"])]
        assert calls == t["calls"]
        assert mean == pytest.approx(t["mean_ms"], abs=MS)


QUERIES = {
    "runs": "SELECT state, reason, slo_passed, {iso} FROM {s}snowload_runs WHERE run_id = {p}",
    "phase_stats": "SELECT phase, kind, query_count, error_count, qps, p50_ms, p95_ms, p99_ms, "
    "max_ms, p999_ms FROM {s}snowload_phase_stats WHERE run_id = {p}",
    "series": "SELECT second_no, phase, query_count, error_count FROM {s}snowload_series "
    "WHERE run_id = {p} AND kind = 'all' ORDER BY second_no",
    "slo": "SELECT kind, metric, limit_value, actual, passed FROM {s}snowload_slo_verdicts "
    "WHERE run_id = {p}",
    "server": "SELECT kind, phase, calls, mean_ms FROM {s}snowload_server_timings "
    "WHERE run_id = {p} AND component = 'total'",
}
PG_ISO = "to_char(start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


def read_pg(pg: PgCluster, schema: str, run_id: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for name, sql in QUERIES.items():
        out[name] = pg_rows(pg, sql.format(s=f"{schema}.", p="%s", iso=PG_ISO), run_id)
    return out


def read_sf(cur: Any, schema: str, run_id: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for name, sql in QUERIES.items():
        cur.execute(sql.format(s=f"{schema}.", p="?", iso="start_time"), (run_id,))
        out[name] = [tuple(r) for r in cur.fetchall()]
    ((state, reason, passed, start),) = out["runs"]
    iso = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out["runs"] = [(state, reason, passed, iso)]
    return out


def json_time(text: str) -> str:
    """`runs show` prints protobuf JSON times (nanos trimmed to 0, 3, 6 or 9 digits)."""
    head, _, frac = text.rstrip("Z").partition(".")
    return f"{head}.{(frac + '000000')[:6]}Z"


def test_results_tables_in_postgres_and_snowflake(
    pg: PgCluster, snowflake_home: Path, tmp_path: Path
) -> None:
    env = dict(
        os.environ,
        SNOWLOAD_HOME=str(tmp_path / "home"),
        SNOWLOAD_DB=str(tmp_path / "results.db"),
        SNOWFLAKE_HOME=str(snowflake_home),
    )
    db = str(tmp_path / "results.db")
    wl = tmp_path / "tables.toml"
    wl.write_text(WORKLOAD.format(dsn=pg.dsn), encoding="utf-8")
    # -- the daemon exports every run it finishes
    daemon, address = start_daemon(
        [
            *("--listen", "127.0.0.1:0", "--db", db, "--local-workers", "1"),
            *("--export-to", f"postgres:{pg.dsn}", "--export-schema", "sl_auto"),
        ],
        env,
    )
    try:
        done = cli(env, "run", str(wl), "--controller", address, "--json")
        assert done.returncode == 0, done.stderr
        run_id = json.loads(done.stdout)["run_id"]
        deadline = time.monotonic() + 30
        while True:
            try:
                if pg_rows(pg, "SELECT 1 FROM sl_auto.snowload_runs WHERE run_id = %s", run_id):
                    break
            except psycopg.errors.UndefinedTable:
                pass
            assert time.monotonic() < deadline, "the daemon did not export the run"
            time.sleep(0.1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
    shown_run = here("runs", "show", run_id, "--db", db, "--json", "--percentiles")
    assert shown_run.returncode == 0, shown_run.stderr
    shown = json.loads(shown_run.stdout)
    shown["start_time"] = json_time(shown["start_time"])
    exported = here("runs", "export", run_id, "--db", db, "--format", "json")
    series = json.loads(exported.stdout)["series"]
    check_against_the_stored_run(read_pg(pg, "sl_auto", run_id), shown, series)

    # -- runs export --to postgres: a second export replaces the first (rows restored,
    # none doubled), in one transaction (a failure leaves the previous rows)
    counts = "SELECT count(*) FROM sl_auto.snowload_series WHERE run_id = %s"
    (before,) = pg_rows(pg, counts, run_id)
    pg_exec(
        pg, "UPDATE sl_auto.snowload_phase_stats SET query_count = -1 WHERE run_id = %s", run_id
    )
    again = here("runs", "export", run_id[:8], "--db", db, "--to", "postgres")
    assert again.returncode == 2 and "--dsn" in again.stderr
    to_pg = ["--db", db, "--to", "postgres", "--dsn", pg.dsn, "--schema", "sl_auto"]
    again = here("runs", "export", run_id[:8], *to_pg)
    assert again.returncode == 0, again.stderr
    assert pg_rows(pg, counts, run_id) == [before]
    check_against_the_stored_run(read_pg(pg, "sl_auto", run_id), shown, series)
    with pg.connect() as conn:
        conn.execute(
            "CREATE FUNCTION sl_auto.refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by a test trigger'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON sl_auto.snowload_slo_verdicts "
            "FOR EACH ROW EXECUTE FUNCTION sl_auto.refuse()"
        )
    failed = here("runs", "export", run_id, *to_pg)
    assert failed.returncode == 1 and "refused by a test trigger" in failed.stderr
    check_against_the_stored_run(read_pg(pg, "sl_auto", run_id), shown, series)
    pg_exec(pg, "DROP TRIGGER refuse ON sl_auto.snowload_slo_verdicts")
    pg_exec(pg, "UPDATE sl_auto.snowload_schema SET version = 99")
    newer = here("runs", "export", run_id, *to_pg)
    assert newer.returncode == 2 and "schema version 99" in newer.stderr, newer.stderr

    # -- runs export --to snowflake (fakesnow), twice
    import snowflake.connector

    conn = snowflake.connector.connect(connection_name="fake", paramstyle="qmark")
    try:
        cur = conn.cursor()
        cur.execute("CREATE DATABASE IF NOT EXISTS SLDB")
        to_sf = ["--db", db, "--to", "snowflake", "--connection", "fake"]
        for _ in range(2):
            done = here("runs", "export", run_id, *to_sf, "--schema", "SLDB.RESULTS")
            assert done.returncode == 0, done.stderr
        check_against_the_stored_run(read_sf(cur, "SLDB.RESULTS", run_id), shown, series)
        cur.execute("UPDATE SLDB.RESULTS.snowload_schema SET version = 2")
        newer = here("runs", "export", run_id, *to_sf, "--schema", "SLDB.RESULTS")
        assert newer.returncode == 2 and "schema version 2" in newer.stderr, newer.stderr
    finally:
        conn.close()


def test_bad_destinations_are_refused_with_a_message(tmp_path: Path) -> None:
    env = dict(os.environ, SNOWLOAD_HOME=str(tmp_path / "home"))
    bad = cli(env, "controller", "--listen", "127.0.0.1:0", "--export-to", "mysql:x")
    assert bad.returncode == 2 and "postgres:DSN or snowflake:CONNECTION" in bad.stderr
    db = str(tmp_path / "r.db")
    bad = here("runs", "export", "abcd", "--db", db, "--to", "snowflake", "--connection", "x")
    assert bad.returncode == 2 and "no run 'abcd'" in bad.stderr
    bad = here("runs", "export", "abcd", "--db", db, "--to", "postgres", "--dsn", "x")
    assert bad.returncode == 2


def test_the_documented_ddl_is_the_ddl() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "results-tables.md").read_text("utf-8")
    for statement in ddl(""):
        assert statement + ";" in doc
