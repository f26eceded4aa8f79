"""The run-level merge's smaller parts (controller/metrics.py): schedules, warehouse
credits, windows, target rates, counters. Expected values are worked out by hand or read
from HdrHistogram's own methods on histograms recorded here."""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

from controller.metrics import RunMetrics
from snowload import hdr
from snowload.v1 import common_pb2, control_pb2

MEAS = common_pb2.STATE_MEASUREMENT
WARM = common_pb2.STATE_WARMUP
S = 1_000_000_000
T0 = 1_000 * S


def hist(*values: int) -> HdrHistogram:
    h = hdr.new_histogram()
    for v in values:
        h.record_value(v)
    return h


def rep(
    k: int,
    values: list[int],
    *,
    phase: int = MEAS,
    last: bool = False,
    length_s: float = 1.0,
    schedules: list[control_pb2.PhaseSchedule] | None = None,
    warehouse: common_pb2.WarehouseSample | None = None,
    service: list[int] | None = None,
) -> control_pb2.MetricsReport:
    r = control_pb2.MetricsReport(run_id="r", interval_id=k, active_connections=2, last=last)
    r.start_time.FromNanoseconds(T0 + (k - 1) * S)
    r.end_time.FromNanoseconds(T0 + (k - 1) * S + int(length_s * S))
    r.kinds.add(kind="q", phase=phase, count=len(values), histogram=hdr.encode(hist(*values)))  # type: ignore[arg-type]
    if service is not None:
        r.kinds[0].service_histogram = hdr.encode(hist(*service))
    r.schedule.extend(schedules or [])
    if warehouse is not None:
        r.warehouse.CopyFrom(warehouse)
    return r


def sched(
    rate: float, lag: list[int], late: int = 0, dropped: int = 0, phase: int = MEAS
) -> control_pb2.PhaseSchedule:
    return control_pb2.PhaseSchedule(
        phase=phase,
        lag_histogram=hdr.encode(hist(*lag)),
        late=late,
        dropped=dropped,
        target_rate=rate,  # type: ignore[arg-type]
    )


def test_open_mode_phase_summary_has_lag_service_and_rates() -> None:
    m = RunMetrics()
    m.add(
        "a", rep(1, [1_000, 2_000], schedules=[sched(10, [100, 200], late=1)], service=[500, 600])
    )
    m.add("b", rep(1, [3_000], schedules=[sched(20, [90_000], dropped=2)], service=[700]))
    m.add("a", rep(2, [4_000], schedules=[sched(30, [300])], service=[800], last=True))
    m.add("b", rep(2, [], schedules=[sched(30, [])], last=True))
    m.settle()
    s = m.phase_summary(MEAS, 2.0)
    assert s is not None
    assert (s.late, s.dropped) == (1, 2)
    lag = hist(100, 200, 90_000, 300)
    assert s.lag.count == 4 and s.lag.max_ms == lag.get_max_value() / 1000
    assert s.lag.p99_ms == lag.get_value_at_percentile(99) / 1000
    assert s.service.count == 4 and s.service.max_ms == hist(800).get_max_value() / 1000
    assert s.overall.qps == 2.0 and s.achieved_rate == 2.0
    assert s.target_rate == 45.0  # second 1: 10 + 20, second 2: 30 + 30; averaged
    assert m.phase_summary(WARM, 1.0) is None
    assert m.phase_histogram(MEAS).get_total_count() == 4
    assert m.phase_histogram(WARM).get_total_count() == 0


def test_a_report_counts_its_highest_target_rate_once() -> None:
    m = RunMetrics()
    m.add("a", rep(1, [1_000], schedules=[sched(10, [1], phase=WARM), sched(40, [1])], last=True))
    point = m.series[1]
    assert point.schedule is not None and point.schedule.target_rate == 40
    assert m.mean_target_rate(MEAS) == 40.0
    assert m.schedules[WARM].lag.get_total_count() == 1


def test_the_mean_target_rate_skips_short_seconds_and_other_phases() -> None:
    m = RunMetrics()
    m.add("a", rep(1, [1_000], phase=WARM, schedules=[sched(99, [1], phase=WARM)]))
    m.add("a", rep(2, [1_000], schedules=[sched(10, [1])]))
    m.add("a", rep(3, [1_000], schedules=[sched(20, [1])], length_s=0.5, last=True))
    assert m.mean_target_rate(MEAS) == 10.0  # second 3 lasted only 0.5 s
    assert m.mean_target_rate(common_pb2.STATE_PREPARING) == 0.0


def wh(
    at_s: float, size: str, state: str = "STARTED", clusters: int = 1
) -> common_pb2.WarehouseSample:
    w = common_pb2.WarehouseSample(size=size, state=state, started_clusters=clusters)
    w.sample_time.FromNanoseconds(int(T0 + at_s * S))
    return w


def test_credits_hold_each_sample_until_the_next() -> None:
    m = RunMetrics()
    # out of order on purpose: the samples are sorted by time
    m.add("a", rep(2, [1_000], warehouse=wh(1800, "SMALL", clusters=2)))
    m.add("a", rep(1, [1_000], warehouse=wh(0, "XSMALL")))
    assert m.warehouse.count == 2
    # XSMALL (1 credit/h) for 1800 s, then SMALL (2 credits/h) x 2 clusters for 900 s
    assert m.credits(T0 + 2700 * S) == 0.5 + 1.0
    assert m.credits(T0 + 1000 * S) == 0.5  # an end before the last sample adds nothing
    assert m.series[1].warehouse is not None and m.series[1].warehouse.size == "XSMALL"


def test_a_window_takes_the_seconds_that_ended_in_it() -> None:
    m = RunMetrics()
    for k, values in ((1, [1_000]), (2, [2_000, 3_000]), (3, [4_000])):
        m.add("a", rep(k, values, length_s=1.0 if k < 3 else 0.0))
    cell, seconds = m.window(T0 + 1 * S, T0 + 3 * S)
    # seconds 2 and 3 end at T0 + 2 s and T0 + 2 s (a zero-length report counts as 1 s)
    assert cell.successes == 3 and seconds == 2.0
    cell, seconds = m.window(T0, T0 + S)
    assert cell.successes == 1 and seconds == 1.0


def test_counters_of_reports_and_queries() -> None:
    m = RunMetrics()
    m.add("a", rep(1, [1_000, 2_000]))
    m.add("a", rep(1, [1_000, 2_000]))  # again: no count
    m.add("a", rep(3, [5_000]))
    assert m.reports == 2 and m.received_count() == 3
    assert m.intervals_from("a") == 2 and m.intervals_from("zz") == 0


def test_only_the_first_stop_counts_and_sealed_seconds_keep_theirs() -> None:
    m = RunMetrics()
    m.add("a", rep(1, [1_000]))
    m.add("b", rep(1, [1_000]))
    m.add("a", rep(2, [1_000]))  # second 1 is complete and sealed, 2 waits for b
    m.stop_load(T0 + 1_500_000_000)
    m.stop_load(T0 + 1_900_000_000)
    assert m.load_end_ns == T0 + 1_500_000_000
    assert m.series[1].load_end_ns == 0
    assert m.series[2].load_end_ns == T0 + 1_500_000_000


def test_seconds_are_cut_on_the_runs_clock_once_the_origin_is_known() -> None:
    m = RunMetrics()
    m.origin_ns = T0 + 7_000_000  # the load started 7 ms after the workers' clocks say
    m.add("a", rep(2, [1_000]))
    m.add("a", rep(3, [1_000], last=True, length_s=0.4))
    two, three = m.series[2], m.series[3]
    assert (two.start_ns, two.end_ns) == (T0 + 7_000_000 + S, T0 + 7_000_000 + 2 * S)
    # the last report keeps its own length: 0.4 s after the second's start
    assert (three.start_ns, three.end_ns) == (two.end_ns, two.end_ns + 400_000_000)


def test_a_second_sums_connections_queries_and_errors_of_every_worker() -> None:
    m = RunMetrics()
    a = rep(1, [1_000, 2_000], schedules=[sched(10, [1])])
    a.kinds[0].errors.add(category="lock", count=3)
    a.kinds[0].errors.add(category="syntax", count=1)
    m.add("a", a)
    m.add("b", rep(1, [3_000]))  # no schedule of its own
    point = m.series[1]
    assert point.active_connections == 4
    assert point.count == 7 and point.phase_counts[MEAS] == 7
    assert m.received_count() == 7
    assert point.schedule is not None and point.schedule.target_rate == 10
    m.settle()
    summary = m.phase_summary(MEAS, 1.0)
    assert summary is not None and summary.phase == MEAS
    assert summary.duration.ToNanoseconds() == S
    assert summary.overall.count == 7 and summary.overall.errors == 4


def test_rolling_qps_takes_exactly_the_last_window_of_seconds() -> None:
    m = RunMetrics()
    for k, n in ((1, 10), (2, 20), (3, 30)):
        m.add("a", rep(k, [1_000] * n))
    assert m.complete_seconds() == 3
    assert m.rolling_qps(2) == 25.0  # (30 + 20) / 2 s
    assert m.rolling_qps(1) == 30.0
    assert RunMetrics().rolling_qps(5) == 0.0
    assert RunMetrics().complete_seconds() == 0


def test_a_worker_expected_twice_blocks_once() -> None:
    m = RunMetrics()
    m.expect(["a"])
    m.expect(["a"])
    m.add("a", rep(1, [1_000]))
    assert m.complete_seconds() == 1


def test_a_worker_that_finished_or_was_lost_blocks_no_later_second() -> None:
    m = RunMetrics()
    m.add("a", rep(1, [1_000]))
    m.add("b", rep(1, [1_000]))
    m.add("a", rep(2, [1_000], last=True))
    m.add("b", rep(3, [1_000]))
    assert m.complete_seconds() == 3  # a's last report released it
    m.retire("a")  # lost after its last report: nothing more to release
    m.add("b", rep(4, [1_000]))
    assert m.complete_seconds() == 4


def test_settling_nothing_is_no_error() -> None:
    m = RunMetrics()
    m.settle()
    assert m.sealed_upto == 0 and m.phase_summary(MEAS, 1.0) is None


def test_a_full_second_ends_on_the_runs_clock_whatever_its_report_spans() -> None:
    """Only a last report keeps its own length; any other one ends its second at origin +
    k s (a worker recruited mid-second reports a short first interval)."""
    m = RunMetrics()
    m.origin_ns = T0
    m.add("a", rep(2, [1_000], length_s=0.4))
    m.add("b", rep(2, [1_000], length_s=0.3))
    assert (m.series[2].start_ns, m.series[2].end_ns) == (T0 + S, T0 + 2 * S)
    cell, _ = m.window(T0 + S, T0 + 2 * S)  # the second ended at T0 + 2 s, in the window
    assert cell.successes == 2


def test_errors_of_one_category_add_up_over_workers_and_seconds() -> None:
    m = RunMetrics()
    for worker, k, lock in (("a", 1, 3), ("b", 1, 2), ("a", 2, 4)):
        r = rep(k, [1_000])
        r.kinds[0].errors.add(category="lock", count=lock)
        r.kinds[0].errors.add(category="syntax", count=1)
        m.add(worker, r)
    m.settle()
    summary = m.phase_summary(MEAS, 2.0)
    assert summary is not None
    assert dict(summary.errors_by_category) == {"lock": 9, "syntax": 3}
    assert summary.overall.errors == 12 and summary.by_kind["q"].errors == 12


def test_rolling_qps_counts_a_second_without_a_length_as_one_second() -> None:
    """A report without timestamps has no length: its second counts as 1 s, as in window()."""
    m = RunMetrics()
    m.add("a", rep(1, [1_000] * 10, length_s=0.0))
    assert m.series[1].duration_s == 0.0
    assert m.rolling_qps(1) == 10.0


def test_forgotten_seconds_keep_their_counts_and_target_rates() -> None:
    m = RunMetrics()
    m.add("a", rep(1, [1_000], phase=WARM, schedules=[sched(99, [1], phase=WARM)]))
    m.add("a", rep(2, [1_000, 2_000], schedules=[sched(10, [1])]))
    m.add("a", rep(3, [3_000], schedules=[sched(30, [1])]))
    m.add("a", rep(4, [4_000], schedules=[sched(20, [1])], length_s=0.5))
    m.add("a", rep(5, [5_000, 6_000], schedules=[sched(50, [1])], last=True))
    m.settle()
    m.forget([1, 2, 3, 4, 99])  # 99: never reported, nothing to drop
    assert sorted(m.series) == [5]
    assert m.received_count() == 7
    assert m.mean_target_rate(MEAS) == 30.0  # (10 + 30 + 50) / 3: second 4 lasted 0.5 s
    assert m.mean_target_rate(WARM) == 99.0


def test_a_second_not_yet_sealed_is_not_forgotten() -> None:
    m = RunMetrics()
    m.expect(["a", "b"])
    m.add("a", rep(1, [1_000], schedules=[sched(10, [1])]))
    m.forget([1])  # b has not reported second 1: it stays in memory
    assert sorted(m.series) == [1]
    assert m.received_count() == 1
    assert m.mean_target_rate(MEAS) == 10.0


def test_restored_seconds_rebuild_the_totals_and_the_sealed_mark() -> None:
    values = {1: [1_000, 2_000], 2: [70_000], 3: [300, 5_000_000]}
    m = RunMetrics()
    for k, vs in values.items():
        m.add("a", rep(k, vs, last=k == 3))
    m.settle()
    again = RunMetrics()
    for k in (3, 1, 2):  # in any order: the mark is the newest second
        again.restore(k, m.series[k].packed)
    assert again.sealed_upto == 3
    oracle = hist(*(v for vs in values.values() for v in vs))
    total = again.phase_totals[MEAS].histogram
    assert total.get_total_count() == oracle.get_total_count() == 5
    for pct in (50.0, 99.0, 100.0):
        assert total.get_value_at_percentile(pct) == oracle.get_value_at_percentile(pct)
    assert total.get_max_value() == oracle.get_max_value()
    assert [c.histogram.get_total_count() for c in again.cells.values()] == [5]


def test_seconds_restored_or_reported_late_after_a_restore_can_be_forgotten() -> None:
    """After a restart: seconds 1-2 come back from the store (not into memory), a late
    report for second 2 and a live second 3 arrive; all of them can leave memory."""
    first = RunMetrics()
    first.add("a", rep(1, [1_000]))
    first.add("a", rep(2, [2_000], last=True))
    first.settle()
    m = RunMetrics()
    for k in (1, 2):
        m.restore(k, first.series[k].packed)
    m.add("b", rep(2, [3_000]))  # late: straight into the totals, sealed
    m.add("b", rep(3, [4_000], last=True))
    m.settle()
    assert sorted(m.series) == [2, 3]
    m.forget([1, 2, 3])  # second 1 is not in memory: the others still go
    assert m.series == {}
    assert m.phase_totals[MEAS].histogram.get_total_count() == 4
