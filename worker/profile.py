"""The server's side of one logged query (``snowload runs profile``), fetched from this
host with its own credentials.

PostgreSQL: ``EXPLAIN (ANALYZE, BUFFERS)`` of the statement with its recorded parameters
(bound like the load bound them: text values the server types). ANALYZE runs the
statement, so it runs inside a transaction that is always rolled back, and unless writes
are allowed, a READ ONLY one, after a statement check: a statement that writes is refused
by the check or, failing that, by the server itself.

Snowflake: the query's QUERY_HISTORY row (by query id) and GET_QUERY_OPERATOR_STATS.
``target.options.query_history`` names a stand-in relation for the history, as for
enrichment (worker/enrichment.py).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from snowload.workload import Target
from worker.drivers import DriverError, get_driver
from worker.drivers.base import Driver
from worker.drivers.postgres import PostgresConnection, encode_param, to_numbered

CONNECT_TIMEOUT_S = 15.0
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"[^\"]*\"", re.DOTALL)
_READ_ONLY_START = ("SELECT", "WITH", "VALUES", "TABLE")
_WRITING = re.compile(
    r"\b(INSERT|UPDATE|DELETE|MERGE|TRUNCATE|CREATE|DROP|ALTER|GRANT|REVOKE|COPY|CALL|DO|"
    r"LOCK|VACUUM|CLUSTER|REINDEX|REFRESH|NOTIFY|INTO|FOR\s+(?:NO\s+KEY\s+)?UPDATE|"
    r"FOR\s+(?:KEY\s+)?SHARE)\b",
    re.IGNORECASE,
)


class ProfileRefused(Exception):
    """The statement may write and writes were not allowed (nothing ran)."""


class ProfileFailed(Exception):
    """The server rejected the profile (the message says why)."""


@dataclass
class Profile:
    """What the server said about the query."""

    title: str
    lines: list[str] = field(default_factory=list)
    """PostgreSQL: the plan, as EXPLAIN prints it."""
    history: dict[str, Any] | None = None
    """Snowflake: the QUERY_HISTORY row (column -> value)."""
    operators: list[dict[str, Any]] = field(default_factory=list)
    """Snowflake: GET_QUERY_OPERATOR_STATS, one row per operator."""
    notes: list[str] = field(default_factory=list)
    """What could not be fetched, and why."""


def writes(sql: str) -> str | None:
    """Why ``sql`` may write (a keyword that writes, or a statement that is not a query);
    None for a plain query. Conservative: a false alarm needs ``--allow-writes``."""
    text = _COMMENT.sub(" ", sql).strip()
    first = text.split(None, 1)[0].upper() if text else ""
    if first not in _READ_ONLY_START:
        return f"it is a {first or 'empty'} statement, not a query"
    m = _WRITING.search(text)
    if m is not None:
        return f"it contains {' '.join(m.group(1).upper().split())}"
    return None


def connect(target: Target, driver: Driver | None = None) -> Any:
    """A connection to the target from this host (DriverError if it cannot be reached)."""
    driver = driver or get_driver(target.driver)
    return driver.connect(target, CONNECT_TIMEOUT_S)


def explain_postgres(
    target: Target, sql: str, params: Sequence[Any], *, allow_writes: bool = False
) -> Profile:
    """EXPLAIN (ANALYZE, BUFFERS) of ``sql`` (``?`` placeholders) with ``params``."""
    if not allow_writes and (why := writes(sql)) is not None:
        raise ProfileRefused(f"the statement may write ({why}); --allow-writes runs it anyway")
    conn = connect(target)
    assert isinstance(conn, PostgresConnection)
    raw = conn.raw
    pg = raw.pgconn
    try:
        _begin(raw, allow_writes)
        try:
            statement = "EXPLAIN (ANALYZE, BUFFERS) " + to_numbered(sql)
            try:
                result = pg.exec_params(
                    statement.encode(raw.info.encoding), [encode_param(v) for v in params]
                )
            except Exception as exc:  # (psycopg.Error: the connection broke)
                raise ProfileFailed(_first_line(exc)) from exc
            error = result.error_message.decode(errors="replace").strip()
            if error:
                raise ProfileFailed(error.splitlines()[0])
            rows = [result.get_value(i, 0) for i in range(result.ntuples)]
            lines = [r.decode() if r is not None else "" for r in rows]
        finally:
            _rollback(raw)
    finally:
        conn.close()
    mode = "read-write, rolled back" if allow_writes else "read-only, rolled back"
    return Profile(title=f"EXPLAIN (ANALYZE, BUFFERS), {mode}", lines=lines)


def _begin(raw: Any, allow_writes: bool) -> None:
    try:
        raw.execute("BEGIN READ WRITE" if allow_writes else "BEGIN READ ONLY")
    except Exception as exc:  # (psycopg.Error: the connection broke)
        raise ProfileFailed(_first_line(exc)) from exc


def _rollback(raw: Any) -> None:
    with contextlib.suppress(Exception):  # a broken connection rolls back by itself
        raw.execute("ROLLBACK")


HISTORY_SOURCE = "TABLE(INFORMATION_SCHEMA.QUERY_HISTORY(RESULT_LIMIT => 10000))"


def snowflake_profile(target: Target, query_id: str) -> Profile:
    """The QUERY_HISTORY row of ``query_id`` and its operator statistics."""
    conn = connect(target)
    out = Profile(title=f"Snowflake query {query_id}")
    try:
        source = target.options.get("query_history") or HISTORY_SOURCE
        try:
            rows = conn.query_dicts(f"SELECT * FROM {source} WHERE QUERY_ID = ?", [query_id])
        except Exception as exc:
            out.notes.append(f"QUERY_HISTORY: {_first_line(exc)}")
        else:
            if rows:
                out.history = rows[0]
            else:
                out.notes.append(
                    "QUERY_HISTORY has no row for this query id yet (it lags by up to a "
                    "minute, and keeps 7 days)"
                )
        try:
            out.operators = conn.query_dicts(
                "SELECT * FROM TABLE(GET_QUERY_OPERATOR_STATS(?))", [query_id]
            )
        except Exception as exc:
            out.notes.append(f"GET_QUERY_OPERATOR_STATS: {_first_line(exc)}")
    finally:
        conn.close()
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = [
    "DriverError",
    "Profile",
    "ProfileFailed",
    "ProfileRefused",
    "explain_postgres",
    "snowflake_profile",
    "writes",
]
