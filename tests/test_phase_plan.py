"""The phase plan (controller/plan.py), its mapping onto a worker's timeline
(worker/boundaries.py) and the worker clock's pure parts (worker/clock.py), value by
value; every figure is worked out by hand."""

from __future__ import annotations

import time

import pytest

from controller import plan
from snowload.v1 import common_pb2
from worker import clock
from worker.boundaries import AFTER_END, BEFORE_LOAD, NEVER, Boundaries

WARMUP = common_pb2.STATE_WARMUP
MEASUREMENT = common_pb2.STATE_MEASUREMENT
MS = 1_000_000


def test_the_lead_covers_four_round_trips_and_the_fan_out_within_its_bounds() -> None:
    # 4 x 30 ms + 10 workers x 1.5 ms + 10 ms
    assert plan.lead_ns([10 * MS, 30 * MS, 0], 10) == 145 * MS
    # a worker without a measured round trip counts 20 ms: 80 + 1.5 + 10
    assert plan.lead_ns([0], 1) == 91_500_000
    assert plan.lead_ns([], 1) == 91_500_000
    assert plan.lead_ns([MS], 1) == 50 * MS  # 4 + 1.5 + 10 is under the floor
    assert plan.lead_ns([600 * MS], 1) == 2_000 * MS  # 2411.5 ms is over the ceiling
    assert plan.lead_ns([1 * MS], 24) == 50 * MS  # 4 + 36 + 10: exactly the floor
    assert plan.lead_ns([MS], 25) == 51_500_000


def test_a_measured_fan_out_replaces_the_per_worker_allowance() -> None:
    # 4 x 30 ms + 2 x 40 ms (the Assign's fan-out, measured) + 10 ms, whatever the count
    assert plan.lead_ns([10 * MS, 30 * MS], 10, 40 * MS) == 210 * MS
    assert plan.lead_ns([10 * MS, 30 * MS], 1000, 40 * MS) == 210 * MS
    assert plan.lead_ns([MS], 64, 5 * MS) == 50 * MS  # 4 + 10 + 10: under the floor
    assert plan.lead_ns([MS], 256, 995 * MS + 1) == 2_000 * MS  # 2004 ms: over the ceiling
    assert plan.lead_ns([MS], 64, 0) == plan.lead_ns([MS], 64)  # not measured: per worker
    # the smallest measured fan-out is still a measurement: 120 ms + 2 ns + 10 ms, not 150 ms
    assert plan.lead_ns([30 * MS], 100, 1) == 130 * MS + 2


def test_the_fan_out_is_the_slowest_assign_or_start_delivery() -> None:
    deliveries = [{"assign": 30 * MS, "stop": 900 * MS}, {"assign": 20 * MS, "start": 70 * MS}]
    assert plan.fanout_ns(deliveries) == 70 * MS  # a Stop's delivery does not count
    assert plan.fanout_ns([{"assign": 30 * MS}, {}]) == 30 * MS
    assert plan.fanout_ns([{}, {"set_load": MS}]) == 0
    assert plan.fanout_ns([]) == 0


def test_a_plan_places_every_boundary_after_the_lead() -> None:
    p = plan.make_plan(1_000 * MS, 100 * MS, 2.5, 10.0)
    assert p.decide_time.ToNanoseconds() == 1_000 * MS
    assert p.load_start_time.ToNanoseconds() == 1_100 * MS
    assert p.measurement_start_time.ToNanoseconds() == 3_600 * MS
    assert p.measurement_end_time.ToNanoseconds() == 13_600 * MS
    assert plan.planned_end_ns(p) == 13_600 * MS
    open_ended = plan.make_plan(0, 50 * MS, 0.0, None)
    assert open_ended.HasField("measurement_start_time")
    assert open_ended.measurement_start_time.ToNanoseconds() == 50 * MS
    assert not open_ended.HasField("measurement_end_time")
    assert plan.planned_end_ns(open_ended) == 0
    assert plan.planned_end_ns(None) == 0


def shift(ns: int) -> int:
    return ns - 1_000  # this process's timeline runs 1000 ns behind the controller's


def test_boundaries_from_a_plan_are_mapped_onto_the_timeline() -> None:
    p = plan.make_plan(0, 10_000, 0.00002, 0.00003)  # warmup 20 us, measurement 30 us
    b = Boundaries.from_plan(p, shift)
    assert b == Boundaries(((9_000, WARMUP), (29_000, MEASUREMENT)), end=59_000)
    assert (b.load_start, b.measurement_start) == (9_000, 29_000)


def test_a_plan_without_warmup_or_end_has_only_its_measurement_edge() -> None:
    p = plan.make_plan(0, 10_000, 0.0, None)
    b = Boundaries.from_plan(p, shift)
    assert b == Boundaries(((9_000, MEASUREMENT),), end=NEVER)
    assert b.load_start == 9_000 == b.measurement_start
    empty = Boundaries.from_plan(common_pb2.PhasePlan(), shift)
    assert empty == Boundaries((), NEVER)
    assert (empty.load_start, empty.measurement_start) == (NEVER, NEVER)
    assert empty.phase_at(0) == BEFORE_LOAD and empty.next_edge(0) == NEVER


def test_a_plan_with_only_a_load_start_never_measures() -> None:
    p = common_pb2.PhasePlan()
    p.load_start_time.FromNanoseconds(5_000)
    p.measurement_start_time.FromNanoseconds(5_000)  # no warmup: equal instants
    assert Boundaries.from_plan(p, shift).edges == ((4_000, MEASUREMENT),)
    warm_only = Boundaries(((4_000, WARMUP),))
    assert warm_only.measurement_start == NEVER
    assert warm_only.phase_at(10**15) == WARMUP


def test_from_now_and_the_next_edge_stops_at_the_end() -> None:
    b = Boundaries.from_now(MEASUREMENT, 77)
    assert b.edges == ((77, MEASUREMENT),) and b.end == NEVER
    short = Boundaries(((100, WARMUP), (500, MEASUREMENT)), end=300)
    assert short.next_edge(150) == 300  # the end comes before the next edge
    assert short.next_edge(299) == 300
    assert Boundaries(((100, WARMUP),), end=300).next_edge(300) == NEVER


def test_a_phase_change_replaces_later_edges_and_earlier_ones_of_its_phase() -> None:
    b = Boundaries(((100, WARMUP), (200, MEASUREMENT)), end=900)
    # MEASUREMENT moved earlier: its old edge goes, WARMUP before it stays
    assert b.with_phase(MEASUREMENT, 150) == Boundaries(
        ((100, WARMUP), (150, MEASUREMENT)), end=900
    )
    # at an edge's own instant the edge is replaced
    assert b.with_phase(WARMUP, 200) == Boundaries(((200, WARMUP),), end=900)
    assert b.with_phase(MEASUREMENT, 100) == Boundaries(((100, MEASUREMENT),), end=900)
    assert b.ending_at(250) == Boundaries(b.edges, end=250)
    assert b.phase_at(899) == MEASUREMENT and b.phase_at(900) == AFTER_END


@pytest.mark.parametrize(
    ("raw", "ns"), [("-40.5", -40_500_000), (" 2 ", 2_000_000), ("", 0), ("soon", 0)]
)
def test_the_test_skew_is_read_in_milliseconds(
    raw: str, ns: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(clock.SKEW_ENV, raw)
    assert clock._skew_ns() == ns
    monkeypatch.delenv(clock.SKEW_ENV)
    assert clock._skew_ns() == 0


def test_the_worker_clock_reads_wall_time() -> None:
    """(No skew is set in the test environment.)"""
    before = time.time_ns()
    now = clock.now_ns()
    ts = clock.now_ts().ToNanoseconds()
    after = time.time_ns()
    assert before - 50 * MS <= now <= ts <= after + 50 * MS
    assert clock.perf_to_wall(clock.wall_to_perf(now)) == now


def test_a_round_trip_of_no_time_is_certain_and_the_window_edge_is_kept() -> None:
    sync = clock.ClockSync(window_ns=1_000)
    sync.add(sent_ns=100, controller_ns=600, received_ns=100)
    assert (sync.rtt_ns, sync.uncertainty_ns, sync.offset_ns) == (0, 0, 500)
    sync.add(sent_ns=1_000, controller_ns=2_000, received_ns=1_100)  # exactly 1000 ns later
    assert sync.rtt_ns == 0  # the first sample is at the window's edge: still in it
    sync.add(sent_ns=1_000, controller_ns=2_000, received_ns=1_101)
    assert sync.rtt_ns == 100
