"""A stored run written into PostgreSQL or Snowflake tables (``snowload runs export RUN
--to postgres|snowflake``, ``snowload controller --export-to``), where teams query runs
with SQL. The tables are created if absent (controller.results_tables, documented in
docs/results-tables.md); an export replaces the run's rows in one transaction, so a second
export of a run replaces the first; tables of a newer schema version are refused.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from controller.results_tables import (
    SCHEMA_VERSION,
    VERSION_TABLE,
    Table,
    ddl,
    tables,
)
from controller.store import RunStore
from worker.drivers.base import redact

if TYPE_CHECKING:
    from controller.orchestrator import RunManager
    from controller.runs import ActiveRun

log = logging.getLogger("snowload.controller")
BATCH_ROWS = 1000
"""Rows per executemany: Snowflake's connector uploads bigger array binds to a stage."""
_IDENT = r"[A-Za-z_][A-Za-z0-9_$]*"
_SCHEMA = {
    "postgres": re.compile(rf"^{_IDENT}$"),
    "snowflake": re.compile(rf"^{_IDENT}(\.{_IDENT})?$"),
}


class Sink(StrEnum):
    POSTGRES = "postgres"
    SNOWFLAKE = "snowflake"


class ExportError(Exception):
    """Why an export did not happen (nothing was written); the message names it."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused
        """The input or the tables were refused (not a failure to reach the database)."""


@dataclass(frozen=True)
class Destination:
    sink: Sink
    dsn: str = ""
    """PostgreSQL: a libpq connection string (its password from PGPASSWORD or ~/.pgpass)."""
    connection: str = ""
    """Snowflake: a connection name in this host's connections.toml."""
    schema: str = ""
    """Where the tables go ('' = the connection's own schema; Snowflake: SCHEMA or DB.SCHEMA)."""

    def __post_init__(self) -> None:
        if self.sink is Sink.POSTGRES and not self.dsn:
            raise ExportError("--to postgres needs --dsn DSN", refused=True)
        if self.sink is Sink.SNOWFLAKE and not self.connection:
            raise ExportError("--to snowflake needs --connection NAME", refused=True)
        if self.schema and not _SCHEMA[self.sink.value].match(self.schema):
            raise ExportError(
                f"--schema {self.schema!r}: not a {self.sink.value} schema name "
                "(letters, digits, _ and $; Snowflake also DB.SCHEMA)",
                refused=True,
            )

    @classmethod
    def parse(cls, text: str, schema: str = "") -> Destination:
        """``postgres:DSN`` or ``snowflake:CONNECTION`` (``--export-to``)."""
        kind, sep, rest = text.partition(":")
        if not sep or kind not in (s.value for s in Sink) or not rest.strip():
            raise ExportError(
                f"--export-to {text!r}: expected postgres:DSN or snowflake:CONNECTION",
                refused=True,
            )
        sink = Sink(kind)
        if sink is Sink.POSTGRES:
            return cls(sink, dsn=rest, schema=schema)
        return cls(sink, connection=rest.strip(), schema=schema)

    def describe(self) -> str:
        where = f"schema {self.schema}" if self.schema else "the connection's schema"
        what = f"connection {self.connection!r}" if self.sink is Sink.SNOWFLAKE else "dsn"
        return f"{self.sink.value} ({what}, {where})"


@dataclass(frozen=True)
class Exported:
    run_id: str
    rows: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        return ", ".join(f"{name} {n}" for name, n in self.rows.items())


def export_run(store: RunStore, run_id: str, dest: Destination) -> Exported:
    """Blocking: write one stored run (by id or unique prefix) to ``dest``."""
    run = store.find(run_id)
    if run is None:
        raise ExportError(f"no run {run_id!r} in the results store", refused=True)
    exported = datetime.now(UTC).isoformat(timespec="microseconds")
    data = tables(run, store.series(run.run_id), store.histograms(run.run_id), exported)
    writer = _postgres if dest.sink is Sink.POSTGRES else _snowflake
    writer(dest, run.run_id, data, exported)
    return Exported(run.run_id, {t.name: len(t.rows) for t in data})


def _insert_sql(prefix: str, table: Table, mark: str) -> str:
    marks = ", ".join([mark] * len(table.columns))
    return f"INSERT INTO {prefix}{table.name} ({', '.join(table.columns)}) VALUES ({marks})"


def _check_version(found: Any, where: str) -> bool:
    """True if the version table is empty (this export records its version)."""
    if found is None:
        return True
    if int(found) > SCHEMA_VERSION:
        raise ExportError(
            f"the results tables in {where} are at schema version {int(found)}; this snowload "
            f"writes version {SCHEMA_VERSION} (docs/results-tables.md): upgrade snowload, or "
            "export into another schema (--schema)",
            refused=True,
        )
    return False


def _batches(rows: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    return [rows[i : i + BATCH_ROWS] for i in range(0, len(rows), BATCH_ROWS)]


def _postgres(dest: Destination, run_id: str, data: list[Table], exported: str) -> None:
    import psycopg

    prefix = f"{dest.schema}." if dest.schema else ""
    try:
        conn = psycopg.connect(
            dest.dsn, connect_timeout=15, application_name=f"sl/{run_id[:8]}/export"
        )
    except psycopg.Error as exc:
        raise ExportError(f"postgres: {_first_line(exc)}") from exc
    try:
        with conn, conn.cursor() as cur:  # one transaction (DDL included): all or nothing
            if dest.schema:
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {dest.schema}")
            for statement in ddl(dest.schema):
                cur.execute(statement)  # (identifiers validated)
            cur.execute(f"SELECT MAX(version) FROM {prefix}{VERSION_TABLE}")
            row = cur.fetchone()
            if _check_version(row[0] if row else None, dest.schema or "the search path"):
                cur.execute(
                    f"INSERT INTO {prefix}{VERSION_TABLE} (version, applied_time) VALUES (%s, %s)",
                    (SCHEMA_VERSION, exported),
                )
            for table in data:
                cur.execute(f"DELETE FROM {prefix}{table.name} WHERE run_id = %s", (run_id,))
            for table in data:
                for batch in _batches(table.rows):
                    cur.executemany(_insert_sql(prefix, table, "%s"), batch)
    except psycopg.Error as exc:
        raise ExportError(f"postgres: {_first_line(exc)}") from exc
    finally:
        conn.close()


def _snowflake(dest: Destination, run_id: str, data: list[Table], exported: str) -> None:
    import snowflake.connector
    from snowflake.connector import errors as sferrors

    prefix = f"{dest.schema}." if dest.schema else ""
    try:
        conn = snowflake.connector.connect(
            connection_name=dest.connection,
            paramstyle="qmark",
            autocommit=True,
            login_timeout=30,
            network_timeout=120,
            socket_timeout=60,
            platform_detection_timeout_seconds=0.0,
            client_session_keep_alive=False,
            session_parameters={"QUERY_TAG": f"sl/{run_id[:8]}/export"},
        )
    except Exception as exc:
        raise ExportError(f"snowflake: {_first_line(exc)}") from exc
    try:
        cur = conn.cursor()
        if dest.schema:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {dest.schema}")
        for statement in ddl(dest.schema):  # (DDL commits by itself in Snowflake)
            cur.execute(statement)
        cur.execute(f"SELECT MAX(version) FROM {prefix}{VERSION_TABLE}")
        row = cur.fetchone()
        if _check_version(row[0] if row else None, dest.schema or "the connection's schema"):
            cur.execute(
                f"INSERT INTO {prefix}{VERSION_TABLE} (version, applied_time) VALUES (?, ?)",
                (SCHEMA_VERSION, exported),
            )
        cur.execute("BEGIN")
        try:
            for table in data:
                cur.execute(f"DELETE FROM {prefix}{table.name} WHERE run_id = ?", (run_id,))
            for table in data:
                for batch in _batches(table.rows):
                    cur.executemany(_insert_sql(prefix, table, "?"), batch)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
    except sferrors.Error as exc:
        raise ExportError(f"snowflake: {_first_line(exc)}") from exc
    finally:
        conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(f"{type(exc).__name__}: {text[0] if text else ''}")


class RunExporter:
    """``snowload controller --export-to``: every finished run, exported in a thread once
    it is stored (a failure is logged; the run and the store are unaffected)."""

    def __init__(self, store: RunStore, dest: Destination) -> None:
        self.store = store
        self.dest = dest
        self.pending: set[asyncio.Future[Exported | None]] = set()

    def attach(self, runs: RunManager) -> None:
        previous: Callable[[ActiveRun], None] | None = runs.on_run_end

        def ended(run: ActiveRun) -> None:
            if previous is not None:
                previous(run)
            self.schedule(run.run_id)

        runs.on_run_end = ended

    def schedule(self, run_id: str) -> None:
        future = asyncio.get_running_loop().run_in_executor(None, self._export, run_id)
        self.pending.add(future)
        future.add_done_callback(self.pending.discard)

    def _export(self, run_id: str) -> Exported | None:
        try:
            done = export_run(self.store, run_id, self.dest)
        except ExportError as exc:
            log.error("run %s: export to %s failed: %s", run_id, self.dest.describe(), exc)
            return None
        except Exception:
            log.exception("run %s: export to %s failed", run_id, self.dest.describe())
            return None
        log.info("run %s exported to %s: %s", run_id, self.dest.describe(), done.describe())
        return done

    async def drain(self, timeout_s: float = 60.0) -> None:
        """Wait for exports under way (at shutdown)."""
        if self.pending:
            await asyncio.wait(set(self.pending), timeout=timeout_s)


__all__ = ["Destination", "ExportError", "Exported", "RunExporter", "Sink", "export_run"]
