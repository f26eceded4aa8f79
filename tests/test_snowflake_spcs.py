"""``connection = "spcs"``: the Snowflake driver inside Snowpark Container Services logs in
with OAuth, reading the token file for every new connection, at the host, port, account,
database and schema of the SNOWFLAKE_* variables. Here fakesnow's server stands in for
SNOWFLAKE_HOST/PORT (behind the recording proxy, tests/sf_recorder.py) and a temporary
file for /snowflake/session/token (SNOWLOAD_SPCS_TOKEN_FILE, a test-only override)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from controller import lifecycle as lc
from controller.server import Controller, ControllerSettings
from snowload.workload import Driver, Target
from tests.cluster import WorkerProcs, attached, wait_for, worker_env, workload
from tests.sf_recorder import Recorded, SnowflakeRecorder
from worker.drivers import DriverError, ErrorCategory, spcs
from worker.drivers.snowflake import connect_kwargs

WORKLOAD = """
name = "spcs-oauth"
[target]
driver = "snowflake"   # no connection: inside SPCS (token file + SNOWFLAKE_*), "spcs"
[setup]
sql = [
  "CREATE DATABASE IF NOT EXISTS SLDB",
  "CREATE OR REPLACE TABLE SLDB.PUBLIC.spcs_t (id INT)",
  "INSERT INTO SLDB.PUBLIC.spcs_t VALUES (1)",
]
[load]
workers = 1
connections = 3
max_parallel_connects = 1
warmup = "0s"
duration = "1s"
think_time = "20ms"
ready_timeout = "60s"
[[query]]
name = "one"
sql = "SELECT id FROM SLDB.PUBLIC.spcs_t WHERE id = ?"
params = [{ int = [1, 1] }]
"""


@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    """Nothing here is about worker loss: a generous loss timeout keeps a starved worker
    on a busy 2-core host from failing the run as worker_lost."""
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0", loss_timeout_s=15.0))
    await ctl.start()
    yield ctl
    await ctl.stop()


@pytest.fixture
def recorder(fakesnow_port: int) -> Iterator[SnowflakeRecorder]:
    rec = SnowflakeRecorder(fakesnow_port)
    rec.start()
    yield rec
    rec.close()


def spcs_env(token_file: Path, port: int) -> dict[str, str]:
    return {
        "SNOWFLAKE_HOST": "127.0.0.1",
        "SNOWFLAKE_PORT": str(port),
        "SNOWFLAKE_ACCOUNT": "spcsacct",
        "SNOWFLAKE_DATABASE": "SLDB",
        "SNOWFLAKE_SCHEMA": "PUBLIC",
        spcs.TOKEN_FILE_ENV: str(token_file),
        spcs.PROTOCOL_ENV: "http",
    }


def logins(rec: SnowflakeRecorder) -> list[Recorded]:
    return rec.logins()


async def test_every_login_carries_the_token_of_its_moment(
    controller: Controller, recorder: SnowflakeRecorder, tmp_path: Path
) -> None:
    """A workload that names no connection, on a host with the SPCS token file and
    variables, logs in as the service. The token is rotated while the run opens its
    connections (one at a time, 0.7 s apart): a login that reached the server before the
    rotation carries the old token, one that carries the new token reached it after, and
    later connections do carry it.
    Fails if the token is read once per process (or cached per driver), if another
    authenticator or a connections.toml entry is used, or if the SNOWFLAKE_* address,
    account, database and schema are not the ones the connector logs in with."""
    token_file = tmp_path / "token"
    token_file.write_text("token-A-1111\n")
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    empty_home = tmp_path / "sfhome"  # no connections.toml at all
    empty_home.mkdir()
    procs.env.update(spcs_env(token_file, recorder.port), SNOWFLAKE_HOME=str(empty_home))
    procs.spawn("spcs-0", "--connect-delay", "0.7s")
    try:
        await attached(controller, 1)
        run = controller.runs.start(workload(WORKLOAD))
        assert run.task is not None
        await wait_for(lambda: len(logins(recorder)) >= 2, 30, "the first load login")
        rotated_ns = time.time_ns()
        token_file.write_text("token-B-2222\n")
        await asyncio.wait_for(asyncio.shield(run.task), 60)
    finally:
        procs.stop_all()
    assert run.state == lc.COMPLETED, run.message
    seen = logins(recorder)
    assert len(seen) >= 4  # the setup worker's own connection and the three load ones
    carried: list[tuple[int, str]] = []
    for login in seen:
        data: dict[str, Any] = login.body["data"]
        assert data["AUTHENTICATOR"] == "OAUTH"
        assert "PASSWORD" not in data
        assert data["ACCOUNT_NAME"] == "spcsacct"
        query = parse_qs(urlsplit(login.path).query)
        assert query["databaseName"] == ["SLDB"] and query["schemaName"] == ["PUBLIC"]
        assert "warehouse" not in query  # the service's query warehouse applies
        carried.append((login.time_ns, data["TOKEN"]))
    assert {token for _, token in carried} == {"token-A-1111", "token-B-2222"}
    for arrived, token in carried:
        if arrived < rotated_ns:
            assert token == "token-A-1111"
        if token == "token-B-2222":
            assert arrived > rotated_ns
    # the load connections after the rotation logged in with the new token
    assert carried[-1][1] == "token-B-2222"
    # the token travels only in logins
    for r in recorder.snapshot():
        if not r.path.startswith("/session/v1/login-request"):
            assert "token-A-1111" not in str(r.body) and "token-B-2222" not in str(r.body)


def target(connection: str, **options: Any) -> Target:
    return Target(Driver.SNOWFLAKE, connection=connection, options=options)


def test_spcs_is_the_default_only_where_its_token_and_variables_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tok")
    for name, value in spcs_env(token_file, 443).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(spcs.PROTOCOL_ENV)
    kwargs = connect_kwargs(target(""), 10)
    assert kwargs["authenticator"] == "oauth" and kwargs["token"] == "tok"
    assert (kwargs["host"], kwargs["port"], kwargs["account"], kwargs["protocol"]) == (
        "127.0.0.1",
        443,
        "spcsacct",
        "https",
    )
    assert "connection_name" not in kwargs and "warehouse" not in kwargs
    # the workload's options win over the service's context
    kwargs = connect_kwargs(target("spcs", warehouse="LOAD_WH", schema="S2"), 10)
    assert (kwargs["warehouse"], kwargs["schema"], kwargs["database"]) == ("LOAD_WH", "S2", "SLDB")
    # a named connection is never replaced by the service's login
    kwargs = connect_kwargs(target("fake"), 10)
    assert kwargs["connection_name"] == "fake" and "token" not in kwargs


@pytest.mark.parametrize(
    ("drop", "named"),
    [
        ("token", "the token file"),
        ("SNOWFLAKE_HOST", "$SNOWFLAKE_HOST"),
        ("SNOWFLAKE_ACCOUNT", "$SNOWFLAKE_ACCOUNT"),
    ],
)
@pytest.mark.parametrize("connection", ["spcs", ""])
def test_what_is_missing_for_spcs_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, drop: str, named: str, connection: str
) -> None:
    token_file = tmp_path / "token"
    for name, value in spcs_env(token_file, 443).items():
        monkeypatch.setenv(name, value)
    if drop == "token":
        token_file.unlink(missing_ok=True)
    else:
        token_file.write_text("tok")
        monkeypatch.delenv(drop)
    with pytest.raises(DriverError) as err:
        connect_kwargs(target(connection), 10)
    assert err.value.category is ErrorCategory.CONFIG
    message = str(err.value)
    assert named in message and "Snowpark Container Services" in message
    if drop == "token":
        assert str(token_file) in message
