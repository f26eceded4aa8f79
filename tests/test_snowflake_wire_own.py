"""snowload's own Snowflake statements on the wire (tests/sf_recorder.py between the real
connector and fakesnow): the history window under a non-UTC session time zone, the tags
of setup and telemetry statements, and a host that accepts connections but never answers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from controller import lifecycle as lc
from controller.server import Controller
from snowload.workload import parse_toml
from tests.cluster import WorkerProcs, attached, run_to_end, worker_env, workload
from tests.fakesnow import SECRET
from tests.sf_recorder import Recorded, SnowflakeRecorder, refusal, result
from worker.drivers.snowflake import SnowflakeDriver
from worker.tags import Tag, parse_compact

LA = "America/Los_Angeles"


@pytest.fixture
def recorder(fakesnow_port: int) -> Iterator[SnowflakeRecorder]:
    rec = SnowflakeRecorder(fakesnow_port)
    rec.start()
    yield rec
    rec.close()


def write_home(tmp: Path, port: int, name: str = "recorded") -> Path:
    home = tmp / "sfhome"
    home.mkdir(exist_ok=True)
    toml = home / "connections.toml"
    toml.write_text(
        f"""
[{name}]
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


# -- the history window under America/Los_Angeles -----------------------------------------


def instant(binding: dict[str, Any], session_tz: str) -> datetime:
    """The instant Snowflake gives a bound value where it meets a TIMESTAMP_LTZ (the
    history's time columns, TO_TIMESTAMP_LTZ): an independent reading of the binding
    formats. A value without a zone is wall-clock time in the session's TIMEZONE."""
    kind, value = binding["type"], str(binding["value"])
    if kind == "TIMESTAMP_TZ":  # "<epoch ns> <offset minutes + 1440>": an instant
        return datetime.fromtimestamp(int(value.split(maxsplit=1)[0]) / 1e9, tz=UTC)
    if kind == "TIMESTAMP_LTZ":  # epoch ns: an instant
        return datetime.fromtimestamp(int(value) / 1e9, tz=UTC)
    if kind == "TIMESTAMP_NTZ":  # epoch ns of the wall-clock reading, no zone
        wall = datetime.fromtimestamp(int(value) / 1e9, tz=UTC).replace(tzinfo=None)
        return wall.replace(tzinfo=ZoneInfo(session_tz)).astimezone(UTC)
    assert kind == "TEXT", binding
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(session_tz))
    return parsed.astimezone(UTC)


def session_tz(requests: list[Recorded]) -> str:
    zones = {
        str(r.body["data"]["SESSION_PARAMETERS"].get("TIMEZONE", LA))
        for r in requests
        if r.path.startswith("/session/v1/login-request")
    }
    assert len(zones) == 1, zones
    return zones.pop()


ENRICH_BOTH = """
import sys, time
from snowload.workload import parse_toml
from worker.enrichment import AggregateEnricher, SnowflakeEnricher, Window
wl = parse_toml(sys.stdin.read(), "tz.toml")
window = Window(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), 0)
for enricher in (SnowflakeEnricher(wl), AggregateEnricher(wl)):
    print(enricher.collect(window, time.monotonic() + 20).message)  # no history: fails
    enricher.close()
"""


def test_history_window_is_right_under_a_los_angeles_session(
    recorder: SnowflakeRecorder, tmp_path: Path
) -> None:
    """Fails if a bound of the history window is bound without its zone (a naive
    datetime or ISO text: Snowflake reads it in the session's time zone, 8 hours off in
    winter here), or if the history reads are not tagged as snowload's telemetry."""
    text = f"""
name = "tz"
[target]
driver = "snowflake"
connection = "recorded"
options = {{ session_parameters = {{ TIMEZONE = "{LA}" }} }}
[[query]]
name = "q"
sql = "SELECT 1"
"""
    start = datetime(2026, 1, 15, 18, 30, tzinfo=UTC)
    end = start + timedelta(minutes=5)
    run_id = "0a1b2c3d-0000-4000-8000-000000000000"
    env = dict(os.environ, SNOWFLAKE_HOME=str(write_home(tmp_path, recorder.port)))
    # (in a process of its own: the connector reads connections.toml once per process)
    subprocess.run(
        [sys.executable, "-c", ENRICH_BOTH, run_id]
        + [str(int(t.timestamp()) * 10**9) for t in (start, end)],
        input=text,
        text=True,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
    )
    requests = recorder.snapshot()
    tz = session_tz(requests)
    assert tz == LA  # the session under test really is not UTC
    history = [r.body for r in recorder.queries() if "QUERY_HISTORY" in r.body["sqlText"]]
    assert len(history) == 2, [r.body.get("sqlText") for r in recorder.queries()]
    page, agg = history
    b = page["bindings"]
    slack = timedelta(minutes=1)  # the page reads up to a minute past the window
    assert "TO_TIMESTAMP_LTZ(?)" in page["sqlText"]
    assert instant(b["1"], tz) == start  # END_TIME_RANGE_START
    assert instant(b["2"], tz) == end + slack  # END_TIME_RANGE_END
    assert b["3"]["value"] == "sl/0a1b2c3d/w%"
    assert instant(b["4"], tz) == start  # START_TIME >= ?
    assert instant(b["5"], tz) == end + slack  # START_TIME <= ?
    assert instant(b["6"], tz) == start  # the keyset cursor starts at the window
    a = agg["bindings"]
    assert a["1"]["value"] == "sl/0a1b2c3d/w%"
    assert instant(a["2"], tz) == start - slack  # whole minutes around the run
    assert instant(a["3"], tz) == end + slack
    for body in history:
        assert body["parameters"]["QUERY_TAG"] == "sl/0a1b2c3d/telemetry"


# -- own statements carry tags of their own ------------------------------------------------

OWN = """
name = "own-tags"
[target]
driver = "snowflake"
connection = "recorded"
options = { query_history = "SLDB.PUBLIC.QH_OWN", warehouse = "LOAD_WH" }
[setup]
sql = [
  "CREATE DATABASE IF NOT EXISTS SLDB",
  "CREATE OR REPLACE TABLE SLDB.PUBLIC.own_items (id INT)",
  "INSERT INTO SLDB.PUBLIC.own_items VALUES (1), (2), (3)",
  \"\"\"CREATE OR REPLACE TABLE SLDB.PUBLIC.QH_OWN (QUERY_ID TEXT, QUERY_TAG TEXT, \
START_TIME TIMESTAMP_LTZ, TOTAL_ELAPSED_TIME NUMBER, COMPILATION_TIME NUMBER, \
EXECUTION_TIME NUMBER, QUEUED_OVERLOAD_TIME NUMBER, QUEUED_PROVISIONING_TIME NUMBER, \
TRANSACTION_BLOCKED_TIME NUMBER)\"\"\",
]
[load]
workers = 1
connections = 1
duration = "1s"
think_time = "20ms"
ready_timeout = "30s"
enrichment_timeout = "3s"
[[query]]
name = "get"
sql = "SELECT id FROM SLDB.PUBLIC.own_items WHERE id = ?"
params = [{ pool = "SELECT id FROM SLDB.PUBLIC.own_items" }]
"""


class Straggler:
    """Holds the third load statement as a statement still running at the drain deadline
    (at most 30 s), until an abort-request names its request id (as Snowflake aborts a
    request); then answers it as Snowflake answers a cancelled statement. Everything else
    reaches fakesnow."""

    def __init__(self) -> None:
        self.load_statements = 0
        self.held = threading.Event()
        self.held_request = ""
        self.aborted_by_id = threading.Event()
        self.aborts: list[dict[str, Any]] = []
        """Bodies of the abort-requests, in order."""
        self.cancel_statements: list[str] = []
        """SYSTEM$CANCEL_QUERY statements (a cancel by query id)."""
        self.lock = threading.Lock()

    def __call__(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if path.startswith("/queries/v1/abort-request"):
            with self.lock:
                self.aborts.append(body)
                if self.held_request and body.get("requestId") == self.held_request:
                    self.aborted_by_id.set()
            return {"data": None, "code": None, "message": None, "success": True}
        if not path.startswith("/queries/v1/query-request"):
            return None
        sql = str(body.get("sqlText", ""))
        if "SYSTEM$CANCEL_QUERY" in sql.upper():
            self.cancel_statements.append(sql)
            return result(["status"], [["query terminated."]])
        if "/w0/" not in str((body.get("parameters") or {}).get("QUERY_TAG", "")):
            return None
        with self.lock:
            self.load_statements += 1
            hold = self.load_statements == 3
            if hold:
                self.held_request = parse_qs(urlsplit(path).query)["requestId"][0]
        if not hold:
            return None
        self.held.set()
        if not self.aborted_by_id.wait(30):
            return result(["ID"], [["1"]])  # (never aborted: it ends on its own, late)
        return refusal("000604", "57014", "SQL execution canceled")


@pytest.mark.parametrize("path", ["lean", "connector"])
async def test_setup_and_telemetry_statements_carry_tags_of_their_own(
    controller: Controller, recorder: SnowflakeRecorder, tmp_path: Path, path: str
) -> None:
    """Fails if a setup statement, the pool sampling, SHOW WAREHOUSES or a history read
    goes out untagged or under the load's tag, or if any statement at all goes out with
    no QUERY_TAG (the README says every statement carries one). The drain's cancel of a
    straggling statement is no statement: on both paths it is one abort-request naming
    the straggler's SQL and request id (fails if it names the previous statement, or
    cancels by query id); the run then ends without waiting for the straggler, which
    counts once, as a timeout of the phase it was issued in, and the run's count per
    phase is the stand-in's."""
    own = OWN.replace(
        'warehouse = "LOAD_WH" }', f'warehouse = "LOAD_WH", statement_path = "{path}" }}'
    )
    assert own != OWN
    straggler = Straggler()
    recorder.answer = straggler
    controller.runs.drain_timeout_s = 1.0  # (the straggler outlasts it)
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    procs.env["SNOWFLAKE_HOME"] = str(write_home(tmp_path, recorder.port))
    procs.spawn("own-tags")
    try:
        await attached(controller, 1)
        run = await run_to_end(controller, workload(own), timeout_s=25)  # (< the 30 s hold)
    finally:
        procs.stop_all()
    assert run.state == lc.COMPLETED, run.message
    assert straggler.held.is_set() and straggler.aborted_by_id.is_set()
    short = run.run_id.replace("-", "")[:8]
    setup_tag, telemetry_tag = f"sl/{short}/setup", f"sl/{short}/telemetry"
    by_tag: dict[str, list[str]] = {}
    for r in recorder.queries():
        tag = (r.body.get("parameters") or {}).get("QUERY_TAG")
        assert tag, f"statement sent without QUERY_TAG: {r.body.get('sqlText')}"
        by_tag.setdefault(tag, []).append(r.body["sqlText"])
    setup_sql = workload(own).setup_sql
    assert by_tag[setup_tag] == [*setup_sql, "SELECT id FROM SLDB.PUBLIC.own_items"]
    telemetry = by_tag[telemetry_tag]
    assert "SHOW WAREHOUSES LIKE 'LOAD_WH'" in telemetry
    assert any("FROM SLDB.PUBLIC.QH_OWN" in sql for sql in telemetry)
    assert set(telemetry) <= {"SHOW WAREHOUSES LIKE 'LOAD_WH'"} | {
        sql for sql in telemetry if "FROM SLDB.PUBLIC.QH_OWN" in sql
    }
    # the cancel: one abort-request, naming the held statement; no statement
    assert straggler.cancel_statements == []
    held = [r for r in recorder.queries() if f"requestId={straggler.held_request}" in r.path]
    assert len(held) == 1 and "/w0/" in held[0].body["parameters"]["QUERY_TAG"]
    assert straggler.aborts == [
        {"sqlText": held[0].body["sqlText"], "requestId": straggler.held_request}
    ]
    load_tags = set(by_tag) - {setup_tag, telemetry_tag}
    assert load_tags and all(t.startswith(f"sl/{short}/w0/") for t in load_tags), load_tags
    # the run's accounting against what reached the stand-in, per phase
    sent: Counter[int] = Counter()
    for r in recorder.queries():
        tag = parse_compact(str((r.body.get("parameters") or {}).get("QUERY_TAG", "")))
        if tag is not None:
            sent[tag.phase] += 1
    counted: Counter[int] = Counter()
    errors: Counter[tuple[int, str]] = Counter()
    for (phase, _), cell in run.metrics.cells.items():
        counted[phase] += cell.count  # (errors included)
        errors.update({(phase, cat): n for cat, n in cell.errors.items()})
    held_tag = parse_compact(held[0].body["parameters"]["QUERY_TAG"])
    assert held_tag is not None
    assert counted == sent, (counted, sent)
    assert errors == Counter({(held_tag.phase, "timeout"): 1}), errors


# -- a host that accepts connections and never answers ------------------------------------


@pytest.fixture
def mute_host() -> Iterator[int]:
    """A TCP listener on 127.0.0.1:0 that accepts every connection and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


async def test_a_mute_host_fails_the_run_with_the_connectors_error_before_ready_timeout(
    controller: Controller, mute_host: int, tmp_path: Path
) -> None:
    """Fails if the connector's timeouts outlast the READY deadline (the run ends as a
    bare ``ready_timeout``) or if the underlying error is lost on the way."""
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    procs.env["SNOWFLAKE_HOME"] = str(write_home(tmp_path, mute_host, "mute"))
    procs.spawn("mute")
    text = """
name = "mute"
[target]
driver = "snowflake"
connection = "mute"
[load]
connections = 2
duration = "1s"
ready_timeout = "10s"
[[query]]
name = "q"
sql = "SELECT 1"
"""
    try:
        await attached(controller, 1)
        run = await run_to_end(controller, workload(text))
    finally:
        procs.stop_all()
    assert run.state == lc.FAILED
    # (a reason other than ready_timeout: the worker's failure came before the deadline)
    assert run.reason == "target_unreachable", (run.reason, run.message)
    assert "Read timed out" in run.message and "127.0.0.1" in run.message, run.message


def test_statements_keep_the_long_socket_timeout_after_a_bounded_login(
    snowflake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails if the login's short bound sticks to the session (Snowflake holds a
    statement's request for up to ~45 s before it answers "still running"), or if a
    statement starts a thread (the connector's cancellation timer, which it starts for
    every statement when the connection has a network timeout)."""
    wl = parse_toml(
        'name = "s"\n[target]\ndriver = "snowflake"\nconnection = "fake"\n'
        '[[query]]\nname = "q"\nsql = "SELECT 1"\n',
        "s.toml",
    )
    conn = SnowflakeDriver().connect(wl.target, 3)
    try:
        assert conn._conn.socket_timeout == 60  # type: ignore[attr-defined]
        compiled = conn.compile(wl.queries[0], Tag("feedc0de", 0, lc.MEASUREMENT, "q"))
        conn.execute(compiled, ())
        started: list[str] = []
        start = threading.Thread.start

        def counted(thread: threading.Thread) -> None:
            started.append(thread.name)
            start(thread)

        monkeypatch.setattr(threading.Thread, "start", counted)
        for _ in range(5):
            conn.execute(compiled, ())
        assert started == []
        monkeypatch.undo()
        assert conn.query("SELECT 1") == [(1,)]
    finally:
        conn.close()


def test_http_sessions_skip_environment_lookups_only_when_there_is_nothing_to_find(
    snowflake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails if the connector's sessions still read the environment per request when no
    proxy or CA variable is set, or stop reading it when one is (a proxy ignored)."""
    from worker.drivers.snowflake_http import CONSULTED

    wl = parse_toml(
        'name = "s"\n[target]\ndriver = "snowflake"\nconnection = "fake"\n'
        '[[query]]\nname = "q"\nsql = "SELECT 1"\n',
        "s.toml",
    )

    def trust_env_of_sessions() -> set[bool]:
        conn = SnowflakeDriver().connect(wl.target, 10)
        try:
            assert conn.query("SELECT 1") == [(1,)]
            pools = conn._conn._session_manager.sessions_map.values()  # type: ignore[attr-defined]
            return {s.trust_env for p in pools for s in [*p._idle_sessions, *p._active_sessions]}
        finally:
            conn.close()

    for name in list(os.environ):
        if name.lower() in CONSULTED:
            monkeypatch.delenv(name)
    assert trust_env_of_sessions() == {False}
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert trust_env_of_sessions() == {True}


def test_query_id_samples_are_a_budget_per_worker_process_not_per_connection(
    snowflake_home: Path,
) -> None:
    """Fails if every connection keeps its own ``query_id_samples`` (memory then grows
    with the connections: 100,000 samples of ~180 bytes each, per connection)."""
    wl = parse_toml(
        'name = "s"\n[target]\ndriver = "snowflake"\nconnection = "fake"\n'
        "options = { query_id_samples = 5 }\n"
        '[[query]]\nname = "q"\nsql = "SELECT 1"\n',
        "s.toml",
    )
    driver = SnowflakeDriver()
    conns = [driver.connect(wl.target, 10) for _ in range(2)]
    try:
        for conn in conns:
            compiled = conn.compile(wl.queries[0], Tag("feedc0de", 0, lc.MEASUREMENT, "q"))
            for _ in range(4):
                conn.execute(compiled, ())
        samples = [s for conn in conns for s in conn.query_samples]  # type: ignore[attr-defined]
        assert len(samples) == 5
        assert len({qid for qid, _ in samples}) == 5  # five distinct statements
    finally:
        for conn in conns:
            conn.close()
