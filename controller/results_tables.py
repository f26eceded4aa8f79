"""A stored run as rows of the results tables that ``snowload runs export --to postgres|
snowflake`` writes (pure: no I/O). The DDL is versioned and documented in
docs/results-tables.md (a test keeps the two identical).

One DDL serves both databases: PostgreSQL and Snowflake both read TEXT, BIGINT, DOUBLE
PRECISION, BOOLEAN and TIMESTAMPTZ (Snowflake's TIMESTAMP_TZ). Timestamps travel as
ISO-8601 text with their offset, which both cast into TIMESTAMPTZ without a zone guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from snowload import hdr
from snowload.report import rate, state_name
from snowload.v1 import common_pb2, run_pb2

SCHEMA_VERSION = 1
"""Bumped whenever a table or column changes; an export refuses tables of a newer one."""
VERSION_TABLE = "snowload_schema"

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS {s}snowload_schema (
  version BIGINT NOT NULL,
  applied_time TIMESTAMPTZ
)""",
    """CREATE TABLE IF NOT EXISTS {s}snowload_runs (
  run_id TEXT NOT NULL PRIMARY KEY,
  name TEXT,
  target TEXT,
  mode TEXT,
  state TEXT,
  reason TEXT,
  message TEXT,
  workers BIGINT,
  connections BIGINT,
  create_time TIMESTAMPTZ,
  start_time TIMESTAMPTZ,
  end_time TIMESTAMPTZ,
  measurement_start_time TIMESTAMPTZ,
  measurement_end_time TIMESTAMPTZ,
  slo_passed BOOLEAN,
  enrichment TEXT,
  enrichment_message TEXT,
  degraded BOOLEAN,
  warehouse TEXT,
  warehouse_size TEXT,
  credits DOUBLE PRECISION,
  cost DOUBLE PRECISION,
  workload_json TEXT,
  exported_time TIMESTAMPTZ,
  schema_version BIGINT
)""",
    """CREATE TABLE IF NOT EXISTS {s}snowload_phase_stats (
  run_id TEXT NOT NULL,
  phase TEXT NOT NULL,
  kind TEXT NOT NULL,
  duration_s DOUBLE PRECISION,
  query_count BIGINT,
  error_count BIGINT,
  error_rate DOUBLE PRECISION,
  qps DOUBLE PRECISION,
  mean_ms DOUBLE PRECISION,
  min_ms DOUBLE PRECISION,
  p50_ms DOUBLE PRECISION,
  p90_ms DOUBLE PRECISION,
  p95_ms DOUBLE PRECISION,
  p99_ms DOUBLE PRECISION,
  p999_ms DOUBLE PRECISION,
  p9999_ms DOUBLE PRECISION,
  max_ms DOUBLE PRECISION
)""",
    """CREATE TABLE IF NOT EXISTS {s}snowload_series (
  run_id TEXT NOT NULL,
  second_no BIGINT NOT NULL,
  phase TEXT NOT NULL,
  kind TEXT NOT NULL,
  end_time TIMESTAMPTZ,
  partial BOOLEAN,
  duration_s DOUBLE PRECISION,
  query_count BIGINT,
  error_count BIGINT,
  qps DOUBLE PRECISION,
  p50_ms DOUBLE PRECISION,
  p95_ms DOUBLE PRECISION,
  p99_ms DOUBLE PRECISION,
  max_ms DOUBLE PRECISION,
  active_connections BIGINT,
  workers_active BIGINT
)""",
    """CREATE TABLE IF NOT EXISTS {s}snowload_slo_verdicts (
  run_id TEXT NOT NULL,
  kind TEXT,
  metric TEXT NOT NULL,
  limit_value DOUBLE PRECISION,
  actual DOUBLE PRECISION,
  passed BOOLEAN
)""",
    """CREATE TABLE IF NOT EXISTS {s}snowload_server_timings (
  run_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  phase TEXT NOT NULL,
  component TEXT NOT NULL,
  calls BIGINT,
  matched BIGINT,
  mean_ms DOUBLE PRECISION,
  stddev_ms DOUBLE PRECISION,
  p50_ms DOUBLE PRECISION,
  p95_ms DOUBLE PRECISION,
  p99_ms DOUBLE PRECISION,
  max_ms DOUBLE PRECISION
)""",
)
ALL_KINDS = "all"
"""``kind`` of the rows over every query kind."""
COMPONENTS = ("total", "compilation", "execution", "queued", "blocked", "app_overhead")


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def _columns(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def ddl(schema: str) -> list[str]:
    """The CREATE TABLE statements, in ``schema`` ('' for the connection's own)."""
    prefix = f"{schema}." if schema else ""
    return [text.format(s=prefix) for text in DDL]


def _iso(ts: Timestamp, present: bool = True) -> str | None:
    """ISO-8601 with its offset (+00:00): no database guesses a zone."""
    if not present:
        return None
    return str(ts.ToDatetime().isoformat(timespec="microseconds")) + "+00:00"


def _stats_row(stats: common_pb2.LatencyStats) -> tuple[Any, ...]:
    return (
        int(stats.count),
        int(stats.errors),
        round(stats.errors / stats.count, 6) if stats.count else 0.0,
        rate(stats.qps),
        stats.mean_ms,
        stats.min_ms,
    )


def run_row(run: run_pb2.Run, exported: str) -> Table:
    columns = _columns(
        "run_id name target mode state reason message workers connections create_time "
        "start_time end_time measurement_start_time measurement_end_time slo_passed "
        "enrichment enrichment_message degraded warehouse warehouse_size credits cost "
        "workload_json exported_time schema_version"
    )
    row = (
        run.run_id,
        run.name,
        run.target,
        common_pb2.LoadMode.Name(run.mode).removeprefix("LOAD_MODE_").lower(),
        state_name(run.state),
        run.reason,
        run.message,
        int(run.workers),
        int(run.connections),
        _iso(run.create_time, run.HasField("create_time")),
        _iso(run.start_time, run.HasField("start_time")),
        _iso(run.end_time, run.HasField("end_time")),
        _iso(run.measurement_start_time, run.HasField("measurement_start_time")),
        _iso(run.measurement_end_time, run.HasField("measurement_end_time")),
        run.slo_passed if run.HasField("slo_passed") else None,
        common_pb2.EnrichmentStatus.Name(run.enrichment).removeprefix("ENRICHMENT_STATUS_"),
        run.server.message,
        bool(run.degraded),
        run.warehouse.name if run.HasField("warehouse") else None,
        run.warehouse.size if run.HasField("warehouse") else None,
        float(run.credits),
        float(run.cost),
        run.workload_json,
        exported,
        SCHEMA_VERSION,
    )
    return Table("snowload_runs", columns, [row])


def phase_rows(run: run_pb2.Run, histograms: dict[tuple[int, str], bytes]) -> Table:
    """Per phase: every kind and ``all``; the tail (p90, p99.9, p99.99) from the stored
    histograms, the rest from the run's summary (as ``runs show`` reports them)."""
    columns = _columns(
        "run_id phase kind duration_s query_count error_count error_rate qps mean_ms "
        "min_ms p50_ms p90_ms p95_ms p99_ms p999_ms p9999_ms max_ms"
    )
    rows = []
    for ps in run.summary.phases:
        duration = ps.duration.ToNanoseconds() / 1e9
        kinds = [(ALL_KINDS, "", ps.overall)] + [(k, k, v) for k, v in sorted(ps.by_kind.items())]
        for kind, key, stats in kinds:
            tail = (
                hdr.spectrum(histograms[(ps.phase, key)]) if (ps.phase, key) in histograms else {}
            )
            rows.append(
                (
                    run.run_id,
                    state_name(ps.phase),
                    kind,
                    round(duration, 6),
                    *_stats_row(stats),
                    stats.p50_ms,
                    tail.get("p90"),
                    stats.p95_ms,
                    stats.p99_ms,
                    tail.get("p99.9"),
                    tail.get("p99.99"),
                    stats.max_ms,
                )
            )
    return Table("snowload_phase_stats", columns, rows)


def series_rows(run_id: str, points: list[common_pb2.SeriesPoint]) -> Table:
    columns = _columns(
        "run_id second_no phase kind end_time partial duration_s query_count "
        "error_count qps p50_ms p95_ms p99_ms max_ms active_connections workers_active"
    )
    rows = []
    for p in points:
        kinds = [(ALL_KINDS, p.overall), *sorted(p.by_kind.items())]
        for kind, stats in kinds:
            rows.append(
                (
                    run_id,
                    int(p.second),
                    state_name(p.phase),
                    kind,
                    _iso(p.end_time, p.HasField("end_time")),
                    bool(p.partial),
                    round(p.duration.ToNanoseconds() / 1e9, 6),
                    int(stats.count),
                    int(stats.errors),
                    rate(stats.qps),
                    stats.p50_ms,
                    stats.p95_ms,
                    stats.p99_ms,
                    stats.max_ms,
                    int(p.active_connections),
                    int(p.workers_active),
                )
            )
    return Table("snowload_series", columns, rows)


def slo_rows(run: run_pb2.Run) -> Table:
    columns = ("run_id", "kind", "metric", "limit_value", "actual", "passed")
    rows = [(run.run_id, v.kind or None, v.metric, v.limit, v.actual, v.passed) for v in run.slo]
    return Table("snowload_slo_verdicts", columns, rows)


def server_rows(run: run_pb2.Run) -> Table:
    """One row per kind, phase and component (total, compilation, ...): PostgreSQL gives
    the total's mean and stddev only (no percentiles: NULL)."""
    columns = _columns(
        "run_id kind phase component calls matched mean_ms stddev_ms p50_ms p95_ms p99_ms max_ms"
    )
    rows = []
    for t in run.server.timings:
        for component in COMPONENTS:
            stats: common_pb2.LatencyStats = getattr(t, component)
            if component != "total" and not stats.count:
                continue
            has = bool(stats.count)
            mean = t.mean_ms if component == "total" else stats.mean_ms
            rows.append(
                (
                    run.run_id,
                    t.kind,
                    state_name(t.phase),
                    component,
                    int(t.calls),
                    int(t.matched),
                    mean,
                    t.stddev_ms if component == "total" and t.stddev_ms else None,
                    *(
                        (stats.p50_ms, stats.p95_ms, stats.p99_ms, stats.max_ms)
                        if has
                        else (None, None, None, None)
                    ),
                )
            )
    return Table("snowload_server_timings", columns, rows)


def tables(
    run: run_pb2.Run,
    series: list[common_pb2.SeriesPoint],
    histograms: dict[tuple[int, str], bytes],
    exported: str,
) -> list[Table]:
    """Every table's rows for one run (``snowload_runs`` first)."""
    return [
        run_row(run, exported),
        phase_rows(run, histograms),
        series_rows(run.run_id, series),
        slo_rows(run),
        server_rows(run),
    ]
