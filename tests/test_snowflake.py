"""The real snowflake connector against a local fakesnow server (DuckDB underneath).

fakesnow has no query history and ignores tags; what it proves is the connector code path:
connections.toml, login, binds, errors, READY and a whole run through real workers.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from snowflake.connector import errors as sferrors

from controller import lifecycle as lc
from controller.server import Controller, ControllerSettings
from snowload.v1 import common_pb2
from snowload.workload import Driver as DriverName
from snowload.workload import Query, Target, WorkloadError, parse_toml
from tests.cluster import WorkerProcs, attached, run_to_end, worker_env, workload
from tests.fakesnow import SECRET
from worker.drivers import (
    DriverError,
    ErrorCategory,
    PrepareFailure,
    get_driver,
    prepare_failure,
)
from worker.drivers.snowflake import SnowflakeDriver, connect_kwargs
from worker.tags import Tag


def test_connect_kwargs_are_finite_fresh_and_secret_free() -> None:
    target = Target(
        driver=DriverName.SNOWFLAKE,
        connection="prod",
        options={"warehouse": "LOAD_WH", "session_parameters": {"USE_CACHED_RESULT": "TRUE"}},
    )
    a = connect_kwargs(target, 10)
    b = connect_kwargs(target, 10)
    assert a["connection_name"] == "prod"
    assert a["warehouse"] == "LOAD_WH"
    assert a["login_timeout"] == 10 and a["network_timeout"] and a["socket_timeout"]
    assert a["platform_detection_timeout_seconds"] == 0
    assert a["client_session_keep_alive"] is False
    assert a["paramstyle"] == "qmark"
    assert a["session_parameters"] == {"USE_CACHED_RESULT": "TRUE"}  # overridable
    assert a["session_parameters"] is not b["session_parameters"]  # fresh per connection
    default = connect_kwargs(Target(driver=DriverName.SNOWFLAKE, connection="x"), 5)
    assert default["session_parameters"] == {"USE_CACHED_RESULT": "FALSE"}
    with pytest.raises(DriverError, match="unsupported snowflake option"):
        connect_kwargs(
            Target(driver=DriverName.SNOWFLAKE, connection="x", options={"host": "h"}), 5
        )


def test_credits_follow_size_clusters_and_time() -> None:
    from snowload.credits import credits_between

    sample = common_pb2.WarehouseSample(size="Large", state="STARTED", started_clusters=3)
    assert credits_between(sample, 3600) == 24  # 8 credits/h x 3 clusters
    assert credits_between(sample, 450) == 3
    suspended = common_pb2.WarehouseSample(size="Large", state="SUSPENDED", started_clusters=0)
    assert credits_between(suspended, 3600) == 0


def test_credentials_in_workload_files_are_refused() -> None:
    text = """
name = "x"
[target]
driver = "snowflake"
connection = "prod"
options = { password = "hunter2" }
[[query]]
name = "q"
sql = "SELECT 1"
"""
    with pytest.raises(WorkloadError, match=r"connections\.toml"):
        parse_toml(text, "w.toml")


@pytest.mark.parametrize("path", ["lean", "connector"])
def test_connect_execute_bind_and_classify(snowflake_home: Path, path: str) -> None:
    driver = get_driver(DriverName.SNOWFLAKE)
    target = Target(DriverName.SNOWFLAKE, connection="fake", options={"statement_path": path})
    conn = driver.connect(target, 10)
    assert type(conn).__name__ == (
        "LeanSnowflakeConnection" if path == "lean" else "SnowflakeConnection"
    )
    try:
        conn.execute_script(
            [
                "CREATE DATABASE IF NOT EXISTS SLDB",
                "CREATE OR REPLACE TABLE SLDB.PUBLIC.kv (k INT, v TEXT)",
                "INSERT INTO SLDB.PUBLIC.kv VALUES (1, 'a'), (2, 'b')",
            ]
        )
        tag = Tag("0123456789ab", 1, common_pb2.STATE_MEASUREMENT, "get")
        compiled = conn.compile(
            Query(name="get", sql="SELECT v FROM SLDB.PUBLIC.kv WHERE k = ?"), tag
        )
        assert compiled[1] == {"QUERY_TAG": "sl/01234567/w1/M/get"}
        conn.execute(compiled, (2,))
        first = conn.server_id()
        assert first
        if path == "connector":
            assert first == conn._cursor.sfqid  # type: ignore[attr-defined]
        conn.execute(compiled, (2,))
        assert conn.server_id() not in ("", first)  # each statement's own id
        assert conn.query("SELECT v FROM SLDB.PUBLIC.kv WHERE k = ?", (2,)) == [("b",)]
        # a hostile value is bound, not interpolated
        hostile = "a' OR '1'='1"
        assert conn.query("SELECT k FROM SLDB.PUBLIC.kv WHERE v = ?", (hostile,)) == []
        for sql, category in (
            ("SELEC 1", ErrorCategory.SYNTAX),
            ("SELECT * FROM SLDB.PUBLIC.nope", ErrorCategory.SYNTAX),
        ):
            with pytest.raises(sferrors.Error) as info:
                conn.execute((sql, {}), ())
            assert driver.classify(info.value) is category
    finally:
        conn.close()


def test_error_categories_of_real_connector_exceptions() -> None:
    driver = SnowflakeDriver()
    cases = [
        (sferrors.DatabaseError(msg="Incorrect username or password", errno=390100), "auth"),
        (sferrors.ProgrammingError(msg="dup", errno=100072, sqlstate="23000"), "constraint"),
        (sferrors.ProgrammingError(msg="cancelled", errno=604, sqlstate="57014"), "timeout"),
        (sferrors.ProgrammingError(msg="locked", errno=625), "lock"),
        (sferrors.OperationalError(msg="connection reset", errno=250003), "network"),
        (sferrors.ProgrammingError(msg="syntax error", errno=1003, sqlstate="42000"), "syntax"),
    ]
    for exc, want in cases:
        assert driver.classify(exc).value == want, exc


def test_unknown_connection_and_unreachable_host_fail_fast(snowflake_home: Path) -> None:
    driver = SnowflakeDriver()
    with pytest.raises(DriverError) as info:
        driver.connect(Target(driver=DriverName.SNOWFLAKE, connection="missing"), 5)
    assert "missing" in str(info.value)
    # a name connections.toml does not have: a configuration problem on this host, and
    # a run fails with its own reason rather than "unreachable"
    assert info.value.category is ErrorCategory.CONFIG
    assert prepare_failure(info.value) is PrepareFailure.CONFIG_ERROR
    began = time.monotonic()
    with pytest.raises(DriverError) as info:
        driver.connect(Target(driver=DriverName.SNOWFLAKE, connection="unreachable"), 3)
    assert time.monotonic() - began < 30  # finite login timeout
    assert info.value.category in (ErrorCategory.NETWORK, ErrorCategory.TIMEOUT)
    assert prepare_failure(info.value) is PrepareFailure.TARGET_UNREACHABLE
    assert SECRET not in str(info.value)


WORKLOAD = """
name = "sf-e2e"
[target]
driver = "snowflake"
connection = "{connection}"
options = {{ login_timeout = 5 }}
[setup]
sql = [
  "CREATE DATABASE IF NOT EXISTS SLDB",
  "CREATE OR REPLACE TABLE SLDB.PUBLIC.orders (id INT, total FLOAT)",
  "INSERT INTO SLDB.PUBLIC.orders VALUES (1, 1.5), (2, 2.5), (3, 3.5)",
]
[load]
workers = 1
connections = 2
warmup = "1s"
duration = "2s"
ready_timeout = "30s"
[[query]]
name = "lookup"
sql = "SELECT total FROM SLDB.PUBLIC.orders WHERE id = ?"
params = [{{ int = [1, 3] }}]
"""


@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await ctl.start()
    yield ctl
    await ctl.stop()


async def test_a_whole_run_through_real_workers(
    controller: Controller, snowflake_home: Path, tmp_path: Path
) -> None:
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    procs.env["SNOWFLAKE_HOME"] = str(snowflake_home)
    procs.spawn("sf-worker")
    try:
        await attached(controller, 1)
        run = await run_to_end(controller, workload(WORKLOAD.format(connection="fake")))
        assert run.state == lc.COMPLETED, run.message
        # fakesnow has no INFORMATION_SCHEMA.QUERY_HISTORY: enrichment fails, the run does not
        assert run.enrichment == common_pb2.ENRICHMENT_STATUS_FAILED
        assert run.server.message
        summary = {p.phase: p for p in run.summary().phases}
        assert summary[lc.MEASUREMENT].overall.count > 0
        assert summary[lc.MEASUREMENT].overall.errors == 0
        assert summary[lc.WARMUP].overall.count > 0
        # the setup worker polled the warehouse: snapshot, series and a credit estimate
        proto = run.to_proto()
        assert proto.warehouse.name == "FAKESNOW_WAREHOUSE"
        assert proto.warehouse.size == "X-Small"
        assert proto.warehouse.started_clusters == 1
        assert any(p.HasField("warehouse") for p in run.metrics.series_protos())
        first = run.metrics.warehouse.first
        assert first is not None
        seconds = (run.end_ns - first.sample_time.ToNanoseconds()) / 1e9
        assert proto.credits == pytest.approx(seconds / 3600, rel=0.05)  # 1 credit/h, 1 cluster
        # the query log names each query by the query id the server gave it
        logged = controller.runs.store.query_entries(run.run_id)
        ids = [e.server_id for e in logged]
        assert logged and all(ids) and len(set(ids)) == len(ids)

        failed = await run_to_end(controller, workload(WORKLOAD.format(connection="unreachable")))
        assert failed.state == lc.FAILED
        assert failed.reason == "target_unreachable"
        # no secret anywhere the run is shown or stored
        for text in (failed.message, failed.to_proto().SerializeToString().decode("latin-1")):
            assert SECRET not in text
    finally:
        procs.stop_all()
