"""A stored run's per-second series as CSV and its interval histograms as an
HdrHistogram log (``snowload runs export``)."""

from __future__ import annotations

import csv
from datetime import UTC
from typing import Any, TextIO

from hdrh.log import HistogramLogWriter

from controller import lifecycle as lc
from controller.store import RunStore
from snowload import hdr
from snowload.v1 import common_pb2, run_pb2

CSV_FIELDS = (
    "second",
    "phase",
    "end_time",
    "partial",
    "duration_s",
    "count",
    "errors",
    "qps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "active_connections",
    "workers_active",
)


def point_row(p: common_pb2.SeriesPoint) -> dict[str, Any]:
    return {
        "second": p.second,
        "phase": lc.state_name(p.phase),
        "end_time": p.end_time.ToJsonString() if p.HasField("end_time") else "",
        "partial": p.partial,
        "duration_s": round(p.duration.ToTimedelta().total_seconds(), 3),
        "count": p.overall.count,
        "errors": p.overall.errors,
        "qps": round(p.overall.qps, 3),
        "p50_ms": p.overall.p50_ms,
        "p95_ms": p.overall.p95_ms,
        "p99_ms": p.overall.p99_ms,
        "max_ms": p.overall.max_ms,
        "active_connections": p.active_connections,
        "workers_active": p.workers_active,
    }


def write_csv(points: list[common_pb2.SeriesPoint], out: TextIO) -> None:
    """One row per second; ``partial`` (true/false) marks the seconds the load did not
    cover in full (their ``qps`` is over ``duration_s``, the part it covered)."""
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for p in points:
        row = point_row(p)
        row["partial"] = "true" if p.partial else "false"
        writer.writerow(row)


def write_hlog(run: run_pb2.Run, store: RunStore, out: TextIO) -> None:
    """HdrHistogram interval log (format 1.2): one line per second, values in µs,
    max column in ms; the base time is the run's start time."""
    writer = HistogramLogWriter(out)
    base_ms = run.start_time.ToMilliseconds() if run.HasField("start_time") else 0
    out.write(f"#snowload run {run.run_id} ({run.name}); latencies in microseconds\n")
    writer.output_log_format_version()
    # (hdrh's own output_start_time mistakes milliseconds for seconds)
    start = run.start_time.ToDatetime(tzinfo=UTC) if run.HasField("start_time") else None
    out.write(
        f"#[StartTime: {base_ms / 1000.0:f} (seconds since epoch), "
        f"{start.isoformat(' ') if start else '-'}]\n"
    )
    writer.output_base_time(base_ms)
    writer.output_legend()
    for interval in store.intervals(run.run_id):
        histogram = hdr.decode(interval.histogram)
        start_s = (interval.start_ns / 1e6 - base_ms) / 1000.0
        end_s = (interval.end_ns / 1e6 - base_ms) / 1000.0
        writer.output_interval_histogram(
            histogram,
            start_time_stamp_sec=max(start_s, 0.000001),
            end_time_stamp_sec=end_s,
            max_value_unit_ratio=1000.0,
        )
