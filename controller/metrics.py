"""Exact merge of worker interval reports into per-phase totals and a per-second series.

Percentiles are never averaged: every figure is read from a histogram that is the exact
bucket-wise sum of the workers' histograms. Reports are deduplicated on
(worker id, interval id), so a report sent twice (e.g. across a re-attach) counts once.

Interval ``k`` of every worker covers the k-th second after that worker received Start;
the workers receive Start within milliseconds of each other, so interval ``k`` of all
workers is one point of the run's series. A point is complete once every worker that is
still reporting has delivered it; rolling windows use complete points in which load was
active only, so they freeze when load stops instead of drifting.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from google.protobuf.duration_pb2 import Duration
from hdrh.histogram import HdrHistogram

from snowload import hdr
from snowload.credits import credits_between
from snowload.v1 import common_pb2, control_pb2

MAX_ERROR_SAMPLES = 5


@dataclass
class Cell:
    """Merged data for one (phase, kind), or one kind within a series point."""

    histogram: HdrHistogram = field(default_factory=hdr.new_histogram)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    service: HdrHistogram | None = None
    """Open mode: uncorrected service times."""

    @property
    def successes(self) -> int:
        return int(self.histogram.get_total_count())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def count(self) -> int:
        return self.successes + self.error_count

    def add_errors(self, kind: control_pb2.KindInterval) -> None:
        """Error counts of one report (its histograms go in through hdr.add_encoded)."""
        for err in kind.errors:
            self.errors[err.category] += err.count

    def merge(self, other: Cell) -> None:
        self.histogram.add(other.histogram)
        if other.service is not None:
            if self.service is None:
                self.service = hdr.new_histogram()
            self.service.add(other.service)
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
class Schedule:
    """Open mode: lag, late and dropped queries, and the target rate."""

    lag: HdrHistogram = field(default_factory=hdr.new_histogram)
    late: int = 0
    dropped: int = 0
    target_rate: float = 0.0

    def add(self, sched: control_pb2.PhaseSchedule) -> None:
        """Lag, late and dropped add up; the target rate is added per report (once)."""
        if sched.lag_histogram:
            self.lag.add(hdr.decode(sched.lag_histogram))
        self.late += sched.late
        self.dropped += sched.dropped


@dataclass
class SeriesPoint:
    """One second of the run (interval k of every worker)."""

    second: int
    kinds: dict[str, Cell] = field(default_factory=dict)
    workers: set[str] = field(default_factory=set)
    active_connections: int = 0
    duration_s: float = 0.0
    end_ns: int = 0
    phase_counts: Counter[int] = field(default_factory=Counter)
    warehouse: common_pb2.WarehouseSample | None = None
    schedule: Schedule | None = None

    @property
    def overall(self) -> Cell:
        total = Cell()
        for cell in self.kinds.values():
            total.merge(cell)
        return total

    @property
    def count(self) -> int:
        return sum(c.count for c in self.kinds.values())

    @property
    def phase(self) -> int:
        if not self.phase_counts:
            return common_pb2.STATE_UNSPECIFIED
        return self.phase_counts.most_common(1)[0][0]

    @property
    def loaded(self) -> bool:
        """Load was active in this second (not just an empty report while draining)."""
        return self.active_connections > 0 or self.count > 0

    def to_proto(self) -> common_pb2.SeriesPoint:
        duration = self.duration_s or 1.0
        overall = self.overall
        point = common_pb2.SeriesPoint(
            second=self.second,
            phase=self.phase,  # type: ignore[arg-type]
            duration=_duration(duration),
            overall=overall.stats(duration),
            errors_by_category=dict(overall.errors),
            active_connections=self.active_connections,
            workers_active=len(self.workers),
        )
        if self.end_ns:
            point.end_time.FromNanoseconds(self.end_ns)
        if self.warehouse is not None:
            point.warehouse.CopyFrom(self.warehouse)
        if self.schedule is not None:
            point.target_rate = self.schedule.target_rate
            point.lag_p99_ms = hdr.percentiles(self.schedule.lag).p99_ms
            point.late = self.schedule.late
            point.dropped = self.schedule.dropped
            if overall.service is not None:
                point.service_p99_ms = hdr.percentiles(overall.service).p99_ms
        for kind, cell in sorted(self.kinds.items()):
            point.by_kind[kind].CopyFrom(cell.stats(duration))
        return point


class RunMetrics:
    def __init__(self) -> None:
        self.cells: dict[tuple[int, str], Cell] = {}
        self.series: dict[int, SeriesPoint] = {}
        self.error_samples: dict[str, list[str]] = defaultdict(list)
        self._seen: set[tuple[str, int]] = set()
        self._latest: dict[str, int] = {}
        self._done: set[str] = set()
        self._intervals: Counter[str] = Counter()
        self.reports = 0
        self.warehouse_samples: list[common_pb2.WarehouseSample] = []
        self.schedules: dict[int, Schedule] = {}
        """Open mode, per phase."""

    def add(self, worker_id: str, report: control_pb2.MetricsReport) -> bool:
        """Merge one report; False if it was a duplicate."""
        key = (worker_id, report.interval_id)
        if key in self._seen:
            return False
        self._seen.add(key)
        self._intervals[worker_id] += 1
        self.reports += 1
        self._latest[worker_id] = max(self._latest.get(worker_id, 0), report.interval_id)
        if report.last:
            self._done.add(worker_id)
        point = self.series.get(report.interval_id)
        if point is None:
            point = self.series[report.interval_id] = SeriesPoint(report.interval_id)
        point.workers.add(worker_id)
        point.active_connections += report.active_connections
        start, end = report.start_time.ToNanoseconds(), report.end_time.ToNanoseconds()
        point.duration_s = max(point.duration_s, (end - start) / 1e9)
        point.end_ns = max(point.end_ns, end)
        if report.HasField("warehouse"):
            point.warehouse = report.warehouse
            self.warehouse_samples.append(report.warehouse)
        for sched in report.schedule:
            if point.schedule is None:
                point.schedule = Schedule()
            point.schedule.add(sched)
            phase_schedule = self.schedules.get(sched.phase)
            if phase_schedule is None:  # (not setdefault: it would build a histogram per call)
                phase_schedule = self.schedules[sched.phase] = Schedule()
            phase_schedule.add(sched)
        if report.schedule and point.schedule is not None:
            # one worker's rate, whatever phases its interval touched
            point.schedule.target_rate += max(s.target_rate for s in report.schedule)
        for kind in report.kinds:
            cell = self.cells.get((kind.phase, kind.kind))
            if cell is None:
                cell = self.cells[(kind.phase, kind.kind)] = Cell()
            pcell = point.kinds.get(kind.kind)
            if pcell is None:
                pcell = point.kinds[kind.kind] = Cell()
            # exact bucket-wise sums, decoded once into a scratch array (no allocation)
            hdr.add_encoded([cell.histogram, pcell.histogram], kind.histogram)
            if kind.service_histogram:
                for c in (cell, pcell):
                    if c.service is None:
                        c.service = hdr.new_histogram()
                service_targets = [c.service for c in (cell, pcell) if c.service is not None]
                hdr.add_encoded(service_targets, kind.service_histogram)
            cell.add_errors(kind)
            pcell.add_errors(kind)
            point.phase_counts[kind.phase] += kind.count + sum(e.count for e in kind.errors)
            for err in kind.errors:
                samples = self.error_samples[err.category]
                for s in err.samples:
                    if len(samples) < MAX_ERROR_SAMPLES and s not in samples:
                        samples.append(s)
        return True

    def retire(self, worker_id: str) -> None:
        """A lost worker reports no more: later seconds are complete without it."""
        self._done.add(worker_id)

    def intervals_from(self, worker_id: str) -> int:
        return self._intervals[worker_id]

    def credits(self, until_ns: int) -> float:
        """Credits between the first warehouse sample and ``until_ns`` (each sample's
        state holds until the next one)."""
        total = 0.0
        samples = sorted(self.warehouse_samples, key=lambda s: s.sample_time.ToNanoseconds())
        for a, b in zip(samples, [*samples[1:], None], strict=True):
            end = b.sample_time.ToNanoseconds() if b is not None else until_ns
            total += credits_between(a, max(0, end - a.sample_time.ToNanoseconds()) / 1e9)
        return total

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
        sched = self.schedules.get(phase)
        if sched is not None:
            if overall.service is not None:
                summary.service.CopyFrom(_stats_of(overall.service))
            summary.lag.CopyFrom(_stats_of(sched.lag))
            summary.late = sched.late
            summary.dropped = sched.dropped
            summary.achieved_rate = summary.overall.qps
            summary.target_rate = self.mean_target_rate(phase)
        for kind, stats in by_kind.items():
            summary.by_kind[kind].CopyFrom(stats)
        return summary

    def phase_histogram(self, phase: int, kind: str | None = None) -> HdrHistogram:
        total = hdr.new_histogram()
        for (ph, k), cell in self.cells.items():
            if ph == phase and (kind is None or k == kind):
                total.add(cell.histogram)
        return total

    # -- the live view -------------------------------------------------------------------

    def complete_seconds(self) -> int:
        """The newest second every still-reporting worker has delivered (0 if none)."""
        reporting = [k for w, k in self._latest.items() if w not in self._done]
        if reporting:
            return min(reporting)
        return max(self._latest.values(), default=0)

    def complete_point(self) -> SeriesPoint | None:
        return self.series.get(self.complete_seconds())

    def rolling_qps(self, window: int) -> float:
        """QPS over the last ``window`` complete seconds in which load was active."""
        upto = self.complete_seconds()
        points = [p for k, p in sorted(self.series.items()) if k <= upto and p.loaded]
        points = points[-window:]
        seconds = sum(p.duration_s or 1.0 for p in points)
        return sum(p.count for p in points) / seconds if seconds else 0.0

    def series_protos(self) -> list[common_pb2.SeriesPoint]:
        return [p.to_proto() for _, p in sorted(self.series.items())]

    def mean_target_rate(self, phase: int) -> float:
        """The total target rate, averaged over the seconds of a phase."""
        points = [
            p.schedule.target_rate
            for p in self.series.values()
            if p.schedule is not None and p.phase == phase and p.duration_s > 0.5
        ]
        return sum(points) / len(points) if points else 0.0


def _stats_of(histogram: HdrHistogram) -> common_pb2.LatencyStats:
    p = hdr.percentiles(histogram)
    return common_pb2.LatencyStats(
        count=p.count,
        p50_ms=p.p50_ms,
        p95_ms=p.p95_ms,
        p99_ms=p.p99_ms,
        max_ms=p.max_ms,
        mean_ms=p.mean_ms,
        min_ms=p.min_ms,
    )


def _duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d
