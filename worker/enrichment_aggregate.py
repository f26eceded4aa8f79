"""A later pass for hybrid tables: Snowflake's AGGREGATE_QUERY_HISTORY (per-minute
buckets) for the run's window and tag (``snowload runs enrich``)."""

from __future__ import annotations

from snowload.v1 import common_pb2
from snowload.workload import Driver as DriverName
from snowload.workload import Workload
from worker.drivers import Connection, get_driver
from worker.enrichment_base import COMPLETED, FAILED, Enricher, Window, result
from worker.enrichment_history import load_tag, run_pattern, utc_at, zoned
from worker.tags import Purpose, own_tag

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
