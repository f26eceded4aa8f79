"""A stored run's per-second series as CSV and its interval histograms as an
HdrHistogram log (``snowload runs export``)."""

from __future__ import annotations

import csv
from datetime import UTC
from typing import TextIO

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

from controller.store import RunStore
from controller.store_remote import RemoteUnsupported
from snowload import hdr
from snowload.report import series_row
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


point_row = series_row


def queries_rows(store: RunStore, run_id: str) -> list[dict[str, object]]:
    """The run's query log, entry by entry (the fields ``runs queries --json`` prints);
    empty while a daemon's run is active (its log is stored when it ends)."""
    try:
        return [e.to_json() for e in store.query_entries(run_id)]
    except RemoteUnsupported:
        return []


def write_csv(points: list[common_pb2.SeriesPoint], out: TextIO) -> None:
    """One row per second; ``partial`` (true/false) marks the seconds the load did not
    cover in full (their ``qps`` is over ``duration_s``, the part it covered)."""
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for p in points:
        row = point_row(p)
        row["partial"] = "true" if p.partial else "false"
        writer.writerow(row)


MS = 1000.0
"""Recorded values (µs) per millisecond."""


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
        start_s = max(0.0, (interval.start_ns / 1e6 - base_ms) / 1000.0)
        end_s = (interval.end_ns / 1e6 - base_ms) / 1000.0
        out.write(interval_line(histogram, start_s, end_s))


def interval_line(histogram: HdrHistogram, start_s: float, end_s: float) -> str:
    """One interval as the HdrHistogram log format writes it (its Java writer's
    ``%.3f,%.3f,%.3f,%s``): start and length in seconds, the interval's max in ms (from
    µs: to the µs, where hdrh's Python writer floors it to whole ms), the histogram."""
    payload = histogram.encode().decode("ascii")
    max_ms = histogram.get_max_value() / MS
    return f"{start_s:.3f},{end_s - start_s:.3f},{max_ms:.3f},{payload}\n"
