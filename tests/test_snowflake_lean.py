"""The lean statement path (worker/drivers/snowflake_lean.py): load statements over
snowload's own HTTP client on the connector's session.

Against fakesnow's real server: values bound server side, checked through the rows they
select. Against a stand-in (tests/sf_standin.py), at the HTTP level: every statement
carries the session's current token and its exact QUERY_TAG; an expired session is
renewed through the connector and the statement sent once more; chunked results are
downloaded with their chunk headers; in-progress answers are polled; 503s are retried
with the same request id; refusals raise what the connector raises for them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector
from snowflake.connector import errors as sferrors

from snowload.workload import Driver, Query, Target, WorkloadError, parse_toml
from tests.sf_standin import MASTER, SnowflakeStandIn
from worker.drivers import ErrorCategory, get_driver
from worker.drivers.snowflake import SnowflakeConnection, SnowflakeDriver
from worker.drivers.snowflake_lean import LeanSnowflakeConnection, request_id
from worker.tags import Tag

TAG = Tag("0123456789ab", 2, 4, "kind")


def lean_target(**options: Any) -> Target:
    return Target(
        Driver.SNOWFLAKE, connection="fake", options={"statement_path": "lean", **options}
    )


# -- fakesnow: bound values, through the rows they select -----------------------------------


ROWS = [  # (as the INSERT below writes them)
    (1, "ann", 1.5, True, dt.date(2026, 1, 5)),
    (2, "bob", 2.5, False, dt.date(2026, 2, 5)),
    (3, "o'hara", 3.5, None, dt.date(2026, 3, 5)),
    (4, None, 10.25, True, dt.date(2026, 4, 5)),
]


def test_values_are_bound_and_select_the_rows_they_name(snowflake_home: Path) -> None:
    """Each lookup's row count is checked against the same predicate evaluated in Python
    over the table's rows: fails if a value is bound with the wrong type or text (int as
    float, a bool as a string, None as 'None', a date through the fallback), interpolated,
    or bound to the wrong placeholder."""
    driver = SnowflakeDriver()
    conn = driver.connect(lean_target(), 10)
    assert isinstance(conn, LeanSnowflakeConnection)
    try:
        conn.execute_script(
            [
                "CREATE DATABASE IF NOT EXISTS SLDB",
                "CREATE OR REPLACE TABLE SLDB.PUBLIC.lean_t "
                "(id INT, name TEXT, total FLOAT, flag BOOLEAN, day DATE)",
                "INSERT INTO SLDB.PUBLIC.lean_t VALUES "
                "(1, 'ann', 1.5, TRUE, '2026-01-05'), (2, 'bob', 2.5, FALSE, '2026-02-05'), "
                "(3, 'o''hara', 3.5, NULL, '2026-03-05'), (4, NULL, 10.25, TRUE, '2026-04-05')",
            ]
        )
        cases: list[tuple[str, tuple[Any, ...], Any]] = [
            ("id BETWEEN ? AND ?", (2, 3), lambda r: 2 <= r[0] <= 3),
            ("name = ?", ("o'hara",), lambda r: r[1] == "o'hara"),
            ("name = ?", ("a' OR '1'='1",), lambda r: False),
            ("total < ? AND id > ?", (3.0, 1), lambda r: r[2] < 3.0 and r[0] > 1),
            ("total = ?", (10.25,), lambda r: r[2] == 10.25),
            ("flag = ?", (True,), lambda r: r[3] is True),
            ("flag = ?", (False,), lambda r: r[3] is False),
            ("name IS NOT DISTINCT FROM ?", (None,), lambda r: r[1] is None),
            ("day >= ?", (dt.date(2026, 2, 5),), lambda r: r[4] >= dt.date(2026, 2, 5)),
        ]
        for where, params, oracle in cases:
            query = Query(name="q", sql=f"SELECT id FROM SLDB.PUBLIC.lean_t WHERE {where}")
            conn.execute(conn.compile(query, TAG), params)
            want = sum(1 for r in ROWS if oracle(r))
            assert conn.last_rows == want, (where, params, conn.last_rows, want)
            # the connector's own answer to the same statement agrees
            assert len(conn.query(query.sql, params)) == want, (where, params)
        assert conn.lean.client.requests_sent == len(cases)  # one request per statement
    finally:
        conn.close()


def test_the_option_is_checked_where_the_workload_is_read() -> None:
    text = """
name = "x"
[target]
driver = "snowflake"
connection = "prod"
options = { statement_path = "fast" }
[[query]]
name = "q"
sql = "SELECT 1"
"""
    with pytest.raises(WorkloadError) as err:
        parse_toml(text, "w.toml")
    message = str(err.value)
    assert "w.toml" in message and "target.options.statement_path" in message
    assert "lean" in message and "connector" in message


def test_request_ids_are_version_4_uuids_and_unique() -> None:
    import uuid

    ids = [request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:500]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


# -- the stand-in: tokens, tags, renewal, chunks, polling, retries, refusals --------------


@pytest.fixture
def standin() -> Iterator[SnowflakeStandIn]:
    server = SnowflakeStandIn()
    yield server
    server.close()


def open_on(standin: SnowflakeStandIn, path: str = "lean") -> SnowflakeConnection:
    raw = snowflake.connector.connect(
        account="standin",
        user="u",
        password="standin-not-a-secret",
        host="127.0.0.1",
        port=standin.port,
        protocol="http",
        paramstyle="qmark",
        platform_detection_timeout_seconds=0.0,
        client_session_keep_alive=False,
        login_timeout=10,
    )
    target = Target(Driver.SNOWFLAKE, connection="standin", options={"statement_path": path})
    conn = SnowflakeDriver().session(raw, target)
    assert isinstance(conn, LeanSnowflakeConnection) is (path == "lean")
    if isinstance(conn, LeanSnowflakeConnection):  # (the retries' backoff, shortened)
        conn.lean.client.backoff_base_s = conn.lean.client.backoff_cap_s = 0.05
    return conn


def run(conn: SnowflakeConnection, sql: str, params: tuple[Any, ...] = ()) -> None:
    conn.execute(conn.compile(Query(name="kind", sql=sql), TAG), params)


def test_each_statement_carries_the_current_token_and_its_exact_tag(
    standin: SnowflakeStandIn,
) -> None:
    """Fails if a statement goes with a stale or missing token, without its QUERY_TAG or
    with another, if an expired session is not renewed with the master token, if the
    statement is not sent again after the renewal (or sent more than once more), or if
    the resent statement is another request (a new request id would run it twice)."""
    conn = open_on(standin)
    assert isinstance(conn, LeanSnowflakeConnection)
    try:
        # (file transfers stay the connector's: it moves the files)
        assert conn.compile(Query(name="put", sql="PUT file:///tmp/x.csv @~"), TAG)[2] is False
        assert conn.compile(Query(name="q", sql="SELECT 1"), TAG)[2] is True
        run(conn, "SELECT ?, ?", (7, "x"))
        first = standin.statements()[-1]
        assert first.token == standin.token and first.token.startswith("standin-session-")
        assert first.body["parameters"] == {"QUERY_TAG": "sl/01234567/w2/M/kind"}
        assert first.headers["Accept"] == "application/snowflake"
        assert first.headers["User-Agent"].startswith("PythonConnector/")
        assert first.body["bindings"] == {
            "1": {"type": "FIXED", "value": "7"},
            "2": {"type": "TEXT", "value": "x"},
        }
        assert first.body["asyncExec"] is False and "queryContextDTO" in first.body

        stale = standin.expire()
        before = len(standin.seen)
        run(conn, "SELECT ?", (8,))
        after = standin.seen[before:]
        assert [urlpath(s.path) for s in after] == [
            "/queries/v1/query-request",
            "/session/token-request",
            "/queries/v1/query-request",
        ]
        refused, renewal, resent = after
        assert refused.token == stale
        assert renewal.token == MASTER and renewal.body["oldSessionToken"] == stale
        assert resent.token == standin.token != stale
        assert resent.query["requestId"] == refused.query["requestId"]
        assert resent.body == refused.body
        assert conn.lean.renewals == 1
        # later statements carry the renewed token, with no renewal
        run(conn, "SELECT ?", (9,))
        assert standin.statements()[-1].token == standin.token
        assert conn.lean.renewals == 1
    finally:
        conn.close()


def urlpath(path: str) -> str:
    return path.split("?", 1)[0]


def test_a_chunked_result_is_downloaded_with_its_chunk_headers(
    standin: SnowflakeStandIn,
) -> None:
    """Fails if the chunks are skipped (2 rows instead of 8) or fetched without the
    chunk headers (the stand-in refuses those)."""
    conn = open_on(standin)
    try:
        run(conn, "SELECT many")
        assert conn.last_rows == 8  # type: ignore[attr-defined]
        chunks = [s for s in standin.seen if s.path.startswith("/chunk/")]
        assert sorted(s.path for s in chunks) == ["/chunk/0", "/chunk/1"]
        assert conn.server_id().startswith("many-")
    finally:
        conn.close()


def test_in_progress_is_polled_and_503s_are_retried_with_the_same_request_id(
    standin: SnowflakeStandIn,
) -> None:
    conn = open_on(standin)
    try:
        run(conn, "SELECT slowly")
        assert conn.last_rows == 1  # type: ignore[attr-defined]
        polled = standin.seen[-1]
        assert polled.method == "GET" and polled.path == f"/queries/{conn.server_id()}/result"
        assert polled.token == standin.token

        run(conn, "SELECT flaky")
        assert conn.last_rows == 1  # type: ignore[attr-defined]
        tries = [s for s in standin.statements() if s.body.get("sqlText") == "SELECT flaky"]
        assert len(tries) == 3
        assert len({s.query["requestId"][0] for s in tries}) == 1
        assert [s.query.get("retryCount") for s in tries] == [None, ["1"], ["2"]]
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["lean", "connector"])
def test_a_refusal_raises_what_the_connector_raises(standin: SnowflakeStandIn, path: str) -> None:
    """The same refusal through both paths: the same exception class, errno, SQLSTATE,
    message, query id, category and description."""
    driver = get_driver(Driver.SNOWFLAKE)
    conn = open_on(standin, path)
    try:
        with pytest.raises(sferrors.ProgrammingError) as info:
            run(conn, "SELEC 1")
    finally:
        conn.close()
    exc = info.value
    assert (exc.errno, exc.sqlstate) == (1003, "42000")
    assert exc.sfqid and conn.server_id(exc) == exc.sfqid
    assert driver.classify(exc) is ErrorCategory.SYNTAX
    assert driver.describe_error(exc) == (
        "ProgrammingError: 001003 (42000): SQL compilation error: syntax error line 1 at "
        "position 0."
    )


def test_both_paths_send_the_same_statement(standin: SnowflakeStandIn) -> None:
    """The lean body has every field the connector's has, with the same values (the
    request id, sequence number and submission time aside)."""
    bodies = {}
    for path in ("connector", "lean"):
        conn = open_on(standin, path)
        try:
            run(conn, "SELECT ?, ?, ?, ?", (1, 2.5, "t", None))
        finally:
            conn.close()
        seen = standin.statements()[-1]
        bodies[path] = {
            k: v
            for k, v in seen.body.items()
            if k not in ("sequenceId", "querySubmissionTime", "queryContextDTO")
        }
        assert json.loads(json.dumps(seen.body["querySubmissionTime"])) > 0
    assert bodies["lean"] == bodies["connector"]


def test_a_socket_the_server_closes_is_reopened_and_nothing_runs_twice(
    standin: SnowflakeStandIn,
) -> None:
    """Statements share one keep-alive socket; after ``Connection: close``, and after a
    socket the server closed without a word, the next statement opens a new one and is
    sent (and run) once. Fails if each statement opened its own socket, if a dead
    socket fails the statement, or if it is resent after the server received it."""
    conn = open_on(standin)
    try:
        base = standin.connections
        for sql in ("SELECT 1", "SELECT 2", "SELECT bye", "SELECT 3", "SELECT drop", "SELECT 4"):
            run(conn, sql)
            assert conn.last_rows == 1, sql  # type: ignore[attr-defined]
        assert standin.connections - base == 3  # the first, after "bye", after "drop"
        sent = [s.body["sqlText"] for s in standin.statements()]
        assert sent == ["SELECT 1", "SELECT 2", "SELECT bye", "SELECT 3", "SELECT drop", "SELECT 4"]
    finally:
        conn.close()


def test_tls_is_verified_against_the_bundle_it_is_given(tmp_path: Path) -> None:
    """The lean client speaks TLS with a verifying context: it reaches a server whose
    certificate its CA bundle vouches for, and refuses, at once and without retrying,
    one signed by a CA it does not trust."""
    import ssl

    from tests.certs import make_certs
    from worker.drivers.snowflake_rest import RestClient

    certs = make_certs(tmp_path / "certs")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certs.server_cert, certs.server_key)
    server = SnowflakeStandIn(tls)
    try:
        headers = {"Authorization": f'Snowflake Token="{server.token}"'}
        body = json.dumps(
            {"sqlText": "SELECT ?", "bindings": {"1": {"type": "FIXED", "value": "5"}}}
        )
        for cafile, ok in ((str(certs.ca), True), (str(certs.rogue_ca), False)):
            client = RestClient("https", "localhost", server.port, 5, 5, "t", cafile=cafile)
            try:
                if ok:
                    answer = json.loads(
                        client.request(
                            "POST", "/queries/v1/query-request?requestId=r", body.encode(), headers
                        )
                    )
                    assert answer["data"]["rowset"] == [['["5"]']]
                else:
                    with pytest.raises(sferrors.OperationalError) as info:
                        client.request(
                            "POST", "/queries/v1/query-request?requestId=r", body.encode(), headers
                        )
                    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
                    assert client.requests_sent == 1  # not retried
            finally:
                client.close()
    finally:
        server.close()
