"""Exact merge of worker interval reports into per-phase totals and a per-second series
(the cells and seconds it merges into: controller/metric_cells.py).

Percentiles are never averaged: every figure is read from a histogram that is the exact
bucket-wise sum of the workers' histograms. Reports are deduplicated on
(worker id, interval id), so a report sent twice (e.g. across a re-attach) counts once.

Seconds are cut on the run's clock: interval ``k`` of every worker covers the same
controller interval [load start + k - 1 s, load start + k s) (each worker maps the planned
load start onto its own clock), so interval ``k`` of all of them is second ``k`` of the
run's series, and a worker recruited mid-run reports its first (partial) second under the
run second it falls in. A second is complete once every worker
still reporting has delivered it; rolling windows use complete seconds in which load was
active only, so they freeze when load stops instead of drifting.

Cost and memory. A report is merged into its second only (one histogram per phase and
kind). When the second completes it is *sealed*: its cells are encoded, added to the
per-phase totals, and its series point is computed once; from then on it holds a few
hundred bytes of encoded histograms instead of full count arrays, so a long run's memory
grows by a few KiB per second, not by the size of its histograms. The per-phase totals
(and everything the live view shows) therefore cover complete seconds; :meth:`settle`
folds in the rest when the run ends. A report that arrives for a sealed second (it cannot
in normal operation) reopens it: the totals stay exact either way.
"""

from __future__ import annotations

from collections import Counter

from google.protobuf.timestamp_pb2 import Timestamp
from hdrh.histogram import HdrHistogram

from controller.metric_cells import (
    Cell,
    Key,
    PackedCell,
    PackedSchedule,
    Schedule,
    SeriesPoint,
    duration_of,
    stats_of,
)
from controller.report_check import CheckedReport, check_report
from controller.warehouse_ledger import WarehouseLedger
from snowload import hdr
from snowload.v1 import common_pb2, control_pb2


class _Intervals:
    """The interval ids received from one worker: everything up to ``low`` plus a few
    above it (a gap while a re-attach resends), in memory bounded by the gaps."""

    __slots__ = ("above", "count", "low")

    def __init__(self) -> None:
        self.low = 0
        self.count = 0
        self.above: set[int] = set()

    def has(self, interval: int) -> bool:
        return interval <= self.low or interval in self.above

    def add(self, interval: int) -> bool:
        if self.has(interval):
            return False
        self.count += 1
        if interval == self.low + 1:
            self.low = interval
            while self.low + 1 in self.above:
                self.low += 1
                self.above.discard(self.low)
        else:
            self.above.add(interval)
        return True


def _ns(t: Timestamp) -> int:
    """Timestamp.ToNanoseconds without its validity check (this runs per report)."""
    return t.seconds * 1_000_000_000 + t.nanos


class RunMetrics:
    def __init__(self) -> None:
        self.cells: dict[Key, Cell] = {}
        """Per (phase, kind): complete seconds (all of them after settle())."""
        self.phase_totals: dict[int, Cell] = {}
        """Per phase, every kind."""
        self.series: dict[int, SeriesPoint] = {}
        self._received: dict[str, _Intervals] = {}
        self.origin_ns = 0
        """The run's load start (controller clock): second k ends at origin + k s."""
        self._latest: dict[str, int] = {}
        """Newest second each worker delivered (0 for expected workers not heard from)."""
        self._blocking: Counter[int] = Counter()
        """How many still-reporting workers stand at each second."""
        self._done: set[str] = set()
        self.sealed_upto = 0
        """Every second up to this one is complete and sealed."""
        self.reports = 0
        self.warehouse = WarehouseLedger()
        """The warehouse samples (Snowflake): the first one and the credits, in bounded
        memory."""
        self.schedules: dict[int, Schedule] = {}
        """Open mode, per phase."""
        self.load_end_ns = 0
        """When the run's load was stopped (0 while it runs)."""
        self.forgotten_count = 0
        """Queries in the seconds dropped from memory (forget)."""
        self.forgotten_rates: dict[int, tuple[float, int]] = {}
        """Per phase: sum and number of target rates of the seconds dropped from memory."""
        self.queries: frozenset[str] | None = None
        """The workload's query names: a report's kinds must be among them (None: any)."""

    # -- ingest ------------------------------------------------------------------------

    def expect(self, worker_ids: list[str]) -> None:
        """Workers that got Start: no second is complete before they have delivered it."""
        for worker_id in worker_ids:
            if worker_id not in self._latest and worker_id not in self._done:
                self._latest[worker_id] = 0
                self._blocking[0] += 1

    def add(self, worker_id: str, report: control_pb2.MetricsReport) -> bool:
        """Merge one report; False if it was a duplicate. A report that fails its check
        (controller/report_check.py) raises InvalidReport and changes nothing."""
        received = self._received.get(worker_id)
        if received is None:
            received = self._received[worker_id] = _Intervals()
            # recruited mid-run: its seconds begin there
            received.low = max(0, report.first_interval_id - 1)
        if received.has(report.interval_id):
            return False
        spans = check_report(report, self.queries)
        try:
            received.add(report.interval_id)
            self._add(worker_id, report, spans)
        finally:
            spans.release()
        return True

    def _add(self, worker_id: str, report: control_pb2.MetricsReport, spans: CheckedReport) -> None:
        self.reports += 1
        second = report.interval_id
        point = self.series.get(second)
        if point is None:
            point = self.series[second] = SeriesPoint(second)
        late = second <= self.sealed_upto or point.sealed
        if point.sealed:
            point.reopen()
        self._merge(point, worker_id, report, spans, into_totals=late)
        if late:  # already counted in the totals above: keep it sealed and folded
            point.folded = True
            point.seal()
        self._advance(worker_id, second, report.last)

    def _merge(
        self,
        point: SeriesPoint,
        worker_id: str,
        report: control_pb2.MetricsReport,
        spans: CheckedReport,
        *,
        into_totals: bool,
    ) -> None:
        point.workers.add(worker_id)
        point.active_connections += report.active_connections
        start, end = _ns(report.start_time), _ns(report.end_time)
        point.duration_s = max(point.duration_s, (end - start) / 1e9)
        if self.origin_ns:
            # on the run's clock (a worker's own clock may be offset): a full second ends
            # at origin + k s; a last, partial one that much after its start
            second_start = self.origin_ns + (point.second - 1) * 1_000_000_000
            end = second_start + (end - start if report.last else 1_000_000_000)
            start = second_start
        point.start_ns = min(point.start_ns or start, start)
        point.end_ns = max(point.end_ns, end)
        point.load_end_ns = self.load_end_ns
        if report.HasField("warehouse"):
            point.warehouse = report.warehouse
            self.warehouse.add(report.warehouse)
        for sched, lag in zip(report.schedule, spans.lags, strict=True):
            if point.schedule is None:
                point.schedule = Schedule()
            point.schedule.add_checked(sched, lag)
            phase_schedule = self.schedules.get(sched.phase)
            if phase_schedule is None:  # (not setdefault: it would build a histogram per call)
                phase_schedule = self.schedules[sched.phase] = Schedule()
            phase_schedule.add_checked(sched, lag)
            second_schedule = point.phase_schedules.get(sched.phase)
            if second_schedule is None:
                second_schedule = point.phase_schedules[sched.phase] = Schedule()
            second_schedule.add_checked(sched, lag)
        if report.schedule and point.schedule is not None:
            # one worker's rate, whatever phases its interval touched
            point.schedule.target_rate += max(s.target_rate for s in report.schedule)
        cells = point.cells
        count = 0
        for kind, key, successes, latency, service in spans.kinds:
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = Cell()
            if into_totals:
                targets = [cell, *self._totals(key)]
                hists = [t.histogram for t in targets]
            else:
                targets = [cell]
                hists = [cell.histogram]
            # exact bucket-wise sums of the histograms the check decoded (no allocation)
            hdr.add_span(hists, latency)
            if service is not None:
                hdr.add_span([t.service_histogram() for t in targets], service)
            queries = successes
            errors = kind.errors
            if errors:
                for err in errors:
                    queries += err.count
                    for t in targets:
                        t.errors[err.category] += err.count
            count += queries
            point.phase_counts[key[0]] += queries
        point.count += count

    def _totals(self, key: Key) -> tuple[Cell, Cell]:
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = Cell()
        total = self.phase_totals.get(key[0])
        if total is None:
            total = self.phase_totals[key[0]] = Cell()
        return cell, total

    def _advance(self, worker_id: str, second: int, last: bool) -> None:
        before = self._latest.get(worker_id)
        if worker_id not in self._done:
            if before is None:
                self._blocking[second] += 1
            elif second > before:
                self._move(before, second)
        if before is None or second > before:
            self._latest[worker_id] = second
        if last:
            self._retire(worker_id)
        self._seal_complete()

    def _seal_complete(self) -> None:
        upto = self.complete_seconds()
        while self.sealed_upto < upto:
            self.sealed_upto += 1
            point = self.series.get(self.sealed_upto)
            if point is not None and not point.sealed:
                self._fold_and_seal(point)

    def _move(self, before: int, after: int | None) -> None:
        self._blocking[before] -= 1
        if not self._blocking[before]:
            del self._blocking[before]
        if after is not None:
            self._blocking[after] += 1

    def _fold_and_seal(self, point: SeriesPoint) -> None:
        point.seal()
        if not point.folded:
            point.folded = True
            for key, packed in point.packed.items():
                packed.add_to(*self._totals(key))

    def restore(self, second: int, packed: dict[Key, PackedCell]) -> None:
        """A sealed second read back from the store (a run a crashed controller left):
        into the totals as when it was sealed; reports for it count no more."""
        for key, cell in packed.items():
            cell.add_to(*self._totals(key))
        self.sealed_upto = max(self.sealed_upto, second)

    def restore_schedules(
        self, point: common_pb2.SeriesPoint, schedules: dict[int, PackedSchedule]
    ) -> None:
        """A stored second's open-mode figures (lag, late, dropped per phase, and its
        target rate) into the per-phase schedules, as when it was sealed."""
        for phase, packed in schedules.items():
            target = self.schedules.get(phase)
            if target is None:
                target = self.schedules[phase] = Schedule()
            packed.add_to(target)
        if schedules and point.duration.ToNanoseconds() > 500_000_000:
            total, n = self.forgotten_rates.get(point.phase, (0.0, 0))
            self.forgotten_rates[point.phase] = (total + point.target_rate, n + 1)

    def forget(self, seconds: list[int]) -> None:
        """Drop stored seconds from memory (the totals keep them; the store has them)."""
        for second in seconds:
            point = self.series.get(second)
            if point is None or not point.folded:
                continue
            del self.series[second]
            self.forgotten_count += point.count
            if point.schedule is not None and point.duration_s > 0.5:
                total, n = self.forgotten_rates.get(point.phase, (0.0, 0))
                self.forgotten_rates[point.phase] = (total + point.schedule.target_rate, n + 1)

    def retire(self, worker_id: str) -> None:
        """A worker that reports no more (lost, or left): later seconds are complete
        without it."""
        self._retire(worker_id)
        self._seal_complete()

    def _retire(self, worker_id: str) -> None:
        if worker_id in self._done:
            return
        self._done.add(worker_id)
        if worker_id in self._latest:
            self._move(self._latest[worker_id], None)

    def settle(self) -> None:
        """The run is over: every second, complete or not, goes into the totals."""
        for _, point in sorted(self.series.items()):
            if not point.sealed:
                self._fold_and_seal(point)
        self.sealed_upto = max(self.sealed_upto, max(self.series, default=0))

    def stop_load(self, at_ns: int) -> None:
        """The run's load stops at ``at_ns``: the second it falls in, and any later one,
        is partial (covered up to the stop only)."""
        if self.load_end_ns:
            return
        self.load_end_ns = at_ns
        for point in self.series.values():
            if not point.sealed:
                point.load_end_ns = at_ns

    def received_count(self) -> int:
        """Queries in every report received so far, complete seconds or not."""
        return self.forgotten_count + sum(p.count for p in self.series.values())

    def intervals_from(self, worker_id: str) -> int:
        received = self._received.get(worker_id)
        return received.count if received is not None else 0

    def credits(self, until_ns: int) -> float:
        """Credits between the first warehouse sample and ``until_ns`` (each sample's
        state holds until the next one)."""
        return self.warehouse.credits(until_ns)

    # -- summaries -----------------------------------------------------------------------

    def phase_summary(self, phase: int, duration_s: float) -> common_pb2.PhaseSummary | None:
        overall = self.phase_totals.get(phase)
        if overall is None:
            return None
        summary = common_pb2.PhaseSummary(
            phase=phase,  # type: ignore[arg-type]
            duration=duration_of(duration_s),
            overall=overall.stats(duration_s),
            errors_by_category=dict(overall.errors),
        )
        sched = self.schedules.get(phase)
        if sched is not None:
            if overall.service is not None:
                summary.service.CopyFrom(stats_of(overall.service))
            summary.lag.CopyFrom(stats_of(sched.lag))
            summary.late = sched.late
            summary.dropped = sched.dropped
            summary.achieved_rate = summary.overall.qps
            summary.target_rate = self.mean_target_rate(phase)
        for (ph, kind), cell in sorted(self.cells.items()):
            if ph == phase:
                summary.by_kind[kind].CopyFrom(cell.stats(duration_s))
        return summary

    def phase_histogram(self, phase: int) -> HdrHistogram:
        """Every kind of a phase (the live totals: do not modify)."""
        total = self.phase_totals.get(phase)
        return total.histogram if total is not None else hdr.new_histogram()

    def window(self, start_ns: int, end_ns: int) -> tuple[Cell, float]:
        """Merged data and length in seconds of the seconds that ended in the window."""
        merged = Cell()
        seconds = 0.0
        for point in self.series.values():
            if start_ns < point.end_ns <= end_ns:
                merged.merge(point.overall())
                seconds += point.duration_s or 1.0
        return merged, seconds

    # -- the live view -------------------------------------------------------------------

    def complete_seconds(self) -> int:
        """The newest second every still-reporting worker has delivered (0 if none)."""
        if self._blocking:
            return min(self._blocking)
        return max(self._latest.values(), default=0)

    def complete_point(self) -> SeriesPoint | None:
        """The newest complete second that load covered in full (not a partial tail)."""
        for second in range(self.complete_seconds(), 0, -1):
            point = self.series.get(second)
            if point is not None and not point.partial:
                return point
        return None

    def rolling_qps(self, window: int) -> float:
        """QPS over the last ``window`` complete seconds in which load was active."""
        upto = self.complete_seconds()
        count = 0
        seconds = 0.0
        taken = 0
        for second in range(upto, 0, -1):  # (seconds are consecutive from 1)
            if taken == window:
                break
            point = self.series.get(second)
            if point is None or not point.loaded or point.partial:
                continue
            count += point.count
            seconds += point.duration_s or 1.0
            taken += 1
        return count / seconds if seconds else 0.0

    def series_protos(self) -> list[common_pb2.SeriesPoint]:
        return [p.to_proto() for _, p in sorted(self.series.items())]

    def mean_target_rate(self, phase: int) -> float:
        """The total target rate, averaged over the seconds of a phase."""
        points = [
            p.schedule.target_rate
            for p in self.series.values()
            if p.schedule is not None and p.phase == phase and p.duration_s > 0.5
        ]
        total, n = self.forgotten_rates.get(phase, (0.0, 0))
        return (sum(points) + total) / (len(points) + n) if points or n else 0.0
