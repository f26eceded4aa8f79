"""The results store in an embedded SQLite database (WAL, versioned schema).

Runs have scalar columns for listing and filtering plus their summary and SLO verdicts as
protobuf blobs; workers, phase events, the per-second series, histograms and error
samples have tables of their own (a run's row: controller/store_sqlite_runs.py; the
per-second tables: controller/store_sqlite_seconds.py). ``PRAGMA user_version`` is the
schema version; each entry of ``MIGRATIONS`` moves the schema one version up, in one
transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controller.query_log import QueryLogEntry
from controller.store import IntervalHistogram, RunRecord, RunStore, StoredSecond
from controller.store_sqlite_runs import put_run, run_from_row
from controller.store_sqlite_seconds import (
    put_intervals,
    put_kind_intervals,
    put_seconds,
    put_series,
    read_intervals,
    read_kind_intervals,
    read_series,
    read_stored_seconds,
)
from snowload.v1 import common_pb2, run_pb2

MIGRATIONS: list[str] = [
    # version 1
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        state INTEGER NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        message TEXT NOT NULL DEFAULT '',
        mode INTEGER NOT NULL,
        target TEXT NOT NULL,
        create_ns INTEGER NOT NULL,
        start_ns INTEGER,
        measurement_start_ns INTEGER,
        measurement_end_ns INTEGER,
        end_ns INTEGER,
        workers INTEGER NOT NULL,
        connections INTEGER NOT NULL,
        warmup_ns INTEGER NOT NULL,
        duration_ns INTEGER NOT NULL,
        workload_json TEXT NOT NULL DEFAULT '',
        summary BLOB,
        slo BLOB,
        slo_passed INTEGER NOT NULL DEFAULT 1,
        enrichment INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_by_time ON runs (create_ns DESC);
    CREATE TABLE run_events (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        state INTEGER NOT NULL,
        event_ns INTEGER NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE run_workers (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        worker_index INTEGER NOT NULL,
        record BLOB NOT NULL,
        PRIMARY KEY (run_id, worker_index)
    );
    CREATE TABLE series (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        second INTEGER NOT NULL,
        phase INTEGER NOT NULL,
        qps REAL NOT NULL,
        p95_ms REAL NOT NULL,
        errors INTEGER NOT NULL,
        point BLOB NOT NULL,
        PRIMARY KEY (run_id, second)
    );
    CREATE TABLE histograms (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        phase INTEGER NOT NULL,
        kind TEXT NOT NULL,
        encoded BLOB NOT NULL,
        PRIMARY KEY (run_id, phase, kind)
    );
    CREATE TABLE interval_histograms (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        second INTEGER NOT NULL,
        phase INTEGER NOT NULL,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL,
        encoded BLOB NOT NULL,
        PRIMARY KEY (run_id, second, phase)
    );
    CREATE TABLE error_samples (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        category TEXT NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (run_id, category, message)
    );
    """,
    # version 2: server-side timings (enrichment results)
    """
    ALTER TABLE runs ADD COLUMN server BLOB
    """,
    # version 3: flags, warnings and warehouse figures (a Run message holding just those)
    """
    ALTER TABLE runs ADD COLUMN extra BLOB
    """,
    # version 4: error samples name their query kind, and keep their order
    """
    CREATE TABLE error_samples_v4 (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL DEFAULT '',
        category TEXT NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    INSERT INTO error_samples_v4 (run_id, seq, category, message)
        SELECT run_id, rowid, category, message FROM error_samples;
    DROP TABLE error_samples;
    ALTER TABLE error_samples_v4 RENAME TO error_samples
    """,
    # version 5: the query log (slowest queries, first failures, a uniform sample)
    """
    CREATE TABLE query_log (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        entry_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        phase INTEGER NOT NULL,
        latency_ms REAL NOT NULL,
        failed INTEGER NOT NULL,
        slowest INTEGER NOT NULL,
        entry BLOB NOT NULL,
        PRIMARY KEY (run_id, entry_id)
    )
    """,
    # version 6: names for runs (baselines)
    """
    CREATE TABLE run_tags (
        name TEXT PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE
    )
    """,
    # version 7: each sealed second's data per (phase, kind), written while the run goes
    # on, so the totals of a run a crash interrupted can be merged again (and per-kind
    # seconds serve compare verdicts)
    """
    CREATE TABLE second_cells (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        second INTEGER NOT NULL,
        phase INTEGER NOT NULL,
        kind TEXT NOT NULL,
        histogram BLOB NOT NULL,
        service BLOB NOT NULL,
        errors TEXT NOT NULL,
        PRIMARY KEY (run_id, second, phase, kind)
    )
    """,
    # version 8: each sealed second's open-mode figures per phase (lag, late, dropped),
    # so those of a run a crash interrupted can be merged again
    """
    CREATE TABLE second_schedules (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        second INTEGER NOT NULL,
        phase INTEGER NOT NULL,
        lag BLOB NOT NULL,
        late INTEGER NOT NULL,
        dropped INTEGER NOT NULL,
        PRIMARY KEY (run_id, second, phase)
    )
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    pass


class SqliteRunStore(RunStore):
    def __init__(self, path: Path) -> None:
        self.path = path
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = _connect(path)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._migrate()
        self._writer: sqlite3.Connection | None = None
        """The seconds writer's own connection (its thread never waits for the loop's)."""
        self._writer_lock = threading.Lock()

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} has schema version {version}; this snowload knows up to "
                f"{SCHEMA_VERSION}. Upgrade snowload or use another --db."
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._tx() as db:
                for statement in MIGRATIONS[target - 1].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {target}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _transaction(self._db):
            yield self._db

    def _writer_db(self) -> tuple[sqlite3.Connection, threading.Lock]:
        if str(self.path) == ":memory:":
            return self._db, self._lock  # (a second connection would be another database)
        if self._writer is None:
            self._writer = _connect(self.path)
        return self._writer, self._writer_lock

    # -- writes --------------------------------------------------------------------------

    def put(self, run: run_pb2.Run) -> None:
        with self._tx() as db:
            put_run(db, run)

    def save(self, record: RunRecord) -> None:
        run_id = record.run.run_id
        with self._tx() as db:
            put_run(db, record.run)
            # (seconds written while the run went on stay: a record adds or replaces)
            put_series(db, run_id, record.series)
            db.execute("DELETE FROM histograms WHERE run_id = ?", (run_id,))
            db.executemany(
                "INSERT INTO histograms VALUES (?, ?, ?, ?)",
                [(run_id, ph, kind, enc) for (ph, kind), enc in record.histograms.items()],
            )
            db.execute("DELETE FROM query_log WHERE run_id = ?", (run_id,))
            db.executemany(
                "INSERT INTO query_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        e.entry_id,
                        e.kind,
                        e.phase,
                        e.latency_ms,
                        int(bool(e.error)),
                        int(e.slowest),
                        e.SerializeToString(),
                    )
                    for e in record.queries
                ],
            )
            put_intervals(db, run_id, [i for i in record.intervals if not i.kind])
            put_kind_intervals(db, run_id, [i for i in record.intervals if i.kind])

    def append_seconds(self, run_id: str, seconds: list[StoredSecond]) -> None:
        try:
            self._append_seconds(run_id, seconds)
        except sqlite3.Error:
            # a connection SQLite opened while the filesystem was read-only stays read-only,
            # and one that saw I/O errors may hold a stale view of the WAL index: the next
            # batch opens a fresh one
            self._drop_writer()
            raise

    def _drop_writer(self) -> None:
        with self._writer_lock:
            if self._writer is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._writer.close()
                self._writer = None

    def _append_seconds(self, run_id: str, seconds: list[StoredSecond]) -> None:
        db, lock = self._writer_db()
        with lock, _transaction(db):
            put_seconds(db, run_id, seconds)

    # -- reads ---------------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def get(self, run_id: str) -> run_pb2.Run | None:
        rows = self._rows("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            return None
        run = run_from_row(rows[0])
        for state, event_ns, reason in self._rows(
            "SELECT state, event_ns, reason FROM run_events WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ):
            event = run.events.add(state=state, reason=reason)
            event.event_time.FromNanoseconds(int(event_ns))  # type: ignore[call-overload]
        for (blob,) in self._rows(
            "SELECT record FROM run_workers WHERE run_id = ? ORDER BY worker_index", (run_id,)
        ):
            run.run_workers.add().ParseFromString(blob)  # type: ignore[arg-type]
        for kind, category, message in self._rows(
            "SELECT kind, category, message FROM error_samples WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ):
            run.error_samples.add(kind=str(kind), category=str(category), message=str(message))
        return run

    def list_runs(self, limit: int, offset: int = 0) -> list[run_pb2.Run]:
        rows = self._rows(
            "SELECT * FROM runs ORDER BY create_ns DESC, run_id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        runs = [run_from_row(r) for r in rows]
        for run in runs:
            run.workload_json = ""
            run.ClearField("pools")
        return runs

    def series(self, run_id: str) -> list[common_pb2.SeriesPoint]:
        return read_series(self._rows, run_id)

    def histograms(self, run_id: str) -> dict[tuple[int, str], bytes]:
        return {
            (int(ph), str(kind)): bytes(enc)  # type: ignore[call-overload]
            for ph, kind, enc in self._rows(
                "SELECT phase, kind, encoded FROM histograms WHERE run_id = ?", (run_id,)
            )
        }

    def intervals(self, run_id: str) -> list[IntervalHistogram]:
        return read_intervals(self._rows, run_id)

    def query_entries(self, run_id: str) -> list[QueryLogEntry]:
        out = []
        for (blob,) in self._rows(
            "SELECT entry FROM query_log WHERE run_id = ? ORDER BY entry_id", (run_id,)
        ):
            entry = common_pb2.QueryEntry()
            entry.ParseFromString(blob)  # type: ignore[arg-type]
            out.append(QueryLogEntry.from_proto(entry))
        return out

    def tag(self, name: str, run_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO run_tags VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id",
                (name, run_id),
            )

    def tagged(self, name: str) -> str | None:
        rows = self._rows("SELECT run_id FROM run_tags WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    def tags(self, run_id: str) -> list[str]:
        rows = self._rows("SELECT name FROM run_tags WHERE run_id = ? ORDER BY name", (run_id,))
        return [str(r[0]) for r in rows]

    def kind_intervals(self, run_id: str) -> list[IntervalHistogram]:
        return read_kind_intervals(self._rows, run_id)

    def stored_seconds(self, run_id: str) -> list[StoredSecond]:
        return read_stored_seconds(self._rows, run_id)

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    return db


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
