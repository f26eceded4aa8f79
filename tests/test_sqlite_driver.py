"""The SQLite driver on real files: concurrent first connects, tags, error categories."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from snowload.v1 import common_pb2
from snowload.workload import Driver as DriverName
from snowload.workload import Query, Target
from worker.drivers import Connection, DriverError, ErrorCategory, get_driver
from worker.drivers.sqlite import SqliteDriver
from worker.tags import Tag


def _open_concurrently(target: Target, n: int) -> tuple[list[Connection], list[DriverError]]:
    driver = get_driver(DriverName.SQLITE)
    conns: list[Connection] = []
    errors: list[DriverError] = []
    barrier = threading.Barrier(n)

    def connect() -> None:
        barrier.wait()
        try:
            conns.append(driver.connect(target, 5.0))
        except DriverError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=connect) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return conns, errors


def test_many_connections_to_a_fresh_file_all_open(tmp_path: Path) -> None:
    """Converting a new file to WAL races; every connection must still open."""
    for attempt in range(200):
        target = Target(database=str(tmp_path / f"fresh-{attempt}.db"))
        conns, errors = _open_concurrently(target, 6)
        assert errors == []
        for c in conns:
            c.close()
        mode = sqlite3.connect(target.database).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_tag_travels_as_a_leading_comment(tmp_path: Path) -> None:
    conn = SqliteDriver().connect(Target(database=str(tmp_path / "t.db")), 5.0)
    seen: list[str] = []
    conn._conn.set_trace_callback(seen.append)  # type: ignore[attr-defined]
    tag = Tag("0123456789ab", 3, common_pb2.STATE_MEASUREMENT, "get")
    compiled = conn.compile(Query(name="get", sql="SELECT ?"), tag)
    conn.execute(compiled, (7,))
    assert seen[-1] == "/*sl/01234567/w3/M/get*/ SELECT 7"


@pytest.mark.parametrize(
    ("sql", "category"),
    [
        ("SELEC 1", ErrorCategory.SYNTAX),
        ("SELECT * FROM no_such_table", ErrorCategory.SYNTAX),
        ("INSERT INTO t VALUES (1)", ErrorCategory.CONSTRAINT),
    ],
)
def test_errors_are_classified(tmp_path: Path, sql: str, category: ErrorCategory) -> None:
    driver = SqliteDriver()
    conn = driver.connect(Target(database=str(tmp_path / "c.db")), 5.0)
    conn.execute_script(["CREATE TABLE t (k INTEGER PRIMARY KEY)", "INSERT INTO t VALUES (1)"])
    with pytest.raises(sqlite3.Error) as info:
        conn.execute(sql, ())
    assert driver.classify(info.value) is category


def test_locked_database_is_a_lock_error(tmp_path: Path) -> None:
    driver = SqliteDriver()
    target = Target(database=str(tmp_path / "l.db"), options={"busy_timeout_ms": 50})
    holder = driver.connect(target, 5.0)
    holder.execute_script(["CREATE TABLE t (k INTEGER)", "BEGIN IMMEDIATE"])
    other = driver.connect(target, 5.0)
    with pytest.raises(sqlite3.Error) as info:
        other.execute("INSERT INTO t VALUES (1)", ())
    assert driver.classify(info.value) is ErrorCategory.LOCK


def test_unopenable_path_is_reported_not_raised_raw(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(DriverError) as info:
        SqliteDriver().connect(Target(database=str(tmp_path / "dir.db")), 5.0)
    assert "unable to open" in str(info.value)
