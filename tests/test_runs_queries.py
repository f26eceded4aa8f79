"""``snowload runs queries|show|export|profile`` over a stored run's query log, locally
(``--db``) and through a controller daemon (``--controller``).

One real run on SQLite: a scan whose cost grows with its parameter, and an insert that
fails once its three keys exist. Oracles: the stored HDR histograms (the slowest entry of
a phase and kind is the histogram's max), the run's own counts and times, and the
uniform sample (no sampled failure came before the first failures kept).
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc
import pytest

from controller.store_sqlite import SCHEMA_VERSION, SqliteRunStore
from snowload.cli import main
from snowload.v1 import common_pb2, run_pb2, run_pb2_grpc
from tests.cluster import start_daemon
from tests.test_runs_cli import cli, env_for

WORKLOAD = """
name = "qlog"
[target]
database = "qlog.db"
[setup]
sql = ["DROP TABLE IF EXISTS t", "CREATE TABLE t (k INTEGER PRIMARY KEY)",
       '''INSERT INTO t WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n
          WHERE i < 20000) SELECT i FROM n''',
       "DROP TABLE IF EXISTS u", "CREATE TABLE u (k INTEGER PRIMARY KEY)"]
[load]
workers = 1
connections = 2
warmup = "0.5s"
duration = "1s"
think_time = "1ms"
on_query_failure = "continue"
slow_queries = 4
query_sample = 30
[[query]]
name = "scan"
sql = "SELECT count(*) FROM t WHERE k + 0 <= ?"
params = [{ int = [1, 20000] }]
[[query]]
name = "put"
weight = 0.2
sql = "INSERT INTO u VALUES (?)"
params = [{ int = [1, 3] }]
"""
FIELDS = {
    "kind",
    "phase",
    "worker",
    "connection",
    "started_at",
    "latency_ms",
    "params",
    "server_id",
    "error",
}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("qlog")
    path = tmp / "qlog.toml"
    path.write_text(WORKLOAD)
    done = cli(tmp, "run", str(path), "--json")
    assert done.returncode == 0, done.stderr
    return tmp, json.loads(done.stdout)["run_id"]


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def runs(tmp: Path, *args: str) -> Done:
    """``snowload runs ARGS --db <the run's database>``, in this process (the same code
    as the command, without an interpreter's start-up per call)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(
                [
                    "runs",
                    *args,
                    *(() if "--controller" in args else ("--db", str(tmp / "results.db"))),
                ]
            )
        except SystemExit as exc:  # (argparse)
            code = int(exc.code or 0)
    return Done(code, out.getvalue(), err.getvalue())


def entries(tmp: Path, run_id: str, *args: str) -> list[dict[str, object]]:
    done = runs(tmp, "queries", run_id, "--json", *args)
    assert done.returncode == 0, done.stderr
    out: list[dict[str, object]] = json.loads(done.stdout)
    return out


def ts(text: object) -> float:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def test_the_slowest_are_the_histograms_max_with_their_params(stored: tuple[Path, str]) -> None:
    tmp, run_id = stored
    every = entries(tmp, run_id)
    assert every and all(set(e) == FIELDS for e in every)
    shown = json.loads(runs(tmp, "show", run_id, "--json", "--percentiles").stdout)
    start, end = ts(shown["start_time"]), ts(shown["end_time"])
    for phase in ("warmup", "measurement"):
        slowest = entries(tmp, run_id, "--kind", "scan", "--phase", phase, "--slowest", "100")
        assert len(slowest) == 4  # [load] slow_queries
        latencies = [float(str(e["latency_ms"])) for e in slowest]
        assert latencies == sorted(latencies, reverse=True)
        top = shown["percentiles"][phase.upper()]["scan"]["max"]
        assert latencies[0] == pytest.approx(top, rel=2e-3, abs=1e-3)
        for e in slowest:
            assert e["phase"] == phase.upper() and e["kind"] == "scan" and e["error"] is None
            assert isinstance(e["params"], list) and 1 <= e["params"][0] <= 20000
            assert e["connection"] in (0, 1) and e["worker"] and e["server_id"] == ""
            assert start - 0.01 <= ts(e["started_at"]) <= end
    top3 = entries(tmp, run_id, "--slowest", "3")
    assert len(top3) == 3 and top3[0]["latency_ms"] == max(e["latency_ms"] for e in every)  # type: ignore[type-var]


def test_the_first_failures_come_first(stored: tuple[Path, str]) -> None:
    tmp, run_id = stored
    failed = entries(tmp, run_id, "--errors")
    assert failed
    assert all(e["kind"] == "put" and "UNIQUE" in str(e["error"]) for e in failed)
    assert all(isinstance(e["params"], list) and e["params"][0] in (1, 2, 3) for e in failed)
    shown = json.loads(runs(tmp, "show", run_id, "--json").stdout)
    errors = sum(p["by_kind"]["put"]["errors"] for p in shown["phases"].values())
    total = sum(p["count"] for p in shown["phases"].values())
    store = SqliteRunStore(tmp / "results.db")
    try:
        log = store.query_entries(run_id)
    finally:
        store.close()
    assert len([e for e in log if e.sampled]) == min(30, total)
    errs = sorted((e for e in log if e.error is not None), key=lambda e: e.start_ns)
    # the five earliest failures are kept; any later one is there only as part of the sample
    assert len(errs[:5]) == min(5, errors)
    assert all(e.sampled for e in errs[5:])
    assert len(failed) == len(errs)


def test_show_and_export_carry_the_log(stored: tuple[Path, str]) -> None:
    tmp, run_id = stored
    shown = json.loads(runs(tmp, "show", run_id, "--json").stdout)
    five = shown["slowest_queries"]
    assert 4 <= len(five) <= 5  # scan's 4 (and put's, if one of its 3 succeeded then)
    assert five == entries(tmp, run_id, "--slowest", "5", "--phase", "measurement")
    text = runs(tmp, "show", run_id)
    assert text.returncode == 0 and f"slowest {len(five)} queries of MEASUREMENT" in text.stdout
    exported = json.loads(runs(tmp, "export", run_id, "--format", "json").stdout)
    assert exported["queries"] == entries(tmp, run_id)
    table = runs(tmp, "queries", run_id, "--errors")
    assert table.returncode == 0 and "UNIQUE" in table.stdout


def test_the_same_through_the_controller_paged(stored: tuple[Path, str]) -> None:
    tmp, run_id = stored
    proc, address = start_daemon(["--listen", "127.0.0.1:0"], env_for(tmp))
    try:
        remote = runs(tmp, "queries", run_id, "--json", "--controller", address)
        assert remote.returncode == 0, remote.stderr
        assert json.loads(remote.stdout) == entries(tmp, run_id)
        slow = cli(
            tmp, "runs", "queries", run_id, "--json", "--slowest", "3", "--controller", address
        )
        assert json.loads(slow.stdout) == entries(tmp, run_id, "--slowest", "3")
        with grpc.insecure_channel(address) as channel:
            stub = run_pb2_grpc.RunServiceStub(channel)
            got: list[common_pb2.QueryEntry] = []
            token = ""
            while True:
                page = stub.GetRunQueries(
                    run_pb2.GetRunQueriesRequest(run_id=run_id, page_size=7, page_token=token),
                    timeout=10,
                )
                assert len(page.entries) <= 7
                got.extend(page.entries)
                token = page.next_page_token
                if not token:
                    break
            assert [e.entry_id for e in got] == list(range(1, len(entries(tmp, run_id)) + 1))
            with pytest.raises(grpc.RpcError) as missing:
                stub.GetRunQueries(run_pb2.GetRunQueriesRequest(run_id="nope"), timeout=10)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as bad:
                stub.GetRunQueries(
                    run_pb2.GetRunQueriesRequest(run_id=run_id, page_token="x"), timeout=10
                )
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # profile reads the entry through the API (a SQLite run keeps no server profile)
        sqlite = runs(tmp, "profile", run_id, "1", "--controller", address)
        assert sqlite.returncode == 2 and "keeps no server-side profile" in sqlite.stderr
        gone = runs(tmp, "queries", "nope", "--controller", address)
        assert gone.returncode == 2 and gone.stderr.count("\n") == 1
    finally:
        proc.terminate()
        proc.wait(20)


def test_bad_input_is_one_line_and_a_documented_code(stored: tuple[Path, str]) -> None:
    tmp, run_id = stored
    for args, code, words in (
        (("queries", "nope"), 2, "no run"),
        (("queries", run_id, "--phase", "lunch"), 2, "unknown phase"),
        (("profile", "nope", "1"), 2, "no run"),
        (("profile", run_id, "99999"), 2, "no query log entry"),
        (("profile", run_id, "1"), 2, "keeps no server-side profile"),
    ):
        done = runs(tmp, *args)
        assert done.returncode == code, (args, done.stderr)
        said = [line for line in done.stderr.splitlines() if line.startswith(("error", "snowload"))]
        assert len(said) == 1 and words in said[0], done.stderr
        assert "Traceback" not in done.stderr


def test_the_schema_migration_keeps_older_databases(tmp_path: Path) -> None:
    """A results database of the previous schema gains the query log table, empty."""
    path = tmp_path / "old.db"
    store = SqliteRunStore(path)
    store.close()
    with sqlite3.connect(path) as db:
        for table in ("query_log", "run_tags", "second_cells", "second_schedules"):
            db.execute(f"DROP TABLE {table}")
        db.execute("PRAGMA user_version = 4")
    store = SqliteRunStore(path)
    try:
        assert store.schema_version == SCHEMA_VERSION
        assert store.query_entries("anything") == []
    finally:
        store.close()
