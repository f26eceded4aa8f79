"""Snowflake through snowflake-connector-python (synchronous, one connection per thread).

Configuration is translated purely (``connect_kwargs``) from the workload's target: a
connection *name* from the worker host's ``connections.toml`` plus non-secret options.
Credentials and key files never leave the worker host.

Tags: ``QUERY_TAG`` per statement (``_statement_params``), so every statement carries its
exact phase and query kind with no extra round trip when the phase changes (an
``ALTER SESSION SET QUERY_TAG`` per connection per phase would cost one, cannot bind
parameters, and leaves a window in which a session tag and the client's record differ).
Parameters are bound server side (``paramstyle="qmark"``), never interpolated.
``cancel`` aborts the statement in flight by its request id (snowflake_inflight.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import re
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import snowflake.connector
from snowflake.connector import errors as sferrors

from snowload.workload import Query, StatementPath, Target
from worker.drivers import spcs
from worker.drivers.base import Connection, Driver, DriverError, ErrorCategory, redact
from worker.drivers.snowflake_http import skip_environment_lookups
from worker.drivers.snowflake_inflight import (
    REQUEST_ID_PARAMETER,
    abort,
    new_request_id,
    sent_text,
)
from worker.tags import Tag

if importlib.util.find_spec("opentelemetry") is None:
    # the connector imports OpenTelemetry's propagator for every request; a failed
    # import is not cached, so each one searches sys.path again: say once it is absent
    sys.modules.setdefault("opentelemetry", None)  # type: ignore[arg-type]

DEFAULT_SESSION_PARAMETERS = {"USE_CACHED_RESULT": "FALSE"}
# options a workload may set; everything secret stays in connections.toml
ALLOWED_OPTIONS = frozenset(
    {
        "warehouse",
        "role",
        "database",
        "schema",
        "login_timeout",
        "network_timeout",
        "socket_timeout",
        "session_parameters",
        "query_tag_prefix",
        "query_history",
        "query_id_samples",
        "credit_price",
        "aggregate_query_history",
        "statement_path",
    }
)
# an unknown connection name (or no default one) in connections.toml, a file that does
# not parse: the connector raises a plain Error for these, before any network traffic
_CONFIG_TEXT = re.compile(
    r"invalid connection_name|connection with name .* cannot be found|"
    r"error happened while loading|connections\.toml"
)
AUTH_ERRNOS = frozenset({390100, 390101, 390102, 390144, 251005, 251006})
TIMEOUT_ERRNOS = frozenset({604, 630, 250008, 251004})
LOCK_ERRNOS = frozenset({625, 2084, 3700})
THROTTLE_ERRNOS = frozenset({429, 621, 3001, 90064})


def connect_kwargs(target: Target, timeout_s: float) -> dict[str, Any]:
    """Translation of the workload's target into connector arguments (pure, except that
    for SPCS it reads the token file: every connection gets the current token)."""
    unknown = set(target.options) - ALLOWED_OPTIONS
    if unknown:
        raise DriverError(
            ErrorCategory.CONFIG,
            f"unsupported snowflake option(s): {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(ALLOWED_OPTIONS))}",
        )
    options = dict(target.options)
    session = dict(DEFAULT_SESSION_PARAMETERS)  # a fresh dict per connection: the
    session.update({str(k): str(v) for k, v in dict(options.pop("session_parameters", {})).items()})
    for local in (
        "query_tag_prefix",
        "query_history",
        "query_id_samples",
        "credit_price",
        "aggregate_query_history",
        "statement_path",
    ):
        options.pop(local, None)
    timeout = max(1, int(timeout_s))
    kwargs: dict[str, Any] = {
        "connection_name": target.connection,
        "login_timeout": int(options.pop("login_timeout", timeout)),
        "network_timeout": int(options.pop("network_timeout", max(timeout, 60))),
        "socket_timeout": int(options.pop("socket_timeout", max(timeout, 60))),
        "platform_detection_timeout_seconds": 0.0,  # detection added ~10 s per connect
        "client_session_keep_alive": False,  # no heartbeat thread per connection
        "session_parameters": session,  # (the connector mutates the dict it is given)
        "paramstyle": "qmark",
        "autocommit": True,
    }
    if target.connection in ("", spcs.CONNECTION_NAME):  # inside SPCS: the service's
        del kwargs["connection_name"]  # own login, with the token as it is now
        kwargs.update(spcs.connect_kwargs())
    kwargs.update(options)
    return kwargs


class SampleBudget:
    """How many (query id, latency) samples the connections of one worker process keep
    between them (``options.query_id_samples``): a cap per process, not per connection,
    so that memory does not grow with the number of connections."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._taken = itertools.count()

    def take(self) -> bool:
        return next(self._taken) < self.limit  # (itertools.count: atomic under the GIL)


class SnowflakeConnection(Connection):
    def __init__(
        self,
        conn: Any,
        prefix: str = "",
        max_samples: int = 100_000,
        budget: SampleBudget | None = None,
    ) -> None:
        self._conn = conn
        self._cursor = conn.cursor()
        self._prefix = prefix
        self._own: dict[str, str] | None = None
        """Statement parameters of snowload's own statements (see tag_own)."""
        self._inflight: tuple[str, uuid.UUID] | None = None
        """(SQL, request id) of the statement the connector's cursor is running, for
        ``cancel`` from another thread."""
        self.last_query_id = ""
        self.budget = budget if budget is not None else SampleBudget(max_samples)
        self._sampling = self.budget.limit > 0
        self.query_samples: list[tuple[str, int]] = []
        """(query id, client latency µs) of this connection's queries while the worker's
        budget lasts, joined with the server's history during enrichment."""

    def compile(self, query: Query, tag: Tag) -> Any:
        return (query.sql, {"QUERY_TAG": self._prefix + tag.compact()})

    def execute(self, compiled: Any, params: Sequence[Any]) -> None:
        sql, statement_params = compiled[0], compiled[1]
        cur = self._cursor
        began = time.perf_counter_ns()
        rid = new_request_id()  # (as _own_statement does, inline: the hot path)
        self._inflight = (sql, rid)
        try:
            cur.execute(
                sql, params, _statement_params={**statement_params, REQUEST_ID_PARAMETER: rid}
            )
        finally:
            self._inflight = None
        if cur.description:
            cur.fetchall()
        self.last_query_id = cur.sfqid or ""
        if self._sampling and self.last_query_id:
            self._sample(began)

    def _sample(self, began_ns: int) -> None:
        """Keep (last query id, latency) while the worker's budget lasts."""
        if self.budget.take():
            self.query_samples.append(
                (self.last_query_id, (time.perf_counter_ns() - began_ns) // 1000)
            )
        else:
            self._sampling = False

    def tag_own(self, tag: str) -> None:
        self._own = {"QUERY_TAG": self._prefix + tag}

    def server_id(self, error: BaseException | None = None) -> str:
        """The Snowflake query id (the connector's ``sfqid``; a failed query's comes with
        its error, when the server assigned one)."""
        if error is not None:
            return str(getattr(error, "sfqid", None) or "")
        return self.last_query_id

    def _own_statement(self, sql: str, params: Any = None, **options: Any) -> Any:
        """One of snowload's own statements on the connector's cursor, abortable by
        ``cancel`` as a load statement is; returns the cursor."""
        rid = new_request_id()
        statement_params = {**(self._own or {}), REQUEST_ID_PARAMETER: rid}
        self._inflight = (sql, rid)
        try:
            return self._cursor.execute(sql, params, _statement_params=statement_params, **options)
        finally:
            self._inflight = None

    def execute_script(self, statements: Sequence[str]) -> None:
        for sql in statements:
            self._own_statement(sql)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._cursor
        self._own_statement(sql, params)
        return list(cur.fetchall()) if cur.description else []

    def prepare_only(self, query: Query) -> None:
        """The connector's describe-only request: Snowflake compiles the statement and
        returns its result's columns without running it. (Setup SQL cannot be rolled back
        here: DDL commits in Snowflake, so rolled_back() yields False.)"""
        self._own_statement(query.sql, _describe_only=True)

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts keyed by lower-case column name (SHOW commands)."""
        cur = self._cursor
        self._own_statement(sql, params or None)
        if not cur.description:
            return []
        names = [str(d[0]).lower() for d in cur.description]
        return [dict(zip(names, row, strict=False)) for row in cur.fetchall()]

    def cancel(self) -> None:
        """Abort the statement the connector's cursor is running, by its SQL and request
        id, as the connector aborts its own on a timeout; nothing when none runs. From
        any thread; never raises."""
        inflight = self._inflight
        if inflight is not None:
            abort(self._conn, sent_text(inflight[0]), inflight[1])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._cursor.close()
        self._conn.close()


class SnowflakeDriver(Driver):
    name = "snowflake"

    def __init__(self) -> None:
        self._budget: SampleBudget | None = None
        """Shared by every connection this driver opens (one executor: one process)."""

    def connect(self, target: Target, timeout_s: float) -> Connection:
        kwargs, query_socket_timeout = login_bounded(connect_kwargs(target, timeout_s), timeout_s)
        try:
            conn = snowflake.connector.connect(**kwargs)
        except Exception as exc:
            raise DriverError(self.classify(exc), self.describe_error(exc)) from exc
        return self.session(conn, target, query_socket_timeout)

    def session(
        self, conn: Any, target: Target, query_socket_timeout: int = 60
    ) -> SnowflakeConnection:
        """snowload's connection around a logged-in connector connection."""
        # the login's bound was for the login: a statement's request may take the
        # server's ~45 s of long polling
        conn._socket_timeout = query_socket_timeout
        # with a network timeout the connector starts a timer thread for every statement
        # (its cancellation "timebomb"): statements go without one unless the workload
        # asks for it; each request stays bounded by the socket timeout
        conn._network_timeout = target.options.get("network_timeout")
        skip_environment_lookups(conn)
        if self._budget is None:
            self._budget = SampleBudget(int(target.options.get("query_id_samples", 100_000)))
        prefix = str(target.options.get("query_tag_prefix", ""))
        if statement_path(target) is StatementPath.LEAN:
            from worker.drivers.snowflake_lean import LeanSnowflakeConnection, lean_possible

            if lean_possible(conn):
                return LeanSnowflakeConnection(conn, prefix, budget=self._budget)
        return SnowflakeConnection(conn, prefix, budget=self._budget)

    def classify(self, exc: BaseException) -> ErrorCategory:
        errno = int(getattr(exc, "errno", 0) or 0)
        state = str(getattr(exc, "sqlstate", "") or "")
        text = str(exc).lower()
        if errno in AUTH_ERRNOS or state.startswith("28") or "incorrect username" in text:
            return ErrorCategory.AUTH
        if isinstance(exc, sferrors.ConfigSourceError) or _CONFIG_TEXT.search(text):
            return ErrorCategory.CONFIG
        if errno == 250001 or "could not connect" in text:
            return ErrorCategory.NETWORK
        if errno in TIMEOUT_ERRNOS or state == "57014" or "timed out" in text:
            return ErrorCategory.TIMEOUT
        if errno in THROTTLE_ERRNOS or "too many requests" in text:
            return ErrorCategory.THROTTLED
        if errno in LOCK_ERRNOS or ("lock" in text and "wait" in text):
            return ErrorCategory.LOCK
        if state.startswith("23") or "constraint" in text or "duplicate key" in text:
            return ErrorCategory.CONSTRAINT
        if state.startswith("42") or "syntax error" in text or "does not exist" in text:
            return ErrorCategory.SYNTAX
        if isinstance(
            exc, sferrors.OperationalError | ConnectionError | OSError
        ) or state.startswith("08"):
            return ErrorCategory.NETWORK
        if isinstance(exc, sferrors.Error) and "connection" in text:
            return ErrorCategory.NETWORK
        return ErrorCategory.OTHER

    def describe_error(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split())
        cause = _transport_cause(exc)
        if cause is not None:  # e.g. "Could not connect ... after 1 attempt(s)" has no why
            text += f" (cause: {type(cause).__name__}: {' '.join(str(cause).split())})"
        return redact(f"{type(exc).__name__}: {text}")[:500]


def statement_path(target: Target) -> StatementPath:
    """How load statements go (``options.statement_path``, checked by the parser)."""
    return StatementPath(str(target.options.get("statement_path", StatementPath.LEAN.value)))


def login_bounded(kwargs: dict[str, Any], timeout_s: float) -> tuple[dict[str, Any], int]:
    """The connector's arguments with the login bounded by ``timeout_s`` (what is left
    of the run's READY deadline), and the socket timeout to restore for statements.

    A host that accepts connections but never answers holds a login for the *socket*
    timeout (``login_timeout`` bounds only retries), so both are cut to ``timeout_s``:
    the connector's own error then reaches the run before its READY deadline."""
    bound = max(1, int(timeout_s))
    out = dict(kwargs)
    query_socket = int(out.get("socket_timeout") or 60)
    out["socket_timeout"] = min(query_socket, bound)
    out["login_timeout"] = min(int(out.get("login_timeout") or bound), bound)
    return out, query_socket


def _transport_cause(exc: BaseException) -> BaseException | None:
    """The first non-connector exception behind ``exc`` (a read timeout, a refused
    connection: it names the host and the timeout), if any."""
    seen: set[int] = set()
    cur = exc.__cause__ or exc.__context__
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if not isinstance(cur, sferrors.Error):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None
