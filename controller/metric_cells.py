"""Merged data of one second, one phase or one kind: HDR histograms summed bucket by
bucket, errors by category, and a second of the run's series (open while workers report
it, sealed into a few hundred bytes of encoded histograms once it is complete)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from google.protobuf.duration_pb2 import Duration
from hdrh.histogram import HdrHistogram

from snowload import hdr
from snowload.v1 import common_pb2, control_pb2

SECOND_S = 1.0
"""The length of a second of the series (a worker's report interval)."""
CLOCK_SLACK_S = 0.05
"""How far apart a second's start and the controller's stop may be and still be the same
instant (seconds are cut on the run's clock: a few ms across workers)."""

Key = tuple[int, str]
"""(phase, query kind)"""


@dataclass
class Cell:
    """Merged data for one (phase, kind), one phase overall, or one kind of a second."""

    histogram: HdrHistogram = field(default_factory=hdr.new_histogram)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    service: HdrHistogram | None = None
    """Open mode: uncorrected service times."""
    _cached: tuple[int, hdr.Percentiles] | None = field(default=None, repr=False)

    @property
    def successes(self) -> int:
        return int(self.histogram.get_total_count())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def count(self) -> int:
        return self.successes + self.error_count

    def add_errors(self, errors: dict[str, int]) -> None:
        for cat, n in errors.items():
            self.errors[cat] += n

    def merge(self, other: Cell) -> None:
        self.histogram.add(other.histogram)
        if other.service is not None:
            self.service_histogram().add(other.service)
        self.add_errors(other.errors)

    def service_histogram(self) -> HdrHistogram:
        if self.service is None:
            self.service = hdr.new_histogram()
        return self.service

    def percentiles(self) -> hdr.Percentiles:
        """Read once per change: histograms only grow, so the count tells a change."""
        total = int(self.histogram.get_total_count())
        if self._cached is None or self._cached[0] != total:
            self._cached = (total, hdr.percentiles(self.histogram))
        return self._cached[1]

    def stats(self, duration_s: float) -> common_pb2.LatencyStats:
        p = self.percentiles()
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

    def pack(self) -> PackedCell:
        return PackedCell(
            hdr.encode(self.histogram),
            hdr.encode(self.service) if self.service is not None else b"",
            dict(self.errors),
        )


@dataclass(frozen=True)
class PackedCell:
    """A sealed second's cell: encoded histograms (a few hundred bytes, not 184 KiB)."""

    histogram: bytes
    service: bytes
    errors: dict[str, int]

    def add_to(self, *targets: Cell) -> None:
        hdr.add_encoded([t.histogram for t in targets], self.histogram)
        if self.service:
            hdr.add_encoded([t.service_histogram() for t in targets], self.service)
        for t in targets:
            t.add_errors(self.errors)

    def unpack(self) -> Cell:
        cell = Cell()
        self.add_to(cell)
        return cell


@dataclass
class Schedule:
    """Open mode: lag, late and dropped queries, and the target rate."""

    lag: HdrHistogram = field(default_factory=hdr.new_histogram)
    late: int = 0
    dropped: int = 0
    target_rate: float = 0.0

    def add(self, sched: control_pb2.PhaseSchedule) -> None:
        """Lag, late and dropped add up; the target rate is added per report (once)."""
        hdr.add_encoded([self.lag], sched.lag_histogram)
        self.late += sched.late
        self.dropped += sched.dropped

    def add_checked(self, sched: control_pb2.PhaseSchedule, lag: hdr.Span | None) -> None:
        """:meth:`add`, with the lag histogram already checked and decoded (``lag``)."""
        hdr.add_span([self.lag], lag)
        self.late += sched.late
        self.dropped += sched.dropped


@dataclass(frozen=True)
class PackedSchedule:
    """A sealed second's open-mode figures of one phase: lag (encoded), late, dropped."""

    lag: bytes
    late: int
    dropped: int

    def add_to(self, target: Schedule) -> None:
        if self.lag:
            hdr.add_encoded([target.lag], self.lag)
        target.late += self.late
        target.dropped += self.dropped

    def unpack(self) -> Schedule:
        schedule = Schedule()
        self.add_to(schedule)
        return schedule


@dataclass
class SeriesPoint:
    """One second of the run (interval k of every worker)."""

    second: int
    cells: dict[Key, Cell] = field(default_factory=dict)
    """While open: merged data per (phase, kind)."""
    workers: set[str] = field(default_factory=set)
    active_connections: int = 0
    duration_s: float = 0.0
    """The longest report of the second (a last report also spans the drain)."""
    start_ns: int = 0
    end_ns: int = 0
    load_end_ns: int = 0
    """When the run's load was stopped, once it was (0 before)."""
    count: int = 0
    phase_counts: Counter[int] = field(default_factory=Counter)
    warehouse: common_pb2.WarehouseSample | None = None
    schedule: Schedule | None = None
    phase_schedules: dict[int, Schedule] = field(default_factory=dict)
    """Open mode, while open: lag, late and dropped per phase (a second that straddles a
    phase change has two)."""
    # once sealed:
    packed_schedules: dict[int, PackedSchedule] = field(default_factory=dict)
    packed: dict[Key, PackedCell] = field(default_factory=dict)
    packed_lag: bytes = b""
    overall_encoded: bytes = b""
    proto: common_pb2.SeriesPoint | None = None
    folded: bool = False
    """Its data is in the per-phase totals."""

    @property
    def sealed(self) -> bool:
        return self.proto is not None

    @property
    def phase(self) -> int:
        if not self.phase_counts:
            return common_pb2.STATE_UNSPECIFIED
        return self.phase_counts.most_common(1)[0][0]

    def covered_s(self) -> float:
        """How long load ran in this second: its length, or up to the stop for the second
        the load stopped in, 0 for a second that only drained queries in flight."""
        length = self.duration_s or SECOND_S
        if not self.load_end_ns or self.load_end_ns >= self.end_ns or not self.start_ns:
            return length
        covered = min(length, (self.load_end_ns - self.start_ns) / 1e9)
        return covered if covered > CLOCK_SLACK_S else 0.0

    @property
    def partial(self) -> bool:
        """The load did not cover this whole second (the run's last ones)."""
        return bool(self.load_end_ns) and self.covered_s() < SECOND_S - CLOCK_SLACK_S

    @property
    def loaded(self) -> bool:
        """Load was active in this second (not just an empty report while draining)."""
        return self.active_connections > 0 or self.count > 0

    def seal(self) -> None:
        """Encode the cells, compute the series point once, drop the count arrays."""
        self.packed = {key: cell.pack() for key, cell in self.cells.items()}
        overall = Cell()
        for packed in self.packed.values():
            packed.add_to(overall)  # only the recorded span of each kind is added
        self.overall_encoded = hdr.encode(overall.histogram)
        self.proto = self._build(overall, _by_kind(self.cells))
        if self.schedule is not None:
            self.packed_lag = hdr.encode(self.schedule.lag)
            self.schedule.lag = _EMPTY
        self.packed_schedules = {
            phase: PackedSchedule(hdr.encode(sched.lag), sched.late, sched.dropped)
            for phase, sched in self.phase_schedules.items()
        }
        self.cells = {}
        self.phase_schedules = {}

    def reopen(self) -> None:
        self.cells = {key: packed.unpack() for key, packed in self.packed.items()}
        if self.schedule is not None:
            self.schedule.lag = hdr.new_histogram()
            hdr.add_encoded([self.schedule.lag], self.packed_lag)
        self.phase_schedules = {ph: p.unpack() for ph, p in self.packed_schedules.items()}
        self.packed_schedules = {}
        self.packed, self.packed_lag, self.overall_encoded, self.proto = {}, b"", b"", None

    def overall(self) -> Cell:
        """The second's merged data over every kind (a fresh cell)."""
        total = Cell()
        if self.sealed:
            hdr.add_encoded([total.histogram], self.overall_encoded)
            for packed in self.packed.values():
                total.add_errors(packed.errors)
                if packed.service:
                    hdr.add_encoded([total.service_histogram()], packed.service)
        else:
            for cell in self.cells.values():
                total.merge(cell)
        return total

    def to_proto(self) -> common_pb2.SeriesPoint:
        if self.proto is not None:
            return self.proto
        return self._build(self.overall(), _by_kind(self.cells))

    def _build(self, overall: Cell, by_kind: dict[str, Cell]) -> common_pb2.SeriesPoint:
        duration = self.covered_s()
        point = common_pb2.SeriesPoint(
            second=self.second,
            phase=self.phase,  # type: ignore[arg-type]
            duration=duration_of(duration),
            partial=self.partial,
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
        for kind, cell in sorted(by_kind.items()):
            point.by_kind[kind].CopyFrom(cell.stats(duration))
        return point


_EMPTY = hdr.new_histogram()
"""Stands in for a sealed second's lag histogram (never written to)."""


def _by_kind(cells: dict[Key, Cell]) -> dict[str, Cell]:
    """Per kind over the phases (a second that straddles a phase change has two)."""
    out: dict[str, Cell] = {}
    for (_, kind), cell in cells.items():
        if kind in out:
            merged = Cell()
            merged.merge(out[kind])
            merged.merge(cell)
            out[kind] = merged
        else:
            out[kind] = cell
    return out


def stats_of(histogram: HdrHistogram) -> common_pb2.LatencyStats:
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


def duration_of(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d
