"""SQLite: the embedded default target. Tags travel as a leading SQL comment."""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from snowload.targets import sqlite_path
from snowload.workload import Query, Target, count_placeholders
from worker.drivers.base import Connection, Driver, DriverError, ErrorCategory
from worker.tags import Tag

_trace_ids = itertools.count()
TRACE_ENV = "SNOWLOAD_SQLITE_TRACE_DIR"
"""When set, every connection writes each statement SQLite executes, with a wall-clock
timestamp in ns, to a file in this directory. For tests: it costs the hot loop dearly."""


class SqliteConnection(Connection):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._trace: TextIO | None = None
        trace_dir = os.environ.get(TRACE_ENV)
        if trace_dir:
            name = f"trace-{os.getpid()}-{next(_trace_ids)}.log"
            trace = self._trace = open(Path(trace_dir) / name, "w", encoding="utf-8")  # noqa: SIM115
            conn.set_trace_callback(lambda stmt: trace.write(f"{time.time_ns()} {stmt}\n"))

    def compile(self, query: Query, tag: Tag) -> Any:
        return tag.comment() + query.sql

    def execute(self, compiled: Any, params: Sequence[Any]) -> None:
        cur = self._conn.execute(compiled, params)
        cur.fetchall()

    def execute_script(self, statements: Sequence[str]) -> None:
        for sql in statements:
            self._conn.execute(sql).fetchall()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._conn.execute(sql, params).fetchall())

    def prepare_only(self, query: Query) -> None:
        # EXPLAIN compiles the statement (tables, columns, syntax) and runs nothing
        self._conn.execute("EXPLAIN " + query.sql, [None] * count_placeholders(query.sql))

    @contextmanager
    def rolled_back(self) -> Iterator[bool]:
        self._conn.execute("BEGIN")  # SQLite's DDL is transactional too
        try:
            yield True
        finally:
            self._conn.execute("ROLLBACK")

    def cancel(self) -> None:
        self._conn.interrupt()

    def close(self) -> None:
        self._conn.close()
        if self._trace is not None:
            self._trace.close()


def _set_journal_mode(conn: sqlite3.Connection, mode: str, timeout_s: float) -> None:
    """Switch to ``mode`` unless the file is already in it. Converting a fresh file to WAL
    needs an exclusive lock, and SQLite answers "database is locked" at once (without its
    busy handler) when other connections race for it, so retry until the busy timeout."""
    deadline = time.monotonic() + max(timeout_s, 1.0)
    while True:
        try:
            current = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(current).lower() != mode.lower():
                conn.execute(f"PRAGMA journal_mode={mode}").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class SqliteDriver(Driver):
    name = "sqlite"

    def connect(self, target: Target, timeout_s: float) -> Connection:
        path = sqlite_path(target.database)
        busy_ms = int(target.options.get("busy_timeout_ms", 5000))
        journal = str(target.options.get("journal_mode", "wal"))
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path,
                timeout=busy_ms / 1000.0,
                isolation_level=None,  # autocommit: each statement is its own transaction
                check_same_thread=False,
                cached_statements=512,
            )
            _set_journal_mode(conn, journal, busy_ms / 1000.0)
            conn.execute("PRAGMA synchronous=NORMAL").fetchall()
        except sqlite3.Error as exc:
            raise DriverError(self.classify(exc), self.describe_error(exc)) from exc
        return SqliteConnection(conn)

    def classify(self, exc: BaseException) -> ErrorCategory:
        if isinstance(exc, sqlite3.IntegrityError):
            return ErrorCategory.CONSTRAINT
        if isinstance(exc, sqlite3.OperationalError):
            text = str(exc).lower()
            if "locked" in text or "busy" in text:
                return ErrorCategory.LOCK
            if "syntax" in text or "no such" in text or "incomplete input" in text:
                return ErrorCategory.SYNTAX
            if "interrupted" in text:
                return ErrorCategory.TIMEOUT
            if "unable to open" in text:
                return ErrorCategory.NETWORK
        if isinstance(exc, sqlite3.ProgrammingError):
            return ErrorCategory.SYNTAX
        return ErrorCategory.OTHER
