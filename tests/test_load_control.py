"""Stage ramps, connection splits and the find-max search, value by value: every expected
level, split and reason below is worked out by hand from the documented rules
(docs/ARCHITECTURE.md, controller/load_control.py's docstrings)."""

from __future__ import annotations

import pytest

from controller.load_control import FindMaxSearch, split_connections, split_rate, stage_target
from snowload.v1 import common_pb2
from snowload.workload import FindMax, Stage, StepBy


def test_a_ramp_starts_from_the_initial_level_and_moves_by_fractions() -> None:
    stages = [Stage(4.0, connections=8), Stage(2.0, rate=3.0), Stage(1.0)]
    assert stage_target(stages, 0.0, 4.0) == 4.0
    assert stage_target(stages, 1.0, 4.0) == 5.0  # 4 + (8 - 4) * 1/4
    assert stage_target(stages, 3.0, 4.0) == 7.0
    assert stage_target(stages, 4.0, 4.0) == 8.0  # the boundary belongs to the next stage
    assert stage_target(stages, 5.0, 4.0) == 5.5  # 8 + (3 - 8) * 1/2
    assert stage_target(stages, 6.5, 4.0) == 1.5  # 3 + (0 - 3) * 1/2: no target is 0
    assert stage_target(stages, 7.0, 4.0) == 0.0
    assert stage_target([], 3.0, 4.0) == 4.0
    assert stage_target([Stage(4.0, connections=10)], 1.0, 0.0) == 2.5


@pytest.mark.parametrize(
    ("level", "shares", "want"),
    [
        (7, [4, 4], [4, 3]),  # the odd one goes to the first worker
        (3, [0, 4], [0, 3]),  # a worker without a share gets nothing
        (-2, [4, 4], [0, 0]),
        (9, [1, 5, 5], [1, 4, 4]),  # the capped worker's part is spread over the others
        (10, [1, 5, 5], [1, 5, 4]),
        (5, [1, 1, 9], [1, 1, 3]),
        (30, [1, 5, 5], [1, 5, 5]),
        (4, [], []),
        (1, [4, 4], [1, 0]),
        (2, [0, 4, 4], [0, 1, 1]),  # a worker without a share takes no rank either
        (4, [4, 4, 4], [2, 1, 1]),
        (10, [1, 4, 5], [1, 4, 5]),  # capped in the second round too
    ],
)
def test_split_connections(level: int, shares: list[int], want: list[int]) -> None:
    assert split_connections(level, shares) == want


def test_split_rate_is_even() -> None:
    assert split_rate(10.0, 4) == [2.5, 2.5, 2.5, 2.5]
    assert split_rate(10.0, 0) == []


def stats(
    qps: float, p95: float = 5.0, errors: int = 0, count: int = 1000
) -> common_pb2.LatencyStats:
    return common_pb2.LatencyStats(qps=qps, p95_ms=p95, count=count, errors=errors)


LOOSE = {"p95_drift": 100.0, "max_error_rate": 0.01, "min_gain": 0.05}


def test_connections_step_up_then_bisect_on_whole_connections() -> None:
    search = FindMaxSearch(FindMax(start=10, step=10, max=100, **LOOSE))  # type: ignore[arg-type]
    qps = {10: 1000, 20: 2000, 30: 3000, 40: 3000, 35: 3500, 37: 3600, 36: 3700}
    levels = []
    while (level := search.next_level()) is not None:
        levels.append(level)
        search.record(level, stats(qps[int(level)]))
    # 40 gains nothing over 30: bisect 30..40 -> 35 (stable), 35..40 -> 37 (37.5 floored;
    # +2.9 % over 35, degraded), 35..37 -> 36 (stable), 36..37 is one connection: done
    assert levels == [10, 20, 30, 40, 35, 37, 36]
    assert search.concluded
    assert (
        search.reason == "throughput stopped growing at 37 connections (3,600 vs 3,500 queries/s)"
    )
    assert search.best is not None and search.best.level == 36
    assert search.failed_level == 37
    assert search.next_level() is None


def test_a_rate_search_bisects_in_fractions_down_to_an_eighth_of_a_step() -> None:
    search = FindMaxSearch(FindMax(start=100, step=100, max=1000, by=StepBy.RATE, **LOOSE))  # type: ignore[arg-type]
    errors = {100: 0, 200: 0, 300: 50, 250: 0, 275: 20, 262.5: 0}
    levels = []
    while (level := search.next_level()) is not None:
        levels.append(level)
        search.record(level, stats(level * 10, errors=errors[level]))
    # granularity 100 / 8 = 12.5: 262.5..275 is no wider, so the search ends there
    assert levels == [100, 200, 300, 250, 275, 262.5]
    assert search.reason == "error rate 2.0% at 275 queries/s"
    assert search.unit == "queries/s"


def test_a_small_rate_step_bisects_to_one_query_per_second() -> None:
    search = FindMaxSearch(FindMax(start=4, step=4, max=100, by=StepBy.RATE, **LOOSE))  # type: ignore[arg-type]
    errors = {4: 0, 8: 50, 6: 0, 7: 0}
    levels = []
    while (level := search.next_level()) is not None:
        levels.append(level)
        search.record(level, stats(level * 100, errors=errors[level]))
    assert levels == [4, 8, 6, 7]  # 7..8 is one query/s: done


def test_the_maximum_itself_is_tried_then_the_search_ends() -> None:
    search = FindMaxSearch(FindMax(start=10, step=10, max=30, **LOOSE))  # type: ignore[arg-type]
    levels = []
    while (level := search.next_level()) is not None:
        levels.append(level)
        search.record(level, stats(level * 100))
    assert levels == [10, 20, 30]
    assert search.reason == "reached the maximum (30 connections) without degrading"


def test_a_first_step_that_fails_bisects_toward_zero() -> None:
    search = FindMaxSearch(FindMax(start=10, step=10, max=100, **LOOSE))  # type: ignore[arg-type]
    assert search.next_level() == 10
    first = search.record(10, stats(0, count=0))
    assert (first.error_rate, first.stable) == (1.0, False)
    assert first.reason == "error rate 100.0% at 10 connections"
    assert search.baseline_p95 is None  # nothing measured is no baseline
    assert search.next_level() == 5
    search.record(5, stats(500, p95=8.0))
    assert search.baseline_p95 == 8.0
    assert search.best is not None and search.best.level == 5
    assert search.next_level() == 7


def test_limits_are_inclusive() -> None:
    c = FindMax(start=1, step=1, max=9, p95_drift=0.5, max_error_rate=0.01, min_gain=0.5)
    search = FindMaxSearch(c)
    assert search.record(1, stats(1000, p95=10.0, errors=10)).stable  # 1 % errors
    assert search.record(2, stats(1500, p95=15.0)).stable  # +50 % qps, p95 +50 %
    worse = search.record(3, stats(2249, p95=15.0))
    assert worse.reason == "throughput stopped growing at 3 connections (2,249 vs 1,500 queries/s)"
    drifted = search.record(4, stats(4000, p95=15.1))
    assert drifted.reason == "p95 drifted 51% above baseline at 4 connections"
    erring = search.record(5, stats(9000, p95=30.0, errors=11))
    assert erring.reason == "error rate 1.1% at 5 connections"  # errors win over drift


def test_the_gain_is_measured_only_above_the_best_level_and_a_non_zero_rate() -> None:
    search = FindMaxSearch(FindMax(start=1, step=1, max=9, **LOOSE))  # type: ignore[arg-type]
    search.record(4, stats(1000))
    below = search.record(2, stats(10))  # a lower level may have a lower rate
    assert below.stable and search.best is not None and search.best.level == 4
    idle = FindMaxSearch(FindMax(start=1, step=1, max=9, **LOOSE))  # type: ignore[arg-type]
    idle.record(1, stats(0.0))
    assert idle.record(2, stats(0.0)).stable  # no rate to gain over


def test_no_baseline_latency_means_no_drift_check() -> None:
    search = FindMaxSearch(FindMax(start=1, step=1, max=9, p95_drift=0.1))
    search.record(1, stats(100, p95=0.0))
    assert search.record(2, stats(200, p95=50.0)).stable


def test_the_lowest_failure_and_the_highest_success_are_kept() -> None:
    search = FindMaxSearch(FindMax(start=1, step=1, max=9, **LOOSE))  # type: ignore[arg-type]
    search.record(6, stats(100, errors=500))
    search.record(8, stats(100, errors=500))
    assert search.failed_level == 6 and search.failed_reason == "error rate 50.0% at 6 connections"
    search.record(4, stats(100, errors=500))
    assert search.failed_level == 4 and search.failed_reason == "error rate 50.0% at 4 connections"
    search.record(3, stats(300))
    search.record(2, stats(200))
    assert search.best is not None and search.best.level == 3


def test_the_result_proto_holds_every_step_and_the_best() -> None:
    search = FindMaxSearch(FindMax(start=1, step=1, max=2, **LOOSE))  # type: ignore[arg-type]
    search.record(1, stats(100))
    search.record(2, stats(100, errors=100))
    search.next_level()  # concludes: 1..2 is one connection
    out = search.to_proto()
    assert out.by == "connections" and out.concluded
    assert out.reason == "error rate 10.0% at 2 connections"
    assert [(s.level, s.verdict, s.reason, s.error_rate) for s in out.steps] == [
        (1.0, "stable", "", 0.0),
        (2.0, "degraded", "error rate 10.0% at 2 connections", 0.1),
    ]
    assert out.steps[1].stats == stats(100, errors=100)
    assert out.best_level == 1.0 and out.best == stats(100)
    assert not FindMaxSearch(FindMax()).to_proto().HasField("best")


def test_whole_connections_bisect_below_an_eighth_of_a_large_step() -> None:
    search = FindMaxSearch(FindMax(start=40, step=40, max=400, **LOOSE))  # type: ignore[arg-type]
    failing = {80, 70, 67}
    levels = []
    while (level := search.next_level()) is not None:
        levels.append(level)
        search.record(level, stats(level * 100, errors=500 if level in failing else 0))
    assert levels == [40, 80, 60, 70, 65, 67, 66]


def test_without_a_stable_step_the_bisection_starts_at_zero() -> None:
    search = FindMaxSearch(FindMax(start=5, step=5, max=50, **LOOSE))  # type: ignore[arg-type]
    search.record(5, stats(100, errors=500))
    assert search.next_level() == 2  # (0 + 5) / 2, whole


def test_a_repeated_level_neither_competes_with_nor_replaces_its_first_result() -> None:
    search = FindMaxSearch(FindMax(start=1, step=1, max=9, **LOOSE))  # type: ignore[arg-type]
    first = search.record(4, stats(1000))
    assert first.reason == ""
    again = search.record(4, stats(1000))
    assert again.stable  # not "no gain over itself"
    search.record(4, stats(900))
    assert search.best is first
    search.record(6, stats(100, errors=500))
    search.record(6, stats(100, errors=600))
    assert search.failed_reason == "error rate 50.0% at 6 connections"
