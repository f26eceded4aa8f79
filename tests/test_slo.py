"""SLO verdicts on the measurement phase, checked against hand-computed expectations."""

from __future__ import annotations

import math

import pytest

from controller import slo as slo_mod
from snowload.v1 import common_pb2
from snowload.workload import Slo


def stats(
    count: int, errors: int = 0, qps: float = 0.0, p50: float = 0.0, p95: float = 0.0,
    p99: float = 0.0,
) -> common_pb2.LatencyStats:  # fmt: skip
    return common_pb2.LatencyStats(
        count=count, errors=errors, qps=qps, p50_ms=p50, p95_ms=p95, p99_ms=p99
    )


def table(verdicts: list[common_pb2.SloVerdict]) -> list[tuple[str, str, float, float, bool]]:
    return [(v.kind, v.metric, v.limit, v.actual, v.passed) for v in verdicts]


MEASURED = stats(200, errors=10, qps=50.0, p50=2.0, p95=8.0, p99=20.0)


@pytest.mark.parametrize(
    ("slo", "expected"),
    [
        # every limit, all met exactly at the boundary (<= and >= include equality)
        (
            Slo(p50_ms=2.0, p95_ms=8.0, p99_ms=20.0, error_rate=0.05, min_qps=50.0),
            [
                ("", "p50_ms", 2.0, 2.0, True),
                ("", "p95_ms", 8.0, 8.0, True),
                ("", "p99_ms", 20.0, 20.0, True),
                ("", "error_rate", 0.05, 10 / 200, True),
                ("", "min_qps", 50.0, 50.0, True),
            ],
        ),
        # every limit missed by a little
        (
            Slo(p50_ms=1.9, p95_ms=7.9, p99_ms=19.9, error_rate=0.049, min_qps=50.1),
            [
                ("", "p50_ms", 1.9, 2.0, False),
                ("", "p95_ms", 7.9, 8.0, False),
                ("", "p99_ms", 19.9, 20.0, False),
                ("", "error_rate", 0.049, 0.05, False),
                ("", "min_qps", 50.1, 50.0, False),
            ],
        ),
        # only the limits that are set get a verdict, in the fixed order
        (Slo(p99_ms=25.0), [("", "p99_ms", 25.0, 20.0, True)]),
        (Slo(min_qps=10.0), [("", "min_qps", 10.0, 50.0, True)]),
        (Slo(error_rate=0.0), [("", "error_rate", 0.0, 0.05, False)]),
        (Slo(), []),
    ],
)
def test_overall_limits(slo: Slo, expected: list[tuple[str, str, float, float, bool]]) -> None:
    summary = common_pb2.PhaseSummary(overall=MEASURED)
    assert table(slo_mod.evaluate(slo, summary)) == expected


def test_per_kind_limits_follow_the_overall_ones_sorted_by_kind() -> None:
    summary = common_pb2.PhaseSummary(overall=MEASURED)
    summary.by_kind["write"].CopyFrom(stats(50, errors=0, qps=12.5, p95=30.0))
    summary.by_kind["read"].CopyFrom(stats(150, errors=10, qps=37.5, p95=4.0))
    slo = Slo(
        p95_ms=10.0,
        by_kind={
            "write": Slo(p95_ms=25.0, error_rate=0.0),
            "read": Slo(p95_ms=5.0, min_qps=40.0),
            "absent": Slo(p99_ms=1.0, error_rate=0.5, min_qps=1.0),
        },
    )
    assert table(slo_mod.evaluate(slo, summary)) == [
        ("", "p95_ms", 10.0, 8.0, True),
        ("absent", "p99_ms", 1.0, math.inf, False),
        ("absent", "error_rate", 0.5, 1.0, False),
        ("absent", "min_qps", 1.0, 0.0, False),
        ("read", "p95_ms", 5.0, 4.0, True),
        ("read", "min_qps", 40.0, 37.5, False),
        ("write", "p95_ms", 25.0, 30.0, False),
        ("write", "error_rate", 0.0, 0.0, True),
    ]


@pytest.mark.parametrize("measurement", [None, common_pb2.PhaseSummary()])
def test_no_queries_measured_fails_every_limit(
    measurement: common_pb2.PhaseSummary | None,
) -> None:
    """No measurement, or one with zero queries: latencies count as infinite, the error
    rate as 1, the rate as 0, and every limit fails however loose (even min_qps 0 and an
    error rate of 1: nothing measured meets no limit)."""
    slo = Slo(
        p50_ms=1e9,
        p95_ms=1e9,
        p99_ms=1e9,
        error_rate=0.99,
        min_qps=0.0,
        by_kind={"q": Slo(p50_ms=1e9, error_rate=1.0)},
    )
    assert table(slo_mod.evaluate(slo, measurement)) == [
        ("", "p50_ms", 1e9, math.inf, False),
        ("", "p95_ms", 1e9, math.inf, False),
        ("", "p99_ms", 1e9, math.inf, False),
        ("", "error_rate", 0.99, 1.0, False),
        ("", "min_qps", 0.0, 0.0, False),
        ("q", "p50_ms", 1e9, math.inf, False),
        ("q", "error_rate", 1.0, 1.0, False),
    ]


def test_zero_count_with_stale_numbers_is_treated_as_no_queries() -> None:
    """A LatencyStats with count 0 but other fields set reads as 'nothing measured'."""
    empty = stats(0, errors=0, p50=0.1, p95=0.1, p99=0.1)
    slo = Slo(p50_ms=1.0, p95_ms=1.0, p99_ms=1.0, error_rate=0.5)
    assert table(slo_mod.evaluate(slo, common_pb2.PhaseSummary(overall=empty))) == [
        ("", "p50_ms", 1.0, math.inf, False),
        ("", "p95_ms", 1.0, math.inf, False),
        ("", "p99_ms", 1.0, math.inf, False),
        ("", "error_rate", 0.5, 1.0, False),
    ]


@pytest.mark.parametrize(
    ("verdict", "text"),
    [
        (
            common_pb2.SloVerdict(kind="", metric="p95_ms", limit=5, actual=4.25, passed=True),
            "pass overall p95_ms 4.25 <= 5",
        ),
        (
            common_pb2.SloVerdict(
                kind="read", metric="min_qps", limit=1000, actual=123.456789, passed=False
            ),
            "FAIL read min_qps 123.5 >= 1000",
        ),
        (
            common_pb2.SloVerdict(
                kind="w", metric="error_rate", limit=0.01, actual=0.5, passed=False
            ),
            "FAIL w error_rate 0.5 <= 0.01",
        ),
    ],
)
def test_describe(verdict: common_pb2.SloVerdict, text: str) -> None:
    assert slo_mod.describe(verdict) == text
