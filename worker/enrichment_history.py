"""Snowflake's query history for a run: the run's window and tag bound as Snowflake reads
them, paged by time in pages of 10,000 rows, with compile/execution/queued/blocked/total
times per kind and phase, and the application overhead (client latency minus server
total) for the queries joined by id with this worker's own samples."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hdrh.histogram import HdrHistogram

from snowload import hdr
from snowload.v1 import common_pb2
from snowload.workload import Driver as DriverName
from snowload.workload import Workload
from worker.drivers import Connection, DriverError, get_driver
from worker.enrichment_base import COMPLETED, FAILED, Enricher, Window, result
from worker.tags import Purpose, Tag, own_tag, parse_compact

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
            hdr.record(d.total, int(float(total or 0) * 1000))
            hdr.record(d.compilation, int(float(comp or 0) * 1000))
            hdr.record(d.execution, int(float(exe or 0) * 1000))
            hdr.record(d.queued, int((float(q_over or 0) + float(q_prov or 0)) * 1000))
            hdr.record(d.blocked, int(float(blocked or 0) * 1000))
            client_us = self.client_samples.get(str(qid))
            if client_us is not None:
                d.matched += 1
                hdr.record(d.overhead, max(0, client_us - int(float(total or 0) * 1000)))
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
