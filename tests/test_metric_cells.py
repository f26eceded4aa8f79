"""Cells and seconds of the series (controller/metric_cells.py) against independent
oracles: HdrHistogram's own methods on histograms recorded here, raw sample counts, and
lengths worked out by hand."""

from __future__ import annotations

import pytest
from hdrh.histogram import HdrHistogram

from controller import metric_cells as mc
from snowload import hdr
from snowload.v1 import common_pb2, control_pb2

MEAS = common_pb2.STATE_MEASUREMENT
WARM = common_pb2.STATE_WARMUP
S = 1_000_000_000
T = 50 * S  # a second's start on the run's clock


def hist(*values: int) -> HdrHistogram:
    h = hdr.new_histogram()
    for v in values:
        h.record_value(v)
    return h


def cell(
    values: list[int], errors: dict[str, int] | None = None, service: list[int] | None = None
) -> mc.Cell:
    c = mc.Cell(histogram=hist(*values))
    c.add_errors(errors or {})
    if service is not None:
        c.service = hist(*service)
    return c


def test_counts_add_successes_and_every_error_category() -> None:
    c = cell([100, 200, 300], {"lock": 2, "timeout": 1})
    c.add_errors({"lock": 1})
    assert (c.successes, c.error_count, c.count) == (3, 4, 7)
    assert c.errors == {"lock": 3, "timeout": 1}


def test_stats_read_hdrhistograms_own_values_and_rate_over_the_length() -> None:
    values = [1_000, 2_000, 3_000, 50_000, 120_000]
    c = cell(values, {"lock": 3})
    oracle = hist(*values)
    got = c.stats(2.0)
    assert got.count == 8 and got.errors == 3
    assert got.qps == 4.0
    assert got.p50_ms == oracle.get_value_at_percentile(50) / 1000
    assert got.p95_ms == oracle.get_value_at_percentile(95) / 1000
    assert got.p99_ms == oracle.get_value_at_percentile(99) / 1000
    assert got.max_ms == oracle.get_max_value() / 1000
    assert got.min_ms == oracle.get_min_value() / 1000
    assert got.mean_ms == pytest.approx(oracle.get_mean_value() / 1000)
    assert c.stats(0.0).qps == 0.0


def test_percentiles_follow_new_values() -> None:
    c = cell([1_000])
    assert c.percentiles().max_ms == hist(1_000).get_max_value() / 1000
    c.histogram.record_value(9_000)
    assert c.percentiles().count == 2
    assert c.percentiles().max_ms == hist(9_000).get_max_value() / 1000


def test_merge_adds_histograms_service_times_and_errors() -> None:
    a = cell([1_000], {"lock": 1})
    b = cell([2_000, 3_000], {"lock": 2, "syntax": 1}, service=[500])
    a.merge(b)
    assert a.successes == 3 and a.errors == {"lock": 3, "syntax": 1}
    assert a.service is not None and a.service.get_total_count() == 1
    a.merge(cell([4_000]))  # no service times: the merged ones stay
    assert a.service.get_total_count() == 1 and a.successes == 4


def test_a_packed_cell_unpacks_to_the_same_data_and_adds_to_several_cells() -> None:
    original = cell([1_000, 2_000, 70_000], {"lock": 2}, service=[800, 900])
    packed = original.pack()
    assert packed.errors == {"lock": 2}
    back = packed.unpack()
    assert hdr.encode(back.histogram) == hdr.encode(original.histogram)
    assert back.service is not None
    assert hdr.encode(back.service) == hdr.encode(hist(800, 900))
    assert back.errors == {"lock": 2}
    x, y = cell([5_000]), cell([])
    packed.add_to(x, y)
    assert (x.successes, y.successes) == (4, 3)
    assert x.errors == {"lock": 2} == y.errors
    plain = cell([1_000]).pack()
    assert plain.service == b""
    assert plain.unpack().service is None


def test_a_schedule_adds_lag_late_and_dropped_but_not_the_rate() -> None:
    sched = mc.Schedule()
    for lag, late, dropped in (([1_000, 2_000], 3, 1), ([5_000], 2, 0)):
        sched.add(
            control_pb2.PhaseSchedule(
                lag_histogram=hdr.encode(hist(*lag)), late=late, dropped=dropped, target_rate=9
            )
        )
    assert sched.lag.get_total_count() == 3
    assert (sched.late, sched.dropped, sched.target_rate) == (5, 1, 0.0)


def test_a_second_takes_the_phase_most_of_its_queries_ran_in() -> None:
    point = mc.SeriesPoint(1)
    assert point.phase == common_pb2.STATE_UNSPECIFIED
    point.phase_counts.update({WARM: 3, MEAS: 5})
    assert point.phase == MEAS


def point(duration_s: float, start: int, end: int, load_end: int) -> mc.SeriesPoint:
    return mc.SeriesPoint(
        1, duration_s=duration_s, start_ns=start, end_ns=end, load_end_ns=load_end
    )


@pytest.mark.parametrize(
    ("p", "covered", "partial"),
    [
        (point(0.0, T, T + S, 0), 1.0, False),  # no length reported: a second
        (point(0.8, T, T + S, 0), 0.8, False),  # load still running
        (point(1.0, T, T + S, T + S), 1.0, False),  # stopped at its end
        # a report a little longer than the second it was mapped onto: stopped at or
        # after the second's end, the second covers the report's length
        (point(1.02, T, T + S, T + S), 1.02, False),
        (point(1.02, T, T + S, T + 2 * S), 1.02, False),
        (point(1.0, 0, T + S, T + S // 2), 1.0, False),  # no start known
        (point(1.0, T, T + S, T + 400_000_000), 0.4, True),
        (point(1.0, T, T + S, T + 970_000_000), 0.97, False),  # within the clock slack
        (point(1.0, T, T + S, T + 940_000_000), 0.94, True),
        (point(1.0, T, T + S, T + 30_000_000), 0.0, True),  # only drained
        (point(1.0, T, T + S, T + 50_000_000), 0.0, True),
        (point(1.0, T, T + S, T + 60_000_000), 0.06, True),
        (point(0.5, T, T + 2 * S, T + 1_500_000_000), 0.5, True),  # no longer than reported
    ],
)
def test_how_long_load_covered_a_second(p: mc.SeriesPoint, covered: float, partial: bool) -> None:
    assert p.covered_s() == pytest.approx(covered, abs=1e-12)
    assert p.partial is partial


def test_a_second_is_loaded_if_it_had_connections_or_queries() -> None:
    assert not mc.SeriesPoint(1).loaded
    assert mc.SeriesPoint(1, active_connections=1).loaded
    assert mc.SeriesPoint(1, count=1).loaded


def filled() -> mc.SeriesPoint:
    p = mc.SeriesPoint(3, duration_s=2.0, start_ns=T, end_ns=T + S, active_connections=6)
    p.workers.update({"a", "b"})
    p.cells[(WARM, "q")] = cell([1_000, 2_000], {"lock": 1})
    p.cells[(MEAS, "q")] = cell([3_000], service=[700])
    p.cells[(MEAS, "w")] = cell([40_000, 50_000, 60_000], {"lock": 1, "syntax": 2})
    p.phase_counts.update({WARM: 3, MEAS: 7})
    p.schedule = mc.Schedule(lag=hist(100, 200, 90_000), late=4, dropped=2, target_rate=80.0)
    p.warehouse = common_pb2.WarehouseSample(size="XSMALL")
    return p


def test_a_second_reads_the_union_of_its_cells() -> None:
    proto = filled().to_proto()
    union = hist(1_000, 2_000, 3_000, 40_000, 50_000, 60_000)
    assert proto.second == 3 and proto.phase == MEAS
    assert proto.duration.ToNanoseconds() == 2 * S and not proto.partial
    assert proto.overall.count == 10 and proto.overall.errors == 4
    assert proto.overall.qps == 5.0
    assert proto.overall.p50_ms == union.get_value_at_percentile(50) / 1000
    assert proto.overall.max_ms == union.get_max_value() / 1000
    assert dict(proto.errors_by_category) == {"lock": 2, "syntax": 2}
    assert proto.active_connections == 6 and proto.workers_active == 2
    assert proto.end_time.ToNanoseconds() == T + S
    assert proto.warehouse.size == "XSMALL"
    assert proto.target_rate == 80.0 and (proto.late, proto.dropped) == (4, 2)
    assert proto.lag_p99_ms == hist(100, 200, 90_000).get_value_at_percentile(99) / 1000
    assert proto.service_p99_ms == hist(700).get_value_at_percentile(99) / 1000
    q = proto.by_kind["q"]  # both phases of kind q
    assert (q.count, q.errors, q.qps) == (4, 1, 2.0)
    assert q.max_ms == hist(3_000).get_max_value() / 1000
    assert sorted(proto.by_kind) == ["q", "w"]
    assert proto.by_kind["w"].count == 6


def test_a_sealed_second_reads_the_same_and_reopens_to_the_same_cells() -> None:
    p = filled()
    before = p.to_proto()
    overall_before = p.overall()
    p.seal()
    assert p.sealed and p.cells == {}
    assert p.to_proto() == before
    overall = p.overall()
    assert hdr.encode(overall.histogram) == hdr.encode(overall_before.histogram)
    assert overall.errors == {"lock": 2, "syntax": 2}
    assert overall.service is not None and overall.service.get_total_count() == 1
    assert p.schedule is not None and p.schedule.lag.get_total_count() == 0
    p.reopen()
    assert not p.sealed and p.packed == {} and p.overall_encoded == b"" and p.packed_lag == b""
    assert p.schedule.lag.get_total_count() == 3
    assert p.to_proto() == before
    assert sorted(p.cells) == [(WARM, "q"), (MEAS, "q"), (MEAS, "w")]
    assert p.cells[(MEAS, "w")].errors == {"lock": 1, "syntax": 2}


def test_a_second_without_schedule_or_end_leaves_those_fields_unset() -> None:
    p = mc.SeriesPoint(1, duration_s=1.0)
    p.cells[(MEAS, "q")] = cell([1_000])
    proto = p.to_proto()
    assert not proto.HasField("end_time") and not proto.HasField("warehouse")
    assert proto.target_rate == 0 and proto.lag_p99_ms == 0 and proto.service_p99_ms == 0
    p.seal()
    assert p.packed_lag == b"" and p.to_proto() == proto
    assert p.overall().service is None


def test_kinds_of_one_phase_are_not_merged_and_the_cells_are_left_alone() -> None:
    cells = {(WARM, "q"): cell([1_000]), (MEAS, "q"): cell([2_000]), (MEAS, "w"): cell([3_000])}
    by_kind = mc._by_kind(cells)
    assert by_kind["q"].successes == 2 and by_kind["w"].successes == 1
    assert cells[(WARM, "q")].successes == 1 and cells[(MEAS, "q")].successes == 1


def test_stats_of_and_duration_of() -> None:
    h = hist(1_000, 5_000)
    got = mc.stats_of(h)
    assert got.count == 2 and got.errors == 0 and got.qps == 0
    assert got.max_ms == h.get_max_value() / 1000 and got.min_ms == h.get_min_value() / 1000
    assert got.p50_ms == h.get_value_at_percentile(50) / 1000
    assert got.p95_ms == h.get_value_at_percentile(95) / 1000
    assert got.p99_ms == h.get_value_at_percentile(99) / 1000
    assert got.mean_ms == pytest.approx(h.get_mean_value() / 1000)
    assert mc.duration_of(1.5).ToNanoseconds() == 1_500_000_000
