"""The driver interface: connect, tag, execute with bound parameters, classify, cancel, close.

A driver is pure configuration translation plus a factory of blocking connections. Each
connection lives in one thread, which runs the hot loop; ``cancel`` may be called from any
other thread.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from snowload.workload import Query, Target
from worker.tags import Tag


class ErrorCategory(StrEnum):
    AUTH = "auth"
    CONFIG = "config"
    """The connection is misconfigured on this host: an unknown connection name, a bad
    connections.toml or dsn, an unsupported option."""
    NETWORK = "network"
    TIMEOUT = "timeout"
    SYNTAX = "syntax"
    CONSTRAINT = "constraint"
    LOCK = "lock"
    THROTTLED = "throttled"
    OTHER = "other"


class DriverError(Exception):
    """A driver failure with a stable category; the message carries no credentials."""

    def __init__(self, category: ErrorCategory, message: str) -> None:
        super().__init__(message)
        self.category = category


class PrepareFailure(StrEnum):
    """Why a run failed while a worker opened its connections (the run's reason)."""

    AUTH_FAILED = "auth_failed"
    CONFIG_ERROR = "config_error"
    TARGET_UNREACHABLE = "target_unreachable"


def prepare_failure(error: DriverError) -> PrepareFailure:
    """The run's reason for a connection that could not be opened, from its category."""
    if error.category is ErrorCategory.AUTH:
        return PrepareFailure.AUTH_FAILED
    if error.category is ErrorCategory.CONFIG:
        return PrepareFailure.CONFIG_ERROR
    return PrepareFailure.TARGET_UNREACHABLE


class Connection(ABC):
    """One open connection, used by exactly one thread (cancel excepted)."""

    def apply_tag(self, tag: Tag) -> None:  # noqa: B027 - optional hook
        """Session-level tagging, called in the connection's thread whenever the phase
        changes, before the next query. Drivers that tag per statement do nothing here."""

    def tag_own(self, tag: str) -> None:  # noqa: B027 - optional hook
        """Tag snowload's own statements on this connection (setup, pools, telemetry:
        ``execute_script``, ``query``) with ``tag`` (see worker.tags.own_tag). Drivers
        that tag per statement send it with each; the others ignore it."""

    def compile(self, query: Query, tag: Tag) -> Any:
        """Whatever ``execute`` needs for this query kind in this phase (compiled once per
        phase change, not per query). By default the SQL text."""
        return query.sql

    @abstractmethod
    def execute(self, compiled: Any, params: Sequence[Any]) -> None:
        """Run one statement with bound parameters and consume its result."""

    def execute_script(self, statements: Sequence[str]) -> None:
        """Setup SQL: run statements in order, committing as the driver requires."""
        for sql in statements:
            self.execute(sql, ())

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a statement (setup-time sampling, enrichment); not on the hot path."""
        raise NotImplementedError(f"{type(self).__name__} cannot return rows")

    def prepare_only(self, query: Query) -> None:
        """Have the server compile ``query`` without running it (``snowload check
        --connect``); raises the driver's exception if the target rejects it, and
        NotImplementedError if this driver has no way to ask."""
        raise NotImplementedError(f"{type(self).__name__} cannot prepare without running")

    @contextmanager
    def rolled_back(self) -> Iterator[bool]:
        """A transaction that is rolled back at the end, for setup SQL that a check runs
        only to compile the queries against. Yields False where DDL cannot be rolled back
        (nothing may then be run in it)."""
        yield False

    def server_id(self, error: BaseException | None = None) -> str:
        """The server's id for the last query (or for ``error``, the one that failed):
        what a person looks the query up by on the server. Empty where there is none."""
        return ""

    @abstractmethod
    def cancel(self) -> None:
        """Interrupt the running statement; safe to call from another thread."""

    @abstractmethod
    def close(self) -> None: ...


class Driver(ABC):
    name: str

    @abstractmethod
    def connect(self, target: Target, timeout_s: float) -> Connection:
        """Open one connection; raises DriverError (category network/auth/timeout/...)."""

    @abstractmethod
    def classify(self, exc: BaseException) -> ErrorCategory:
        """Map a driver exception to a stable category."""

    def describe_error(self, exc: BaseException) -> str:
        """One-line message for reports, with credentials redacted."""
        return redact(f"{type(exc).__name__}: {exc}")


def redact(text: str) -> str:
    """Remove password-like values from a message (key=value and URL forms)."""
    import re

    text = re.sub(r"(?i)(password|passwd|pwd|token|secret)=\S+", r"\1=***", text)
    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)
