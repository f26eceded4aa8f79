"""Merging worker intervals: exact, deduplicated, and honest after load stops."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.metrics import RunMetrics
from snowload import hdr
from snowload.v1 import common_pb2, control_pb2

MEAS = common_pb2.STATE_MEASUREMENT
WARM = common_pb2.STATE_WARMUP


def report(
    interval: int,
    latencies_by_kind: dict[str, list[int]],
    *,
    phase: int = MEAS,
    active: int = 4,
    last: bool = False,
    duration_s: float = 1.0,
    errors: int = 0,
    first: int = 1,
) -> control_pb2.MetricsReport:
    rep = control_pb2.MetricsReport(
        run_id="r",
        interval_id=interval,
        active_connections=active,
        last=last,
        first_interval_id=first,
    )
    end = 1_000_000_000_000 + interval * 1_000_000_000
    rep.end_time.FromNanoseconds(end)
    rep.start_time.FromNanoseconds(end - int(duration_s * 1e9))
    for kind, values in latencies_by_kind.items():
        h = hdr.new_histogram()
        for v in values:
            h.record_value(v)
        ki = rep.kinds.add(kind=kind, phase=phase, count=len(values), histogram=hdr.encode(h))  # type: ignore[arg-type]
        if errors:
            ki.errors.add(category="lock", count=errors, samples=["database is locked"])
    return rep


def raw_percentile(values: list[int], pct: float) -> int:
    """The value at ``pct`` in the sorted samples, by HdrHistogram's rank rule."""
    ordered = sorted(values)
    rank = max(1, int(pct * len(ordered) / 100 + 0.5))
    return ordered[rank - 1]


latency = st.integers(min_value=1, max_value=50_000_000)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(latency, min_size=1, max_size=400),
    workers=st.integers(min_value=1, max_value=8),
    intervals=st.integers(min_value=1, max_value=5),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_merged_percentiles_equal_those_of_the_union(
    values: list[int], workers: int, intervals: int, seed: int
) -> None:
    rnd = random.Random(seed)
    split: dict[tuple[int, int], list[int]] = {}
    for v in values:
        split.setdefault((rnd.randrange(workers), rnd.randrange(1, intervals + 1)), []).append(v)
    metrics = RunMetrics()
    for (w, k), vs in split.items():
        assert metrics.add(f"w{w}", report(k, {"q": vs}))
    # live totals cover exactly the sealed seconds, and every complete second is sealed
    complete = [p for s, p in metrics.series.items() if s <= metrics.complete_seconds()]
    assert all(p.sealed for p in complete)
    live = metrics.cells.get((MEAS, "q"))
    assert (live.count if live else 0) == sum(p.count for p in metrics.series.values() if p.sealed)
    metrics.settle()

    merged = metrics.cells[(MEAS, "q")].histogram
    union = hdr.new_histogram()
    for v in values:
        union.record_value(v)
    assert merged.get_total_count() == len(values)
    for pct in (50.0, 90.0, 95.0, 99.0, 99.9, 100.0):
        got = merged.get_value_at_percentile(pct)
        assert got == union.get_value_at_percentile(pct)
        # and within HDR precision (3 significant digits) of the raw samples
        raw = raw_percentile(values, pct)
        assert abs(got - raw) <= max(1, math.ceil(raw * 0.001)), (pct, got, raw)
    p = hdr.percentiles(merged)
    assert p.p50_ms <= p.p95_ms <= p.p99_ms <= p.max_ms
    # the one-pass mean agrees with HdrHistogram's own
    assert math.isclose(p.mean_ms * 1000, merged.get_mean_value(), rel_tol=1e-9)
    assert merged.get_max_value() >= max(values)  # integers: no float rounding here


def test_a_report_sent_twice_counts_once() -> None:
    metrics = RunMetrics()
    rep = report(1, {"q": [100] * 10})
    assert metrics.add("w0", rep)
    assert not metrics.add("w0", rep)
    assert metrics.cells[(MEAS, "q")].successes == 10
    assert metrics.add("w1", rep)  # same interval id from another worker is new
    assert metrics.cells[(MEAS, "q")].successes == 20
    assert metrics.intervals_from("w0") == 1


def test_phases_and_kinds_stay_apart_and_errors_are_counted() -> None:
    metrics = RunMetrics()
    metrics.add("w0", report(1, {"a": [10] * 5, "b": [20] * 3}, phase=WARM))
    metrics.add("w0", report(2, {"a": [10] * 7}, errors=2))
    assert metrics.cells[(WARM, "a")].successes == 5
    assert metrics.cells[(WARM, "b")].successes == 3
    assert metrics.cells[(MEAS, "a")].successes == 7
    assert metrics.cells[(MEAS, "a")].error_count == 2
    summary = metrics.phase_summary(MEAS, 1.0)
    assert summary is not None
    assert summary.overall.count == 9 and summary.overall.errors == 2
    assert summary.errors_by_category == {"lock": 2}
    assert metrics.error_samples["lock"] == ["database is locked"]
    assert metrics.phase_summary(common_pb2.STATE_PREPARING, 1.0) is None


def test_rolling_qps_freezes_when_load_stops() -> None:
    """The predecessor's bug 3: a rolling average kept moving after the load stopped."""
    metrics = RunMetrics()
    for k in range(1, 21):
        for w in ("w0", "w1"):
            metrics.add(w, report(k, {"q": [500] * (100 if k <= 10 else 200)}))
    # two workers x 200 queries in each of the last 10 seconds
    assert metrics.rolling_qps(10) == 400.0
    assert metrics.rolling_qps(30) == (10 * 200 + 10 * 400) / 20
    before = (metrics.rolling_qps(10), metrics.rolling_qps(30))
    # load stops: the workers drain and send their last (empty) interval
    for w in ("w0", "w1"):
        metrics.add(w, report(21, {}, active=0, last=True, duration_s=0.2))
    for _ in range(5):  # time passes, updates keep being computed: nothing drifts
        assert (metrics.rolling_qps(10), metrics.rolling_qps(30)) == before


def test_series_point_is_complete_only_when_every_worker_reported_it() -> None:
    metrics = RunMetrics()
    metrics.add("w0", report(1, {"q": [1] * 10}))
    metrics.add("w1", report(1, {"q": [1] * 10}))
    metrics.add("w0", report(2, {"q": [1] * 10}))
    point = metrics.complete_point()
    assert point is not None and point.second == 1
    assert point.count == 20 and len(point.workers) == 2
    metrics.add("w1", report(2, {"q": [1] * 30}))
    point = metrics.complete_point()
    assert point is not None and point.second == 2 and point.count == 40
    proto = point.to_proto()
    assert proto.overall.qps == 40.0
    assert proto.workers_active == 2
    assert proto.by_kind["q"].count == 40


def test_last_partial_interval_uses_its_real_length() -> None:
    metrics = RunMetrics()
    metrics.add("w0", report(1, {"q": [1] * 100}))
    metrics.add("w0", report(2, {"q": [1] * 25}, last=True, duration_s=0.25))
    points = metrics.series_protos()
    assert [round(p.overall.qps) for p in points] == [100, 100]


@settings(max_examples=80, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.integers(min_value=0, max_value=hdr.HIGHEST_US), min_size=1, max_size=50),
        min_size=1,
        max_size=6,
    )
)
def test_add_encoded_is_exactly_decode_and_add(batches: list[list[int]]) -> None:
    fast_a, fast_b, slow = hdr.new_histogram(), hdr.new_histogram(), hdr.new_histogram()
    for values in batches:
        h = hdr.new_histogram()
        for v in values:
            h.record_value(v)
        data = hdr.encode(h)
        hdr.add_encoded([fast_a, fast_b], data)
        slow.add(hdr.decode(data))
    for fast in (fast_a, fast_b):
        assert fast.get_total_count() == slow.get_total_count()
        assert list(fast.counts) == list(slow.counts)
        assert fast.get_max_value() == slow.get_max_value()
        assert fast.get_min_value() == slow.get_min_value()
        assert hdr.percentiles(fast) == hdr.percentiles(slow)


def test_no_second_is_complete_before_every_started_worker_delivered_it() -> None:
    metrics = RunMetrics()
    metrics.expect(["w0", "w1"])
    metrics.add("w0", report(1, {"q": [1] * 10}))
    metrics.add("w0", report(2, {"q": [1] * 10}))
    assert metrics.complete_seconds() == 0 and metrics.sealed_upto == 0
    assert metrics.cells == {}  # the live totals wait for complete seconds
    metrics.add("w1", report(1, {"q": [1] * 5}))
    assert metrics.complete_seconds() == 1
    assert metrics.cells[(MEAS, "q")].count == 15
    metrics.retire("w1")  # lost: the seconds it will never deliver complete without it
    assert metrics.complete_seconds() == 2
    assert metrics.cells[(MEAS, "q")].count == 25


def test_sealed_seconds_keep_bytes_not_histograms_and_read_the_same() -> None:
    metrics = RunMetrics()
    workers = [f"w{i}" for i in range(4)]
    metrics.expect(workers)
    rnd = random.Random(7)
    for k in range(1, 61):
        for w in workers:
            kinds = {
                name: [int(rnd.lognormvariate(math.log(m), 0.6)) for _ in range(50)]
                for name, m in (("a", 2_000), ("b", 30_000))
            }
            metrics.add(w, report(k, kinds, errors=k % 3))
    assert metrics.complete_seconds() == 60
    for point in metrics.series.values():
        assert point.sealed and point.cells == {}  # no 184 KiB count arrays left
        stored = sum(len(p.histogram) + len(p.service) for p in point.packed.values())
        assert stored + len(point.overall_encoded) < 4096
    # what a sealed second shows is what the open second would have shown
    point = metrics.series[30]
    sealed = point.to_proto()
    point.reopen()
    assert point.to_proto() == sealed
    assert sealed.overall.count == 4 * (100 + 2 * (30 % 3)) and sealed.by_kind[
        "a"
    ].count == 200 + 4 * (30 % 3)
    point.seal()
    # the totals are the sum of the seconds, and windows read sealed seconds exactly
    assert metrics.cells[(MEAS, "a")].count == sum(
        p.proto.by_kind["a"].count for p in metrics.series.values()
    )  # type: ignore[union-attr]
    window, seconds = metrics.window(0, 2**62)
    assert seconds == 60.0
    assert window.count == metrics.phase_totals[MEAS].count
    assert hdr.percentiles(window.histogram) == metrics.phase_totals[MEAS].percentiles()


def test_a_report_for_a_sealed_second_still_counts_exactly() -> None:
    metrics = RunMetrics()
    metrics.add("w0", report(1, {"q": [100] * 10}))
    metrics.add("w0", report(2, {"q": [100] * 10}, last=True))
    metrics.settle()
    assert metrics.series[1].sealed
    assert metrics.add("w1", report(1, {"q": [300] * 5}))  # e.g. resent after a re-attach
    assert metrics.cells[(MEAS, "q")].count == 25
    point = metrics.series[1].to_proto()
    assert point.overall.count == 15 and point.workers_active == 2
    assert point.overall.max_ms == 0.3


def test_a_worker_recruited_mid_run_lands_on_the_seconds_it_ran() -> None:
    metrics = RunMetrics()
    metrics.expect(["w0"])
    for k in range(1, 6):
        metrics.add("w0", report(k, {"q": [1] * 10}))
    for k in range(6, 9):  # the recruit's interval ids are run seconds, from its first
        metrics.add("w0", report(k, {"q": [1] * 10}))
        metrics.add("late", report(k, {"q": [1] * 10}, first=6))
    assert [len(metrics.series[s].workers) for s in range(1, 9)] == [1] * 5 + [2] * 3
    assert metrics.complete_seconds() == 8
    received = metrics._received["late"]
    assert received.low == 8 and not received.above  # nothing waits for its seconds 1-5
    assert metrics.intervals_from("late") == 3


def test_duplicates_are_recognised_out_of_order_in_bounded_memory() -> None:
    metrics = RunMetrics()
    accepted = [metrics.add("w0", report(k, {"q": [1]})) for k in (1, 3, 2, 3, 1, 5, 4, 2)]
    assert accepted == [True, True, True, False, False, True, True, False]
    assert metrics.intervals_from("w0") == 5
    received = metrics._received["w0"]
    assert received.low == 5 and not received.above  # nothing kept below the watermark
