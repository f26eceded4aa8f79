"""What the real snowflake connector sends, recorded between it and fakesnow
(tests/sf_recorder.py) during a whole run through a real worker: every statement's
QUERY_TAG, its bind values, and the session settings the README promises.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller import lifecycle as lc
from controller.runs import ActiveRun
from controller.server import Controller
from tests.cluster import WorkerProcs, attached, run_to_end, worker_env, workload
from tests.fakesnow import SECRET
from tests.sf_recorder import Recorded, SnowflakeRecorder
from worker.tags import parse_compact

LOOKUP = "SELECT total FROM SLDB.PUBLIC.wire_orders WHERE id = ?"
BY_NAME = "SELECT count(*) FROM SLDB.PUBLIC.wire_orders WHERE name = ? AND total < ?"
NAMES = ("ann", "bob", "o'hara")
KIND_OF = {LOOKUP: "lookup", BY_NAME: "by_name"}

WORKLOAD = f"""
name = "sf-wire"
[target]
driver = "snowflake"
connection = "recorded"
options = {{ login_timeout = 7, statement_path = "{{path}}" }}
[setup]
sql = [
  "CREATE DATABASE IF NOT EXISTS SLDB",
  "CREATE OR REPLACE TABLE SLDB.PUBLIC.wire_orders (id INT, name TEXT, total FLOAT)",
  "INSERT INTO SLDB.PUBLIC.wire_orders VALUES (1, 'ann', 1.5), (2, 'bob', 2.5)",
]
[load]
workers = 1
connections = 2
warmup = "1s"
duration = "2s"
think_time = "5ms"
ready_timeout = "30s"
[[query]]
name = "lookup"
sql = "{LOOKUP}"
params = [{{ int = [1, 3] }}]
[[query]]
name = "by_name"
sql = "{BY_NAME}"
params = [{{ choice = ["ann", "bob", "o'hara"] }}, {{ float = [0.5, 9.5] }}]
"""

CLOCK_SLACK_MS = 5
"""Phase instants are on the controller's clock, querySubmissionTime on the worker's
(the same host here) in whole milliseconds."""


@pytest.fixture
def recorder(fakesnow_port: int) -> Iterator[SnowflakeRecorder]:
    rec = SnowflakeRecorder(fakesnow_port)
    rec.start()
    yield rec
    rec.close()


def sf_home(tmp: Path, port: int) -> Path:
    home = tmp / "sfhome"
    home.mkdir()
    toml = home / "connections.toml"
    toml.write_text(
        f"""
[recorded]
account = "fakesnow"
user = "loadtester"
password = "{SECRET}"
host = "127.0.0.1"
port = {port}
protocol = "http"
database = "SLDB"
schema = "PUBLIC"
""",
        encoding="utf-8",
    )
    toml.chmod(0o600)
    return home


@pytest.mark.parametrize("path", ["lean", "connector"])
async def test_what_goes_over_the_wire(
    controller: Controller, recorder: SnowflakeRecorder, tmp_path: Path, path: str
) -> None:
    """One run, three checks (each names the regressions it catches), on each statement
    path (``options.statement_path``)."""
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    procs.env["SNOWFLAKE_HOME"] = str(sf_home(tmp_path, recorder.port))
    procs.spawn("sf-wire")
    try:
        await attached(controller, 1)
        run = await run_to_end(controller, workload(WORKLOAD.replace("{path}", path)))
    finally:
        procs.stop_all()
    assert run.state == lc.COMPLETED, run.message
    requests = recorder.snapshot()
    check_every_statement_carries_the_tag_of_its_phase_and_kind(run, requests)
    check_values_are_bound_server_side_never_interpolated(requests)
    check_sessions_open_with_the_promised_settings(requests)
    check_the_path_that_sent_the_load(requests, path)


def load_queries(requests: list[Recorded]) -> list[dict[str, Any]]:
    return [
        r.body
        for r in requests
        if r.path.startswith("/queries/v1/query-request") and r.body.get("sqlText") in KIND_OF
    ]


def check_every_statement_carries_the_tag_of_its_phase_and_kind(
    run: ActiveRun, requests: list[Recorded]
) -> None:
    """Fails if QUERY_TAG is not sent with each statement (dropped, or set only in a
    session the connector never sends), names another kind, worker or run, or names a
    phase other than the one in force when the statement was submitted."""
    proto = run.to_proto()
    start = proto.start_time.ToMilliseconds()
    m_start = proto.measurement_start_time.ToMilliseconds()
    m_end = proto.measurement_end_time.ToMilliseconds()
    queries = load_queries(requests)
    assert queries
    seen: Counter[tuple[int, str]] = Counter()
    for body in queries:
        kind = KIND_OF[body["sqlText"]]
        tag_text = (body.get("parameters") or {}).get("QUERY_TAG")
        assert tag_text, f"statement sent without QUERY_TAG: {body}"
        tag = parse_compact(tag_text)
        assert tag is not None, tag_text
        assert (tag.run_short, tag.worker_index, tag.kind) == (run.run_id[:8], 0, kind)
        sent = int(body["querySubmissionTime"])
        bounds = {
            lc.WARMUP: (start, m_start),
            lc.MEASUREMENT: (m_start, m_end),
            lc.PROCESSING: (m_end, None),
        }
        assert tag.phase in bounds, tag_text
        lo, hi = bounds[tag.phase]
        assert sent >= lo - CLOCK_SLACK_MS, (tag_text, sent - lo)
        if hi is not None:  # (submitted a little after its issue time, never before)
            assert sent <= hi + 1000, (tag_text, sent - hi)
        seen[(tag.phase, kind)] += 1
    assert {k for k in seen if k[0] == lc.MEASUREMENT} == {
        (lc.MEASUREMENT, "lookup"),
        (lc.MEASUREMENT, "by_name"),
    }
    assert seen[(lc.WARMUP, "lookup")] > 0
    # every statement on the wire is counted once, in the phase its tag names
    merged = Counter({key: cell.count for key, cell in run.metrics.cells.items()})
    assert seen == merged
    # and no statement changed the session's tag behind the workload's back
    altered = [str(r.body.get("sqlText", "")).upper() for r in requests]
    assert not [sql for sql in altered if "ALTER SESSION" in sql and "QUERY_TAG" in sql]


def check_values_are_bound_server_side_never_interpolated(requests: list[Recorded]) -> None:
    """Fails if parameters are interpolated into the SQL text (client-side binding, the
    connector's default pyformat) or bound with the wrong type or out of their range."""
    for body in load_queries(requests):
        bindings = body.get("bindings")
        assert bindings, body
        if body["sqlText"] == LOOKUP:
            assert set(bindings) == {"1"}
            assert bindings["1"]["type"] == "FIXED"
            assert 1 <= int(bindings["1"]["value"]) <= 3
        else:
            assert set(bindings) == {"1", "2"}
            assert bindings["1"]["type"] == "TEXT" and bindings["1"]["value"] in NAMES
            assert bindings["2"]["type"] == "REAL"
            assert 0.5 <= float(bindings["2"]["value"]) <= 9.5


def check_sessions_open_with_the_promised_settings(requests: list[Recorded]) -> None:
    """Fails if the result cache stays on, a timeout is infinite or missing, the
    keep-alive heartbeat is switched on, or the password leaks into anything but the
    login request."""
    logins = [r.body["data"] for r in requests if r.path.startswith("/session/v1/login-request")]
    assert len(logins) >= 2  # the two load connections (and the setup worker's own)
    for data in logins:
        params = data["SESSION_PARAMETERS"]
        assert str(params["USE_CACHED_RESULT"]).upper() == "FALSE"
        assert params.get("CLIENT_SESSION_KEEP_ALIVE") is False
        env = data["CLIENT_ENVIRONMENT"]
        assert env["LOGIN_TIMEOUT"] == 7
        for name in ("NETWORK_TIMEOUT", "SOCKET_TIMEOUT"):
            assert isinstance(env[name], int) and 0 < env[name] <= 600, (name, env[name])
    for r in requests:
        if not r.path.startswith("/session/v1/login-request"):
            assert SECRET not in str(r.body)


def check_the_path_that_sent_the_load(requests: list[Recorded], path: str) -> None:
    """Which client sent the load statements: the connector gzips every request body,
    the lean path not below 16 KiB; both send the connector's User-Agent and Accept.
    Fails if the option is ignored (one path serves both) or a header is lost."""
    load = [
        r
        for r in requests
        if r.path.startswith("/queries/v1/query-request") and r.body.get("sqlText") in KIND_OF
    ]
    headers = [{k.lower(): v for k, v in r.headers.items()} for r in load]
    assert {h.get("content-encoding") == "gzip" for h in headers} == {path == "connector"}
    for h in headers:
        assert h["accept"] == "application/snowflake"
        assert h["user-agent"].startswith("PythonConnector/")
        assert h["authorization"].startswith('Snowflake Token="')
