"""Server-side timings fetched by one worker after a run (the controller never connects).

PostgreSQL: ``pg_stat_statements`` snapshots when MEASUREMENT begins and after the load
drained; the difference per statement is matched to query kinds by normalised SQL.
Snowflake: the query history for the run's window and tag, paged by time in pages of
10,000 rows, with compile/execution/queued/blocked/total times per kind and phase, and
the application overhead (client latency minus server total) for queries joined by id.
SQLite has no server side: SKIPPED.
"""

from __future__ import annotations

import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hdrh.histogram import HdrHistogram

from snowload import hdr
from snowload.v1 import common_pb2
from snowload.workload import Driver as DriverName
from snowload.workload import Workload
from worker.drivers import Connection, DriverError, get_driver
from worker.tags import Purpose, Tag, own_tag, parse_compact

COMPLETED = common_pb2.ENRICHMENT_STATUS_COMPLETED
FAILED = common_pb2.ENRICHMENT_STATUS_FAILED
SKIPPED = common_pb2.ENRICHMENT_STATUS_SKIPPED


def result(
    status: int, message: str, timings: Sequence[common_pb2.ServerTiming] = ()
) -> common_pb2.Enrichment:
    return common_pb2.Enrichment(status=status, message=message, timings=list(timings))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Window:
    run_id: str
    start_ns: int
    end_ns: int
    expected_queries: int = 0


class Enricher(ABC):
    def __init__(self, workload: Workload) -> None:
        self.workload = workload

    def before_measurement(self) -> None:  # noqa: B027 - optional hook
        """Called (in a thread) when the load begins: slow set-up for the snapshot that
        on_measurement_start takes (so that one does little at the boundary)."""

    def on_measurement_start(self) -> None:  # noqa: B027 - optional hook
        """Called (in a thread) at the instant MEASUREMENT begins."""

    @abstractmethod
    def collect(self, window: Window, deadline: float) -> common_pb2.Enrichment:
        """Blocking; must return by ``deadline`` (time.monotonic)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class NoEnricher(Enricher):
    def collect(self, window: Window, deadline: float) -> common_pb2.Enrichment:
        return result(SKIPPED, f"{self.workload.target.driver.value} keeps no server-side history")


def enricher_for(workload: Workload, run_id: str = "") -> Enricher:
    driver = workload.target.driver
    if driver is DriverName.POSTGRES:
        return PostgresEnricher(workload, run_id)
    if driver is DriverName.SNOWFLAKE:
        return SnowflakeEnricher(workload)
    return NoEnricher(workload)


# ---------------------------------------------------------------------------- postgres

_LEADING_COMMENTS = re.compile(r"^\s*(/\*.*?\*/\s*)+", re.DOTALL)


def _literal(value: Any) -> str:
    """A value as an untyped SQL literal (what a text-format parameter amounts to)."""
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def normalise_sql(sql: str) -> str:
    """Leading comments off, ``?``/``%s`` placeholders as ``$n``, whitespace collapsed."""
    sql = _LEADING_COMMENTS.sub("", sql)
    n = 0

    def number(_m: re.Match[str]) -> str:
        nonlocal n
        n += 1
        return f"${n}"

    sql = re.sub(r"\?|%s", number, sql)
    return " ".join(sql.split()).rstrip(";").lower()


@dataclass
class _Stat:
    calls: int
    total_ms: float
    sumsq: float


class PostgresEnricher(Enricher):
    SNAPSHOT = (
        "SELECT queryid, query, calls, total_exec_time, mean_exec_time, stddev_exec_time "
        "FROM pg_stat_statements WHERE toplevel AND dbid = (SELECT oid FROM pg_database "
        "WHERE datname = current_database())"
    )

    def __init__(self, workload: Workload, run_id: str = "") -> None:
        super().__init__(workload)
        self.run_id = run_id
        """Its statements are tagged as the run's telemetry (none without a run)."""
        self._conn: Connection | None = None
        self._before: dict[int, tuple[str, _Stat]] | None = None
        self._error = ""
        self.query_ids: dict[int, str] = {}
        """pg_stat_statements queryid -> query kind, from EXPLAIN (VERBOSE)."""

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = get_driver(DriverName.POSTGRES).connect(self.workload.target, 10.0)
            if self.run_id:
                self._conn.tag_own(own_tag(self.run_id, Purpose.TELEMETRY))
        return self._conn

    def _snapshot(self) -> dict[int, tuple[str, _Stat]]:
        rows = self._connection().query(self.SNAPSHOT)
        out = {}
        for queryid, query, calls, total, mean, stddev in rows:
            sumsq = (float(stddev) ** 2 + float(mean) ** 2) * int(calls)
            out[int(queryid)] = (str(query), _Stat(int(calls), float(total), sumsq))
        return out

    def _identify(self) -> None:
        """The server's own query identifier of every kind (constants in the SQL are
        normalised by the server, so identifiers beat comparing texts)."""
        import random

        from worker.drivers.postgres import to_numbered
        from worker.generators import Sequences, compile_query

        conn = self._connection()
        rnd = random.Random(0)
        for i, q in enumerate(self.workload.queries):
            if any(p.kind == "pool" for p in q.params):
                continue  # no values here to probe with: matched by text instead
            params = compile_query(i, q, rnd, Sequences(0, 1))()
            # prepared exactly as the workers prepare it (untyped parameters), so the
            # identifier is the one their executions are counted under
            probe = f"snowload_probe_{i}"
            literals = ", ".join(_literal(v) for v in params)
            try:
                conn.query(f"PREPARE {probe} AS {to_numbered(q.sql)}")
                sql = f"EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE {probe}"
                plan = conn.query(sql + (f"({literals})" if params else ""))
                conn.query(f"DEALLOCATE {probe}")
            except Exception:  # e.g. a statement EXPLAIN refuses: fall back to its text
                continue
            qid = plan[0][0][0].get("Query Identifier") if plan else None
            if qid is not None:
                self.query_ids[int(qid)] = q.name

    def before_measurement(self) -> None:
        try:
            self._identify()
        except Exception as exc:  # reported in collect
            self._error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    def on_measurement_start(self) -> None:
        try:
            if not self.query_ids and not self._error:
                self._identify()
            self._before = self._snapshot()
        except Exception as exc:  # reported in collect
            self._error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    def collect(self, window: Window, deadline: float) -> common_pb2.Enrichment:
        if self._before is None:
            why = self._error or "no snapshot at the start of MEASUREMENT"
            if "pg_stat_statements" in why:
                return result(SKIPPED, f"pg_stat_statements is not available: {why}")
            return result(FAILED, why)
        try:
            after = self._snapshot()
        except Exception as exc:
            return result(FAILED, str(exc).splitlines()[0])
        wanted = {normalise_sql(q.sql): q.name for q in self.workload.queries}
        per_kind: dict[str, _Stat] = {}
        for queryid, (text, stat) in after.items():
            kind = self.query_ids.get(queryid) or wanted.get(normalise_sql(text))
            if kind is None:
                continue
            _, before = self._before.get(queryid, ("", _Stat(0, 0.0, 0.0)))
            delta = _Stat(
                stat.calls - before.calls,
                stat.total_ms - before.total_ms,
                stat.sumsq - before.sumsq,
            )
            acc = per_kind.setdefault(kind, _Stat(0, 0.0, 0.0))
            acc.calls += delta.calls
            acc.total_ms += delta.total_ms
            acc.sumsq += delta.sumsq
        timings = []
        for kind, s in sorted(per_kind.items()):
            if s.calls <= 0:
                continue
            mean = s.total_ms / s.calls
            var = max(0.0, s.sumsq / s.calls - mean * mean)
            timings.append(
                common_pb2.ServerTiming(
                    kind=kind,
                    phase=common_pb2.STATE_MEASUREMENT,
                    calls=s.calls,
                    mean_ms=mean,
                    stddev_ms=math.sqrt(var),
                )
            )
        return result(COMPLETED, "pg_stat_statements delta across MEASUREMENT", timings)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


# ---------------------------------------------------------------------------- snowflake

PAGE_ROWS = 10_000
HISTORY_COLUMNS = (
    "QUERY_ID, QUERY_TAG, START_TIME, TOTAL_ELAPSED_TIME, COMPILATION_TIME, EXECUTION_TIME, "
    "QUEUED_OVERLOAD_TIME, QUEUED_PROVISIONING_TIME, TRANSACTION_BLOCKED_TIME"
)
REAL_SOURCE = (
    "TABLE(INFORMATION_SCHEMA.QUERY_HISTORY(END_TIME_RANGE_START => TO_TIMESTAMP_LTZ(?), "
    "END_TIME_RANGE_END => TO_TIMESTAMP_LTZ(?), RESULT_LIMIT => 10000))"
)


def zoned(at: datetime) -> tuple[str, datetime]:
    """A bind value that names its zone (a ``TIMESTAMP_TZ`` binding, an instant).

    The connector binds a bare datetime as ``TIMESTAMP_NTZ``, which Snowflake reads in
    the session's TIMEZONE (America/Los_Angeles unless the account says otherwise) when
    it meets the history's ``TIMESTAMP_LTZ`` columns: hours off. A datetime without a
    zone here (a stand-in's TIMESTAMP_NTZ column read back) is UTC."""
    return ("TIMESTAMP_TZ", at if at.tzinfo is not None else at.replace(tzinfo=UTC))


def utc_at(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def run_pattern(run_id: str, prefix: str = "") -> str:
    """QUERY_TAG LIKE pattern of the run's load statements (not its own, see own_tag)."""
    return f"{prefix}sl/{run_id.replace('-', '')[:8]}/w%"


def load_tag(text: Any, prefix: str) -> Tag | None:
    """The load's tag in a history row's QUERY_TAG, or None."""
    return parse_compact(str(text or "").removeprefix(prefix))


@dataclass
class _Dists:
    total: HdrHistogram = field(default_factory=hdr.new_histogram)
    compilation: HdrHistogram = field(default_factory=hdr.new_histogram)
    execution: HdrHistogram = field(default_factory=hdr.new_histogram)
    queued: HdrHistogram = field(default_factory=hdr.new_histogram)
    blocked: HdrHistogram = field(default_factory=hdr.new_histogram)
    overhead: HdrHistogram = field(default_factory=hdr.new_histogram)
    calls: int = 0
    matched: int = 0


def _stats(h: HdrHistogram) -> common_pb2.LatencyStats:
    p = hdr.percentiles(h)
    return common_pb2.LatencyStats(
        count=p.count,
        p50_ms=p.p50_ms,
        p95_ms=p.p95_ms,
        p99_ms=p.p99_ms,
        max_ms=p.max_ms,
        mean_ms=p.mean_ms,
        min_ms=p.min_ms,
    )


class SnowflakeEnricher(Enricher):
    """Pages the query history. ``target.options.query_history`` names a relation with
    Snowflake's QUERY_HISTORY column names to read instead of the real table function
    (tests point it at a stand-in table)."""

    def __init__(self, workload: Workload) -> None:
        super().__init__(workload)
        self._conn: Connection | None = None
        self.client_samples: dict[str, int] = {}
        """query id -> client latency in µs, recorded by this worker's connections."""
        self.pages = 0

    def _connection(self, run_id: str) -> Connection:
        if self._conn is None:
            self._conn = get_driver(DriverName.SNOWFLAKE).connect(self.workload.target, 30.0)
            self._conn.tag_own(own_tag(run_id, Purpose.TELEMETRY))
        return self._conn

    @property
    def prefix(self) -> str:
        return str(self.workload.target.options.get("query_tag_prefix", ""))

    def page_sql(self) -> tuple[str, bool]:
        source = self.workload.target.options.get("query_history")
        real = not source
        sql = (
            f"SELECT {HISTORY_COLUMNS} FROM {REAL_SOURCE if real else source} "
            "WHERE QUERY_TAG LIKE ? AND START_TIME >= ? AND START_TIME <= ? "
            "AND (START_TIME > ? OR (START_TIME = ? AND QUERY_ID > ?)) "
            f"ORDER BY START_TIME, QUERY_ID LIMIT {PAGE_ROWS}"
        )
        return sql, real

    def fetch(self, window: Window, deadline: float) -> list[tuple[Any, ...]]:
        """Every history row of the run in the window, page by page (keyset on time, id)."""
        sql, real = self.page_sql()
        conn = self._connection(window.run_id)
        start = utc_at(window.start_ns)
        end = utc_at(window.end_ns + 60_000_000_000)
        pattern = run_pattern(window.run_id, self.prefix)
        rows: list[tuple[Any, ...]] = []
        cursor_time, cursor_id = start, ""
        while time.monotonic() < deadline:
            at = zoned(cursor_time)
            params: list[Any] = [pattern, zoned(start), zoned(end), at, at, cursor_id]
            if real:
                params = [at, zoned(end), *params]
            page = conn.query(sql, params)
            self.pages += 1
            rows.extend(page)
            if len(page) < PAGE_ROWS:
                break
            cursor_time, cursor_id = page[-1][2], str(page[-1][0])
        return rows

    def collect(self, window: Window, deadline: float) -> common_pb2.Enrichment:
        try:
            rows = self.fetch(window, deadline)
            while (
                window.expected_queries
                and len(rows) < 0.9 * window.expected_queries
                and time.monotonic() + 5 < deadline
            ):
                time.sleep(5)  # the history lags the queries by up to a minute
                rows = self.fetch(window, deadline)
        except DriverError as exc:
            return result(FAILED, str(exc))
        except Exception as exc:
            return result(FAILED, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        cells: dict[tuple[str, int], _Dists] = {}
        for qid, tag_text, _start, total, comp, exe, q_over, q_prov, blocked in rows:
            tag = load_tag(tag_text, self.prefix)
            if tag is None:
                continue
            d = cells.get((tag.kind, tag.phase))
            if d is None:  # (not setdefault: it would build six histograms per row)
                d = cells[(tag.kind, tag.phase)] = _Dists()
            d.calls += 1
            d.total.record_value(int(float(total or 0) * 1000))
            d.compilation.record_value(int(float(comp or 0) * 1000))
            d.execution.record_value(int(float(exe or 0) * 1000))
            d.queued.record_value(int((float(q_over or 0) + float(q_prov or 0)) * 1000))
            d.blocked.record_value(int(float(blocked or 0) * 1000))
            client_us = self.client_samples.get(str(qid))
            if client_us is not None:
                d.matched += 1
                d.overhead.record_value(max(0, client_us - int(float(total or 0) * 1000)))
        timings = [
            common_pb2.ServerTiming(
                kind=kind,
                phase=phase,  # type: ignore[arg-type]
                calls=d.calls,
                total=_stats(d.total),
                compilation=_stats(d.compilation),
                execution=_stats(d.execution),
                queued=_stats(d.queued),
                blocked=_stats(d.blocked),
                app_overhead=_stats(d.overhead),
                matched=d.matched,
                mean_ms=hdr.percentiles(d.total).mean_ms,
            )
            for (kind, phase), d in sorted(cells.items())
        ]
        status = COMPLETED if rows or not window.expected_queries else FAILED
        message = f"query history: {len(rows)} queries in {self.pages} page(s)"
        if status == FAILED:
            message = "query history returned no rows for this run before the time limit"
        return result(status, message, timings)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


AGGREGATE_SOURCE = "SNOWFLAKE.ACCOUNT_USAGE.AGGREGATE_QUERY_HISTORY"


class AggregateEnricher(Enricher):
    """A later pass for hybrid tables, whose repeated statements appear only in
    ``AGGREGATE_QUERY_HISTORY`` (per-minute buckets, up to hours late): calls and mean
    times per kind and phase are exact sums; p99 is the largest bucket p99 (an upper
    bound), max is exact. ``target.options.aggregate_query_history`` names a stand-in."""

    def __init__(self, workload: Workload) -> None:
        super().__init__(workload)
        self._conn: Connection | None = None

    def sql(self) -> str:
        source = self.workload.target.options.get("aggregate_query_history") or AGGREGATE_SOURCE
        return (
            'SELECT QUERY_TAG, SUM(CALLS), SUM(TOTAL_ELAPSED_TIME:"sum"::FLOAT), '
            'MAX(TOTAL_ELAPSED_TIME:"max"::FLOAT), MAX(TOTAL_ELAPSED_TIME:"p99"::FLOAT), '
            'SUM(COMPILATION_TIME:"sum"::FLOAT), SUM(EXECUTION_TIME:"sum"::FLOAT), '
            'SUM(QUEUED_OVERLOAD_TIME:"sum"::FLOAT), SUM(TRANSACTION_BLOCKED_TIME:"sum"::FLOAT) '
            f"FROM {source} WHERE QUERY_TAG LIKE ? AND INTERVAL_START_TIME >= ? "
            "AND INTERVAL_START_TIME <= ? GROUP BY QUERY_TAG"
        )

    def collect(self, window: Window, deadline: float) -> common_pb2.Enrichment:
        # buckets are per minute: widen the window to whole minutes around the run
        start = zoned(utc_at(window.start_ns - 60_000_000_000))
        end = zoned(utc_at(window.end_ns + 60_000_000_000))
        prefix = str(self.workload.target.options.get("query_tag_prefix", ""))
        pattern = run_pattern(window.run_id, prefix)
        try:
            if self._conn is None:
                self._conn = get_driver(DriverName.SNOWFLAKE).connect(self.workload.target, 30.0)
                self._conn.tag_own(own_tag(window.run_id, Purpose.TELEMETRY))
            rows = self._conn.query(self.sql(), (pattern, start, end))
        except Exception as exc:
            return result(FAILED, f"aggregate query history: {str(exc).splitlines()[0]}")
        cells: dict[tuple[str, int], list[float]] = {}
        for tag_text, calls, total, tmax, p99, comp, exe, queued, blocked in rows:
            tag = load_tag(tag_text, prefix)
            if tag is None:
                continue
            acc = cells.setdefault((tag.kind, tag.phase), [0.0] * 8)
            values = [calls, total, tmax, p99, comp, exe, queued, blocked]
            for i, raw in enumerate(values):
                v = float(raw or 0)
                acc[i] = max(acc[i], v) if i in (2, 3) else acc[i] + v
        timings = []
        for (kind, phase), (calls, total, tmax, p99, comp, exe, queued, blocked) in sorted(
            cells.items()
        ):
            n = max(calls, 1.0)
            timings.append(
                common_pb2.ServerTiming(
                    kind=kind,
                    phase=phase,  # type: ignore[arg-type]
                    calls=int(calls),
                    mean_ms=total / n,
                    total=common_pb2.LatencyStats(
                        count=int(calls), mean_ms=total / n, max_ms=tmax, p99_ms=p99
                    ),
                    compilation=common_pb2.LatencyStats(count=int(calls), mean_ms=comp / n),
                    execution=common_pb2.LatencyStats(count=int(calls), mean_ms=exe / n),
                    queued=common_pb2.LatencyStats(count=int(calls), mean_ms=queued / n),
                    blocked=common_pb2.LatencyStats(count=int(calls), mean_ms=blocked / n),
                )
            )
        if not timings:
            return result(FAILED, "aggregate query history has no rows for this run (yet)")
        total_calls = sum(t.calls for t in timings)
        message = f"aggregate query history: {total_calls} calls in {len(rows)} tag bucket(s)"
        return result(COMPLETED, message, timings)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
