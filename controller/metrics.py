"""Exact merge of worker interval reports into per-phase totals and a per-second series.

Percentiles are never averaged: every figure is read from a histogram that is the exact
bucket-wise sum of the workers' histograms. Reports are deduplicated on
(worker id, interval id), so a report sent twice (e.g. across a re-attach) counts once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from google.protobuf.duration_pb2 import Duration
from hdrh.histogram import HdrHistogram

from snowload import hdr
from snowload.v1 import common_pb2, control_pb2

MAX_ERROR_SAMPLES = 5


@dataclass
class Cell:
    """Merged data for one (phase, kind) or one series point."""

    histogram: HdrHistogram = field(default_factory=hdr.new_histogram)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def successes(self) -> int:
        return int(self.histogram.get_total_count())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def add(self, histogram: HdrHistogram | None, kind: control_pb2.KindInterval) -> None:
        if histogram is not None:
            self.histogram.add(histogram)
        for err in kind.errors:
            self.errors[err.category] += err.count

    def merge(self, other: Cell) -> None:
        self.histogram.add(other.histogram)
        for cat, n in other.errors.items():
            self.errors[cat] += n

    def stats(self, duration_s: float) -> common_pb2.LatencyStats:
        p = hdr.percentiles(self.histogram)
        count = p.count + self.error_count
        return common_pb2.LatencyStats(
            count=count,
            errors=self.error_count,
            qps=count / duration_s if duration_s > 0 else 0.0,
            p50_ms=p.p50_ms,
            p95_ms=p.p95_ms,
            p99_ms=p.p99_ms,
            max_ms=p.max_ms,
            mean_ms=p.mean_ms,
            min_ms=p.min_ms,
        )


@dataclass
class SeriesPoint:
    """One second of the run (interval k of every worker, aligned to the start time)."""

    cell: Cell = field(default_factory=Cell)
    workers: set[str] = field(default_factory=set)
    active_connections: int = 0


class RunMetrics:
    def __init__(self) -> None:
        self.cells: dict[tuple[int, str], Cell] = {}
        self.series: dict[int, SeriesPoint] = {}
        self.error_samples: dict[str, list[str]] = defaultdict(list)
        self._seen: set[tuple[str, int]] = set()
        self._latest: dict[str, int] = {}
        self.reports = 0

    def add(self, worker_id: str, report: control_pb2.MetricsReport) -> bool:
        """Merge one report; False if it was a duplicate."""
        key = (worker_id, report.interval_id)
        if key in self._seen:
            return False
        self._seen.add(key)
        self.reports += 1
        self._latest[worker_id] = max(self._latest.get(worker_id, 0), report.interval_id)
        point = self.series.get(report.interval_id)
        if point is None:
            point = self.series[report.interval_id] = SeriesPoint()
        point.workers.add(worker_id)
        point.active_connections += report.active_connections
        for kind in report.kinds:
            cell = self.cells.get((kind.phase, kind.kind))
            if cell is None:
                cell = self.cells[(kind.phase, kind.kind)] = Cell()
            histogram = hdr.decode(kind.histogram) if kind.histogram else None
            cell.add(histogram, kind)
            point.cell.add(histogram, kind)
            for err in kind.errors:
                samples = self.error_samples[err.category]
                for s in err.samples:
                    if len(samples) < MAX_ERROR_SAMPLES and s not in samples:
                        samples.append(s)
        return True

    def intervals_from(self, worker_id: str) -> int:
        return sum(1 for w, _ in self._seen if w == worker_id)

    def totals(self, phase: int) -> dict[str, tuple[int, int]]:
        """(successes, errors) per kind in a phase."""
        return {
            kind: (cell.successes, cell.error_count)
            for (ph, kind), cell in self.cells.items()
            if ph == phase
        }

    def phase_summary(self, phase: int, duration_s: float) -> common_pb2.PhaseSummary | None:
        overall = Cell()
        by_kind: dict[str, common_pb2.LatencyStats] = {}
        for (ph, kind), cell in sorted(self.cells.items()):
            if ph != phase:
                continue
            overall.merge(cell)
            by_kind[kind] = cell.stats(duration_s)
        if not by_kind:
            return None
        summary = common_pb2.PhaseSummary(
            phase=phase,  # type: ignore[arg-type]
            duration=_duration(duration_s),
            overall=overall.stats(duration_s),
            errors_by_category=dict(overall.errors),
        )
        for kind, stats in by_kind.items():
            summary.by_kind[kind].CopyFrom(stats)
        return summary

    def complete_point(self) -> tuple[int, SeriesPoint] | None:
        """The newest second that every reporting worker has delivered."""
        if not self._latest:
            return None
        k = min(self._latest.values())
        point = self.series.get(k)
        return (k, point) if point is not None else None


def _duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d
