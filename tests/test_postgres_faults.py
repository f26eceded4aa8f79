"""PostgreSQL when things go wrong: no server, wrong password, bad SQL, constraint errors,
and secrets that must never show up anywhere.

Real parts only: the throwaway cluster from tests/pg.py, an in-process controller, real
worker processes whose stdout and stderr go to files so they can be searched.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import grpc
import psycopg
import pytest
from google.protobuf import json_format, text_format

from controller import lifecycle as lc
from controller.runs import ActiveRun
from controller.server import Controller, ControllerSettings
from snowload.v1 import common_pb2, run_pb2, run_pb2_grpc
from snowload.workload import Driver as DriverName
from snowload.workload import Target, WorkloadError, parse_toml
from tests.cluster import WorkerProcs, attached, run_to_end, worker_env, workload
from tests.pg import PASSWORD, PASSWORD_USER, PgCluster, free_port
from worker.drivers import DriverError, ErrorCategory
from worker.drivers.postgres import PostgresDriver

WRONG_PASSWORD = "Wr0ng-pAss-4451-not-it"

QUERY_WORKLOAD = """
name = "{name}"
[target]
driver = "postgres"
dsn = "{dsn}"
{setup}
[load]
workers = 1
connections = 2
warmup = "0s"
duration = "{duration}"
think_time = "1ms"
{queries}
"""


class LoggedWorkers(WorkerProcs):
    """Worker processes with stdout and stderr captured to files (and DEBUG logging)."""

    def __init__(self, address: str, env: dict[str, str], log_dir: Path) -> None:
        super().__init__(address, env)
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)

    def spawn(self, worker_id: str, *extra: str) -> subprocess.Popen[bytes]:
        with (
            open(self.log_dir / f"{worker_id}.out", "wb") as out,
            open(self.log_dir / f"{worker_id}.err", "wb") as err,
        ):
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "worker",
                    "--controller",
                    self.address,
                    "--id",
                    worker_id,
                    "--log-level",
                    "DEBUG",
                    *extra,
                ],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self.procs[worker_id] = proc
        return proc

    def output(self) -> str:
        """Everything the workers printed (call after stop_all for complete output)."""
        return "".join(
            p.read_text(encoding="utf-8", errors="replace") for p in sorted(self.log_dir.iterdir())
        )


@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await ctl.start()
    yield ctl
    await ctl.stop()


class SpawnWorker(Protocol):
    def __call__(self, worker_id: str, pgpassword: str | None = None) -> LoggedWorkers: ...


@pytest.fixture
def spawn_worker(controller: Controller, tmp_path: Path) -> Iterator[SpawnWorker]:
    started: list[LoggedWorkers] = []

    def spawn(worker_id: str, pgpassword: str | None = None) -> LoggedWorkers:
        env = worker_env(tmp_path / "home")
        env.pop("PGPASSWORD", None)
        env["PGPASSFILE"] = str(tmp_path / "no-such-pgpass")  # never the host's ~/.pgpass
        if pgpassword is not None:
            env["PGPASSWORD"] = pgpassword
        procs = LoggedWorkers(controller.address, env, tmp_path / "worker-logs")
        procs.spawn(worker_id)
        started.append(procs)
        return procs

    yield spawn
    for procs in started:
        procs.stop_all()


def password_dsn(pg: PgCluster) -> str:
    return f"host=127.0.0.1 port={pg.port} dbname=postgres user={PASSWORD_USER}"


def stored_text(controller: Controller, run_id: str) -> str:
    stored = controller.store.get(run_id)
    assert stored is not None
    return (
        text_format.MessageToString(stored)
        + json_format.MessageToJson(stored)
        + stored.SerializeToString().decode("utf-8", errors="replace")
    )


def assert_no_secrets(where: str, text: str) -> None:
    for secret in (PASSWORD, WRONG_PASSWORD):
        assert secret not in text, f"a password appears in {where}"


def measurement(controller: Controller, run: ActiveRun) -> common_pb2.PhaseSummary:
    stored = controller.store.get(run.run_id)
    assert stored is not None
    phases = {p.phase: p for p in stored.summary.phases}
    assert lc.MEASUREMENT in phases, stored.summary
    return phases[lc.MEASUREMENT]


# ------------------------------------------------------------------ connection failures


async def test_unreachable_host_fails_the_run_quickly(
    controller: Controller, spawn_worker: SpawnWorker
) -> None:
    spawn_worker("fault-closed-port")
    await attached(controller, 1)
    port = free_port()  # bound and closed again: nothing listens there
    text = QUERY_WORKLOAD.format(
        name="unreachable",
        dsn=f"host=127.0.0.1 port={port} dbname=postgres user=postgres",
        setup="",
        duration="1s",
        queries='[[query]]\nname = "one"\nsql = "SELECT 1"',
    )
    began = time.monotonic()
    run = await run_to_end(controller, workload(text), timeout_s=30)
    elapsed = time.monotonic() - began
    assert run.state == lc.FAILED
    assert run.reason == "target_unreachable", run.reason
    assert "connection" in run.message.lower(), run.message
    assert "refused" in run.message.lower(), run.message
    assert str(port) in run.message, run.message
    assert elapsed < 15, f"took {elapsed:.1f}s to give up on a closed port"
    assert lc.MEASUREMENT not in run.phase_ns, "load started against a closed port"


async def test_wrong_password_fails_without_leaking_it(
    pg: PgCluster,
    controller: Controller,
    spawn_worker: SpawnWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    procs = spawn_worker("fault-wrong-pw", pgpassword=WRONG_PASSWORD)
    await attached(controller, 1)
    log_start = len(pg.log_lines())
    text = QUERY_WORKLOAD.format(
        name="wrong-password",
        dsn=password_dsn(pg),
        setup="",
        duration="1s",
        queries='[[query]]\nname = "one"\nsql = "SELECT 1"',
    )
    run = await run_to_end(controller, workload(text), timeout_s=30)
    assert run.state == lc.FAILED
    assert run.reason == "auth_failed", run.reason  # not "unreachable": it answered no
    assert "password authentication failed" in run.message, run.message
    assert PASSWORD_USER in run.message, run.message

    procs.stop_all()
    # the captures are live: the worker's DEBUG log and the controller's log are in them
    assert "worker DEBUG" in procs.output()
    assert f"run {run.run_id}" in caplog.text
    assert_no_secrets("the run message", run.message)
    assert_no_secrets("the stored run", stored_text(controller, run.run_id))
    assert_no_secrets("the worker's output", procs.output())
    assert_no_secrets("the controller's logs", caplog.text)
    assert_no_secrets("the server log", "\n".join(pg.log_lines()[log_start:]))
    # the server did refuse this user's password (the worker did not give up earlier)
    assert any(
        f'password authentication failed for user "{PASSWORD_USER}"' in line
        for line in pg.log_lines()[log_start:]
    )


async def test_right_password_from_pgpassword_works_and_stays_secret(
    pg: PgCluster,
    controller: Controller,
    spawn_worker: SpawnWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    procs = spawn_worker("fault-right-pw", pgpassword=PASSWORD)
    await attached(controller, 1)
    log_start = len(pg.log_lines())
    text = QUERY_WORKLOAD.format(
        name="right-password",
        dsn=password_dsn(pg),
        setup="",
        duration="1s",
        queries='[[query]]\nname = "probe"\nsql = "SELECT 1 AS faults_pw_probe"',
    )
    run = await run_to_end(controller, workload(text), timeout_s=30)
    assert run.state == lc.COMPLETED, (run.reason, run.message)
    summary = measurement(controller, run)
    assert summary.overall.count > 0
    assert summary.overall.errors == 0

    # the queries ran as the password user, so PGPASSWORD was what authenticated them
    with pg.connect() as conn:
        row = conn.execute(
            "SELECT coalesce(sum(s.calls), 0)::int FROM pg_stat_statements s "
            "JOIN pg_roles r ON r.oid = s.userid "
            "WHERE r.rolname = %s AND s.query LIKE %s",
            (PASSWORD_USER, "%faults_pw_probe%"),
        ).fetchone()
    assert row is not None
    calls = row[0]
    assert isinstance(calls, int) and calls > 0, calls

    procs.stop_all()
    # the captures are live: the worker's DEBUG log and the controller's log are in them
    assert "worker DEBUG" in procs.output()
    assert f"run {run.run_id}" in caplog.text
    assert_no_secrets("the run message", run.message)
    assert_no_secrets("the stored run", stored_text(controller, run.run_id))
    assert_no_secrets("the worker's output", procs.output())
    assert_no_secrets("the controller's logs", caplog.text)
    assert_no_secrets("the server log", "\n".join(pg.log_lines()[log_start:]))


async def test_missing_password_fails_the_run(
    pg: PgCluster, controller: Controller, spawn_worker: SpawnWorker
) -> None:
    spawn_worker("fault-no-pw")  # no PGPASSWORD, and PGPASSFILE names no file
    await attached(controller, 1)
    text = QUERY_WORKLOAD.format(
        name="no-password",
        dsn=password_dsn(pg),
        setup="",
        duration="1s",
        queries='[[query]]\nname = "one"\nsql = "SELECT 1"',
    )
    run = await run_to_end(controller, workload(text), timeout_s=30)
    assert run.state == lc.FAILED
    assert run.reason == "auth_failed", run.reason
    assert "no password supplied" in run.message, run.message


async def test_a_dsn_libpq_does_not_understand_is_a_config_error(
    controller: Controller, spawn_worker: SpawnWorker
) -> None:
    spawn_worker("fault-bad-dsn")
    await attached(controller, 1)
    text = QUERY_WORKLOAD.format(
        name="bad-dsn",
        dsn=f"host=127.0.0.1 port={free_port()} dbname=postgres colour=blue",
        setup="",
        duration="1s",
        queries='[[query]]\nname = "one"\nsql = "SELECT 1"',
    )
    run = await run_to_end(controller, workload(text), timeout_s=30)
    assert run.state == lc.FAILED
    assert run.reason == "config_error", (run.reason, run.message)
    assert "colour" in run.message, run.message


def test_the_driver_classifies_connect_failures(
    pg: PgCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = PostgresDriver()
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-such-pgpass"))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    closed = f"host=127.0.0.1 port={free_port()} dbname=postgres user=postgres"
    cases = [
        (closed, None, ErrorCategory.NETWORK),
        (password_dsn(pg), WRONG_PASSWORD, ErrorCategory.AUTH),
        (password_dsn(pg), None, ErrorCategory.AUTH),
        (f"host=127.0.0.1 port={pg.port} dbname=postgres colour=blue", None, ErrorCategory.CONFIG),
    ]
    for dsn, password, category in cases:
        if password is None:
            monkeypatch.delenv("PGPASSWORD", raising=False)
        else:
            monkeypatch.setenv("PGPASSWORD", password)
        with pytest.raises(DriverError) as info:
            driver.connect(Target(DriverName.POSTGRES, dsn=dsn), 5.0)
        assert info.value.category == category, (dsn, password, str(info.value))
        assert_no_secrets("a driver error", str(info.value))
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    conn = driver.connect(Target(DriverName.POSTGRES, dsn=password_dsn(pg)), 5.0)
    conn.close()


# ------------------------------------------------------------------- statement errors


async def test_invalid_sql_is_counted_as_syntax_errors(
    pg: PgCluster, controller: Controller, spawn_worker: SpawnWorker
) -> None:
    spawn_worker("fault-bad-sql", pgpassword=PASSWORD)
    await attached(controller, 1)
    text = QUERY_WORKLOAD.format(
        name="bad-sql",
        dsn=password_dsn(pg),
        setup="",
        duration="2s",
        queries="""
[[query]]
name = "missing"
sql = "SELECT * FROM no_such_table WHERE k = ?"
params = [{ int = [1, 100] }]
[[query]]
name = "fine"
sql = "SELECT 1"
""",
    )
    run = await run_to_end(controller, workload(keep_going(text)), timeout_s=60)
    assert run.state == lc.COMPLETED, (run.reason, run.message)
    summary = measurement(controller, run)
    missing, fine = summary.by_kind["missing"], summary.by_kind["fine"]
    assert missing.count > 0
    assert missing.errors == missing.count, "some query on a missing table succeeded"
    assert fine.count > 0 and fine.errors == 0
    assert dict(summary.errors_by_category) == {"syntax": missing.errors}

    stored = controller.store.get(run.run_id)
    assert stored is not None
    samples = [s for s in stored.error_samples if s.category == "syntax"]
    assert samples, stored.error_samples
    assert any('relation "no_such_table" does not exist' in s.message for s in samples), samples
    assert {s.category for s in stored.error_samples} == {"syntax"}
    assert {s.kind for s in stored.error_samples} == {"missing"}  # samples name their kind
    for s in stored.error_samples:
        assert_no_secrets("an error sample", s.message)


def keep_going(text: str) -> str:
    """[load] on_query_failure = "continue": run to the end whatever fails."""
    return text.replace('think_time = "1ms"', 'think_time = "1ms"\non_query_failure = "continue"')


async def test_a_query_failing_from_the_start_ends_the_run_early_naming_it(
    pg: PgCluster, controller: Controller, spawn_worker: SpawnWorker
) -> None:
    """The default on_query_failure: a typo'd table fails the run (query_failed) within
    seconds instead of sending doomed statements to the server for the whole duration."""
    spawn_worker("fault-query-failed")
    await attached(controller, 1)
    text = QUERY_WORKLOAD.format(
        name="query-failed",
        dsn=pg.dsn,
        setup="",
        duration="60s",
        queries="""
[[query]]
name = "typo"
sql = "SELECT * FROM no_such_tabel WHERE k = ?"
params = [{ int = [1, 100] }]
[[query]]
name = "fine"
sql = "SELECT 1"
""",
    )
    log_start = len(pg.log_lines())
    began = time.monotonic()
    run = await run_to_end(controller, workload(text), timeout_s=60)
    elapsed = time.monotonic() - began
    assert run.state == lc.FAILED
    assert run.reason == "query_failed", (run.reason, run.message)
    assert "'typo'" in run.message and 'relation "no_such_tabel" does not exist' in run.message
    assert elapsed < 20, f"took {elapsed:.1f}s of a 60 s run to give up"
    # the server saw the doomed statement, and then no more of it (the oracle: its log)
    attempts = [line for line in pg.log_lines()[log_start:] if "no_such_tabel" in line]
    assert attempts
    await asyncio.sleep(1.0)  # (absence takes a while to show)
    assert len([line for line in pg.log_lines()[log_start:] if "no_such_tabel" in line]) == len(
        attempts
    )
    proto = run.to_proto()
    assert [(s.kind, s.category) for s in proto.error_samples][:1] == [("typo", "syntax")]


async def test_constraint_violations_are_counted_as_constraint_errors(
    pg: PgCluster, controller: Controller, spawn_worker: SpawnWorker
) -> None:
    spawn_worker("fault-dup-key")
    await attached(controller, 1)
    text = QUERY_WORKLOAD.format(
        name="dup-key",
        dsn=pg.dsn,
        setup="""[setup]
sql = [
  "DROP TABLE IF EXISTS faults_dup",
  "CREATE TABLE faults_dup (k INT PRIMARY KEY)",
  "INSERT INTO faults_dup (k) VALUES (1)",
]""",
        duration="2s",
        queries="""
[[query]]
name = "dup"
sql = "INSERT INTO faults_dup (k) VALUES (?)"
params = [{ choice = [1] }]
""",
    )
    run = await run_to_end(controller, workload(keep_going(text)), timeout_s=60)
    assert run.state == lc.COMPLETED, (run.reason, run.message)
    summary = measurement(controller, run)
    dup = summary.by_kind["dup"]
    assert dup.count > 0
    assert dup.errors == dup.count
    assert dict(summary.errors_by_category) == {"constraint": dup.errors}
    stored = controller.store.get(run.run_id)
    assert stored is not None
    assert {s.category for s in stored.error_samples} == {"constraint"}
    assert any(
        "duplicate key value violates unique constraint" in s.message for s in stored.error_samples
    )
    with pg.connect() as conn:
        row = conn.execute("SELECT count(*) FROM faults_dup").fetchone()
    assert row == (1,)


# ------------------------------------------------------------ passwords in workload files


DSNS_WITH_PASSWORD = [
    "host=127.0.0.1 dbname=postgres user=u password=hunter2-xyz",
    "host=127.0.0.1 dbname=postgres user=u password = 'hunter2-xyz'",
    "postgresql://u:hunter2-xyz@127.0.0.1/postgres",
    "postgres://u:hunter2-xyz@127.0.0.1:5432/postgres?sslmode=disable",
    "postgresql://u@127.0.0.1/postgres?password=hunter2-xyz",
]

# libpq reads a secret from these as well: the workload check must see through them
DSNS_WITH_PASSWORD_MISSED = [
    "postgresql://:hunter2-xyz@127.0.0.1/postgres",
    "postgresql://u@127.0.0.1/postgres?pass%77ord=hunter2-xyz",
    "host=127.0.0.1 dbname=postgres user=u sslpassword=hunter2-xyz",
]


def password_workload(dsn: str) -> str:
    return f"""
name = "dsn-password"
[target]
driver = "postgres"
dsn = "{dsn}"
[[query]]
name = "one"
sql = "SELECT 1"
"""


@pytest.mark.parametrize("dsn", DSNS_WITH_PASSWORD)
def test_a_dsn_with_a_password_is_refused_at_parse_time(dsn: str) -> None:
    assert psycopg.conninfo.conninfo_to_dict(dsn)["password"] == "hunter2-xyz"
    with pytest.raises(WorkloadError) as info:
        parse_toml(password_workload(dsn), source="secret.toml")
    assert info.value.field_path == "target.dsn"
    assert "target.dsn" in str(info.value)
    assert "PGPASSWORD" in str(info.value)
    assert "hunter2-xyz" not in str(info.value)


@pytest.mark.parametrize("dsn", DSNS_WITH_PASSWORD_MISSED)
def test_a_dsn_with_a_disguised_password_is_refused_at_parse_time(dsn: str) -> None:
    assert "hunter2-xyz" in psycopg.conninfo.conninfo_to_dict(dsn).values()
    with pytest.raises(WorkloadError) as info:
        parse_toml(password_workload(dsn), source="secret.toml")
    assert info.value.field_path == "target.dsn"


# key=value form, but a value contains "://": dsn_has_secret (snowload/workload.py) takes
# it for a URL (it tests `"://" in dsn`, libpq tests the postgresql:// or postgres://
# prefix), finds no user:password@ and no query, and lets the password through
DSNS_WITH_PASSWORD_STILL_MISSED = [
    "host=127.0.0.1 dbname=postgres user=u password=hunter2-xyz application_name=a://b",
    "host=127.0.0.1 dbname=postgres user=u sslrootcert=file://x password=hunter2-xyz",
]


@pytest.mark.parametrize("dsn", DSNS_WITH_PASSWORD_STILL_MISSED)
def test_a_keyword_dsn_with_a_url_like_value_is_still_checked(dsn: str) -> None:
    assert psycopg.conninfo.conninfo_to_dict(dsn)["password"] == "hunter2-xyz"
    with pytest.raises(WorkloadError) as info:
        parse_toml(password_workload(dsn), source="secret.toml")
    assert info.value.field_path == "target.dsn"


@pytest.mark.parametrize("key", ["password", "sslpassword"])
def test_a_password_in_postgres_options_is_refused_at_parse_time(key: str) -> None:
    # the driver hands target.options to libpq (make_conninfo), so this would log in
    text = password_workload("host=127.0.0.1 dbname=postgres user=u").replace(
        "[[query]]", f'[target.options]\n{key} = "hunter2-xyz"\n[[query]]'
    )
    with pytest.raises(WorkloadError) as info:
        parse_toml(text, source="secret.toml")
    assert info.value.field_path == f"target.options.{key}"
    assert "hunter2-xyz" not in str(info.value)


async def test_start_run_refuses_a_dsn_with_a_password(controller: Controller) -> None:
    async with grpc.aio.insecure_channel(controller.address) as channel:
        stub = run_pb2_grpc.RunServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.StartRun(
                run_pb2.StartRunRequest(
                    workload_toml=password_workload(DSNS_WITH_PASSWORD[0]),
                    source_name="secret.toml",
                ),
                timeout=10,
            )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "target.dsn" in (info.value.details() or "")
    assert "hunter2-xyz" not in (info.value.details() or "")
    assert controller.runs.active == {}
