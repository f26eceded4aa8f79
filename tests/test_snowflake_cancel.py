"""``cancel`` on both Snowflake statement paths (worker/drivers/snowflake_inflight.py),
with the real connector against the stand-in (tests/sf_standin.py), which records every
request and holds ``SELECT hang`` until an abort-request names its request id.

A cancel from another thread aborts the statement in flight by its SQL text and request
id; it never names a statement before or after it (e.g. a ``SYSTEM$CANCEL_QUERY`` of the
last query id, which names the previous, finished statement), sends nothing when no
statement runs, and raises nothing, whenever it comes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from snowflake.connector import errors as sferrors

from tests.sf_standin import Seen, SnowflakeStandIn
from tests.test_snowflake_lean import open_on, run
from worker.drivers import ErrorCategory
from worker.drivers.snowflake import SnowflakeConnection, SnowflakeDriver
from worker.drivers.snowflake_inflight import sent_text

PATHS = ["lean", "connector"]
HANG = {  # (the connector strips the text it sends: the abort must name what was sent)
    "lean": "SELECT hang",
    "connector": "\n  SELECT hang \t",
}


@pytest.fixture
def standin() -> Iterator[SnowflakeStandIn]:
    server = SnowflakeStandIn()
    yield server
    server.close()


def aborts(standin: SnowflakeStandIn) -> list[Seen]:
    with standin._lock:
        return [s for s in standin.seen if s.path.startswith("/queries/v1/abort-request")]


def hang_sent(standin: SnowflakeStandIn) -> Seen | None:
    return next((s for s in standin.statements() if s.body.get("sqlText") == "SELECT hang"), None)


def start_hang(
    conn: SnowflakeConnection, path: str
) -> tuple[threading.Thread, list[BaseException]]:
    outcome: list[BaseException] = []

    def hang() -> None:
        try:
            run(conn, HANG[path])
        except BaseException as exc:  # (handed to the test's thread)
            outcome.append(exc)

    thread = threading.Thread(target=hang)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("path", PATHS)
def test_cancel_aborts_the_running_statement_not_the_previous_one(
    standin: SnowflakeStandIn, path: str
) -> None:
    """``cancel`` from another thread sends one abort-request naming the running
    statement's SQL and request id; the statement ends with Snowflake's cancellation
    error, classified as a timeout. Fails if cancel names another statement (e.g. the
    previous query's id), sends a statement instead, or leaves the running one to its own
    end (the stand-in would hold it 30 s)."""
    conn = open_on(standin, path)
    try:
        run(conn, "SELECT 1")  # a previous statement, with ids of its own
        thread, outcome = start_hang(conn, path)
        deadline = time.monotonic() + 20
        while hang_sent(standin) is None:
            assert time.monotonic() < deadline, "the statement never reached the stand-in"
            time.sleep(0.01)
        cancelled_at = time.monotonic()
        conn.cancel()
        thread.join(20)
        assert not thread.is_alive()
        assert time.monotonic() - cancelled_at < 10  # (not the stand-in's 30 s hold)
        sent = hang_sent(standin)
        assert sent is not None
        assert [a.body for a in aborts(standin)] == [
            {"sqlText": "SELECT hang", "requestId": sent.query["requestId"][0]}
        ]
        assert [s.body["sqlText"] for s in standin.statements()] == ["SELECT 1", "SELECT hang"]
        assert len(outcome) == 1 and isinstance(outcome[0], sferrors.ProgrammingError)
        assert outcome[0].errno == 604
        assert SnowflakeDriver().classify(outcome[0]) is ErrorCategory.TIMEOUT
    finally:
        conn.close()


@pytest.mark.parametrize("path", PATHS)
def test_a_cancel_at_any_moment_names_only_the_running_statement(
    standin: SnowflakeStandIn, path: str
) -> None:
    """Cancels from the moment the statement is started (before its request id exists or
    its request was sent, while it runs, after it ended): each sends nothing or an abort
    naming exactly the running statement; none raises. Fails if an early cancel names the
    previous statement, or if one after the end names the ended one by another id."""
    conn = open_on(standin, path)
    try:
        run(conn, "SELECT 1")
        previous = standin.statements()[-1].query["requestId"][0]
        thread, outcome = start_hang(conn, path)
        calls = 0
        deadline = time.monotonic() + 20
        while thread.is_alive():
            conn.cancel()
            calls += 1
            assert time.monotonic() < deadline, "the statement was never aborted"
            thread.join(0.002)
        for _ in range(3):  # after the end
            conn.cancel()
        sent = hang_sent(standin)
        assert sent is not None
        named = {(a.body["sqlText"], a.body["requestId"]) for a in aborts(standin)}
        assert named == {("SELECT hang", sent.query["requestId"][0])}, (named, previous)
        assert [s.body["sqlText"] for s in standin.statements()] == ["SELECT 1", "SELECT hang"]
        assert len(outcome) == 1 and getattr(outcome[0], "errno", None) == 604
        assert calls >= 1
    finally:
        conn.close()


@pytest.mark.parametrize("path", PATHS)
def test_cancel_with_no_statement_running_sends_nothing(
    standin: SnowflakeStandIn, path: str
) -> None:
    """Before any statement and after statements ended (one of them refused), a cancel
    sends no request at all and raises nothing; the connection works on. Fails if cancel
    'cancels' the last query by its id, or any statement at all."""
    conn = open_on(standin, path)
    try:
        conn.cancel()
        run(conn, "SELECT 1")
        with pytest.raises(sferrors.ProgrammingError):
            run(conn, "SELEC 1")  # (a refused statement leaves nothing in flight either)
        before = len(standin.seen)
        conn.cancel()
        conn.cancel()
        assert standin.seen[before:] == []
        run(conn, "SELECT 2")
        assert [s.body["sqlText"] for s in standin.statements()] == [
            "SELECT 1",
            "SELEC 1",
            "SELECT 2",
        ]
        assert aborts(standin) == []
    finally:
        conn.close()
    conn.cancel()  # (closed: still nothing, no error)


@pytest.mark.parametrize("text", ["\n SELECT ? \t\r", "desc  T1 ;", "SELECT ' x '  "])
def test_the_abort_names_a_statement_by_the_text_the_connector_sent(
    standin: SnowflakeStandIn, text: str
) -> None:
    """The connector strips a statement and rewrites ``DESC name`` before it sends it:
    the connector path's abort names it by the text that went out (as recorded)."""
    conn = open_on(standin, "connector")
    try:
        run(conn, text, (1,) if "?" in text else ())
        assert sent_text(text) == standin.statements()[-1].body["sqlText"]
    finally:
        conn.close()
