"""PostgreSQL through psycopg 3 (synchronous, one connection per thread).

Tags: each session's ``application_name`` names run, worker and phase
(``sl/<run8>/w<i>/<P>``, at most 63 ASCII bytes), changed with ``set_config`` before the
first query of a new phase; each statement also carries the full tag, query kind
included, as a leading SQL comment. snowload's own statements (setup, pool sampling, the
pg_stat_statements reads) are tagged the same way with their own tag (``tag_own``:
``sl/<run8>/setup``, ``sl/<run8>/telemetry``), as the session's name and as a comment.
Passwords never appear in workload files: libpq reads them from ``PGPASSWORD`` or
``~/.pgpass`` on the worker host.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg.conninfo import make_conninfo
from psycopg.pq import ExecStatus

from snowload.workload import Query, Target
from worker.drivers.base import Connection, Driver, DriverError, ErrorCategory, redact
from worker.tags import Tag

_QMARK = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|--[^\n]*|/\*.*?\*/|\?|%", re.DOTALL)


_OK = (ExecStatus.TUPLES_OK, ExecStatus.COMMAND_OK, ExecStatus.EMPTY_QUERY)


def to_pyformat(sql: str) -> str:
    """Workload SQL uses ``?``; psycopg wants ``%s`` (and ``%%`` for a literal percent)."""

    def repl(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return token

    return _QMARK.sub(repl, sql)


def to_numbered(sql: str) -> str:
    """Workload SQL uses ``?``; a server-side prepared statement wants ``$1, $2, ...``."""
    n = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal n
        token = m.group(0)
        if token == "?":
            n += 1
            return f"${n}"
        return token

    return _QMARK.sub(repl, sql)


def encode_param(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format (the server infers its type)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


def session_tag(tag: Tag) -> str:
    """``application_name`` for a session: run, worker and phase (kind is per statement)."""
    compact = tag.compact()
    return compact.rsplit("/", 1)[0]


_SET_APP = b"SELECT set_config('application_name', $1, false)"


class PostgresConnection(Connection):
    """The hot path prepares each (kind, phase) statement once and then runs it through
    libpq directly (``exec_prepared``, text parameters): psycopg's general ``execute``
    costs several times more client CPU per query, which is what decides how close a
    Python generator gets to pgbench when it shares the machine with the server."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._pg = conn.pgconn
        self._app = ""
        self._own = ""
        """The tag of snowload's own statements on this connection (see tag_own)."""
        self._prepared: dict[str, bytes] = {}
        self._encoding = conn.info.encoding
        self._in_check = False
        self._backend_pid = str(conn.info.backend_pid)

    @property
    def raw(self) -> psycopg.Connection[Any]:
        """The psycopg connection (for ``runs profile``; not on the hot path)."""
        return self._conn

    def server_id(self, error: BaseException | None = None) -> str:
        """The backend's pid (what the server's log and pg_stat_activity name)."""
        return self._backend_pid

    def apply_tag(self, tag: Tag) -> None:
        """One round trip through libpq (a phase boundary waits for it: little Python)."""
        self._set_app(session_tag(tag))

    def _set_app(self, name: str) -> None:
        if name != self._app:
            result = self._pg.exec_params(_SET_APP, [name.encode(self._encoding)])
            if result.status not in _OK:
                raise pgerrors.error_from_result(result, encoding=self._encoding)
            self._app = name

    def tag_own(self, tag: str) -> None:
        """Own statements (``execute_script``, ``query``) run under ``tag`` as the
        session's ``application_name`` (set before the next one) and as a leading comment."""
        self._own = tag

    def _own_sql(self, sql: str) -> bytes:
        if not self._own:
            return sql.encode()
        self._set_app(self._own)
        return f"/*{self._own}*/ {sql}".encode()

    def compile(self, query: Query, tag: Tag) -> Any:
        """The statement for (kind, phase), prepared now when it can be (the executor
        compiles every phase before the load starts, so no boundary waits for a prepare);
        one that fails to prepare is left to fail on each execution."""
        sql = tag.comment() + to_numbered(query.sql)
        with contextlib.suppress(psycopg.Error):
            self._prepare(sql)
        return sql

    def _prepare(self, sql: str) -> bytes:
        """The statement's prepared name; a statement that fails to prepare raises here,
        on each execution, and is counted as an error of its kind like any other."""
        name = self._prepared.get(sql)
        if name is None:
            name = f"sl{len(self._prepared)}".encode()
            result = self._pg.prepare(name, sql.encode(self._encoding))
            if result.status != ExecStatus.COMMAND_OK:
                raise pgerrors.error_from_result(result, encoding=self._encoding)
            self._prepared[sql] = name
        return name

    def execute(self, compiled: Any, params: Sequence[Any]) -> None:
        name = self._prepared.get(compiled) or self._prepare(compiled)
        values: list[Any] = [encode_param(v) for v in params]
        result = self._pg.exec_prepared(name, values)
        if result.status not in _OK:
            raise pgerrors.error_from_result(result, encoding=self._encoding)

    def execute_script(self, statements: Sequence[str]) -> None:
        for sql in statements:
            self._conn.execute(self._own_sql(sql))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._conn.execute(self._own_sql(sql), params)
        return list(cur.fetchall()) if cur.description is not None else []

    def prepare_only(self, query: Query) -> None:
        """PREPARE (parse, analyse, plan) and DEALLOCATE: the statement never runs."""
        if self._in_check:  # one rejected statement must not abort the others' transaction
            self._conn.execute("SAVEPOINT sl_check")
        result = self._pg.prepare(b"sl_check", to_numbered(query.sql).encode(self._encoding))
        if result.status != ExecStatus.COMMAND_OK:
            if self._in_check:
                self._conn.execute("ROLLBACK TO SAVEPOINT sl_check")
            raise pgerrors.error_from_result(result, encoding=self._encoding)
        self._conn.execute("DEALLOCATE sl_check")

    @contextmanager
    def rolled_back(self) -> Iterator[bool]:
        self._conn.execute("BEGIN")  # PostgreSQL's DDL is transactional
        self._in_check = True
        try:
            yield True
        finally:
            self._in_check = False
            self._conn.execute("ROLLBACK")

    def cancel(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._conn.cancel_safe(timeout=2.0)

    def close(self) -> None:
        self._conn.close()


class PostgresDriver(Driver):
    name = "postgres"

    def connect(self, target: Target, timeout_s: float) -> Connection:
        options = dict(target.options)
        statement_timeout = options.pop("statement_timeout_ms", None)
        try:
            conninfo = make_conninfo(
                target.dsn,
                connect_timeout=str(max(1, int(timeout_s))),
                application_name="snowload",
                **{k: str(v) for k, v in options.items()},
            )
            conn = psycopg.connect(conninfo, autocommit=True)
            if statement_timeout is not None:
                conn.execute(
                    "SELECT set_config('statement_timeout', %s, false)", (str(statement_timeout),)
                )
        except psycopg.Error as exc:
            raise DriverError(self.classify(exc), self.describe_error(exc)) from exc
        return PostgresConnection(conn)

    def classify(self, exc: BaseException) -> ErrorCategory:
        state = getattr(exc, "sqlstate", None) or ""
        if state.startswith("28") or state == "42501":
            return ErrorCategory.AUTH
        if state.startswith("08") or state in ("57P01", "57P02", "57P03"):
            return ErrorCategory.NETWORK
        if state == "57014":
            return ErrorCategory.TIMEOUT
        if state.startswith("42"):
            return ErrorCategory.SYNTAX
        if state.startswith("23"):
            return ErrorCategory.CONSTRAINT
        if state in ("40001", "40P01", "55P03"):
            return ErrorCategory.LOCK
        if state.startswith("53"):
            return ErrorCategory.THROTTLED
        if isinstance(exc, psycopg.ProgrammingError) and not state:
            return ErrorCategory.CONFIG  # a dsn or option libpq does not understand
        if isinstance(exc, pgerrors.ConnectionTimeout):
            return ErrorCategory.TIMEOUT
        if isinstance(exc, psycopg.OperationalError):
            text = str(exc).lower()
            # "password authentication failed", or libpq's own "fe_sendauth: no password
            # supplied" when the server wants a password and none was found
            if "authentication" in text or "no password supplied" in text:
                return ErrorCategory.AUTH
            if "timeout" in text or "timed out" in text:
                return ErrorCategory.TIMEOUT
            return ErrorCategory.NETWORK
        return ErrorCategory.OTHER

    def describe_error(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        state = getattr(exc, "sqlstate", None)
        prefix = f"{type(exc).__name__}" + (f" [{state}]" if state else "")
        return redact(f"{prefix}: {text}")
