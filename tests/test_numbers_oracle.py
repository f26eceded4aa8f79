"""Every reported statistic against calculators that share no code with snowload's own:
HdrHistogram's methods (``hdrh``) and the raw samples, sorted.

The raw-sample oracle is an exact order statistic with HdrHistogram's rank rule (rank =
round-half-up of p * n / 100, at least 1; the 3-significant-digit bucket of that sample is
the tolerance): snowload reports the highest value equivalent to that sample, as
HdrHistogram's get_value_at_percentile does.

SLO semantics pinned here: every limit is inclusive. A latency limit passes when the value
is <= the limit, ``error_rate`` when errors / count <= the limit (so ``error_rate = 0``
allows no error at all), ``min_qps`` when the QPS is >= the limit. A scope (the run, or a
kind) with no query measured fails every limit it has, whatever the limit.
"""

from __future__ import annotations

import math
import random

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from controller import slo
from controller.metrics import RunMetrics
from snowload import hdr
from snowload.v1 import common_pb2
from snowload.workload import Slo, parse_toml
from tests.test_metrics import MEAS, report

REPORTED = (50.0, 90.0, 95.0, 99.0, 99.9, 99.99)
"""Every percentile snowload reports anywhere (summary: 50/95/99; spectrum: all)."""


def oracle_histogram(values: list[int]) -> HdrHistogram:
    """Built with hdrh's constructor and record_value only (same layout as snowload's)."""
    h = HdrHistogram(1, 3_600_000_000, 3)
    for v in values:
        h.record_value(v)
    return h


def raw_at(values: list[int], pct: float) -> int:
    ordered = sorted(values)
    rank = max(1, int(pct * len(ordered) / 100 + 0.5))
    return ordered[rank - 1]


def assert_same_bucket(reported_us: float, raw_us: int, what: object) -> None:
    """``reported_us`` is the highest value HDR considers equivalent to the raw sample."""
    assert round(reported_us) == _LAYOUT.get_highest_equivalent_value(raw_us), (
        what,
        reported_us,
        raw_us,
    )


_LAYOUT = HdrHistogram(1, 3_600_000_000, 3)


spread = st.lists(st.integers(min_value=1, max_value=20_000_000), min_size=1, max_size=1000)


@settings(max_examples=40, deadline=None)
@given(values=spread)
def test_percentiles_mean_and_max_equal_hdrhistograms_and_the_raw_samples(
    values: list[int],
) -> None:
    """Fails if a reported percentile reads the wrong rank (e.g. floor or ceil instead of
    HdrHistogram's round-half-up), the wrong percentile, or the mean/max drift."""
    ours = oracle_histogram(values)
    p = hdr.percentiles(ours)
    at = hdr.value_at_percentiles(ours, REPORTED)
    spectrum = hdr.spectrum(hdr.encode(ours))
    oracle = oracle_histogram(values)
    assert p.count == len(values) == spectrum["count"]
    for pct, ms in ((50.0, p.p50_ms), (95.0, p.p95_ms), (99.0, p.p99_ms)):
        assert round(ms * 1000) == oracle.get_value_at_percentile(pct), pct
        assert_same_bucket(ms * 1000, raw_at(values, pct), pct)
    for pct in REPORTED:
        assert at[pct] == oracle.get_value_at_percentile(pct), pct
        assert round(spectrum[f"p{pct:g}"] * 1000) == oracle.get_value_at_percentile(pct), pct
        assert_same_bucket(spectrum[f"p{pct:g}"] * 1000, raw_at(values, pct), pct)
    assert round(p.max_ms * 1000) == oracle.get_max_value() == round(spectrum["max"] * 1000)
    assert_same_bucket(p.max_ms * 1000, max(values), "max")
    assert math.isclose(p.mean_ms * 1000, oracle.get_mean_value(), rel_tol=1e-12)
    raw_mean = sum(values) / len(values)
    assert math.isclose(p.mean_ms * 1000, raw_mean, rel_tol=1e-3, abs_tol=1), "mean"


@pytest.mark.parametrize("n", [7, 10, 19, 333, 1001, 10_001, 20_011])
def test_each_reported_percentile_reads_its_own_rank(n: int) -> None:
    """Distinct, widely spaced samples, so a neighbouring rank or a neighbouring percentile
    (p99 for p99.9, p99.9 for p99.99, p95 for p90) gives another value. Fails if the
    spectrum lists the wrong percentile under a name, or the rank rule changes."""
    values = [10 * (i + 1) * (i + 1) + 1000 for i in range(n)]  # gaps grow past 0.1 %
    random.Random(n).shuffle(values)
    h = oracle_histogram(values)
    spectrum = hdr.spectrum(hdr.encode(h))
    p = hdr.percentiles(h)
    for pct in REPORTED:
        assert_same_bucket(spectrum[f"p{pct:g}"] * 1000, raw_at(values, pct), pct)
    assert_same_bucket(p.p50_ms * 1000, raw_at(values, 50), 50)
    assert_same_bucket(p.p95_ms * 1000, raw_at(values, 95), 95)
    assert_same_bucket(p.p99_ms * 1000, raw_at(values, 99), 99)
    # (the rank rule matters at these sizes: floor and ceil pick another sample somewhere)
    floor_or_ceil = {
        pct
        for pct in REPORTED
        if sorted(values)[max(1, math.ceil(pct * n / 100)) - 1] != raw_at(values, pct)
        or sorted(values)[max(1, int(pct * n / 100)) - 1] != raw_at(values, pct)
    }
    if n in (7, 19, 333, 1001):
        assert floor_or_ceil, "pick sizes where the rank rule shows"


def test_overall_is_the_union_not_an_average_of_kinds() -> None:
    """Fast point lookups and a rare slow query: the run's p50/p95/p99/max/mean must be those
    of all samples together. Fails if the overall figures are derived from the per-kind ones
    (an average, a weighted average, or the largest)."""
    rnd = random.Random(3)
    fast = {
        w: [[int(rnd.lognormvariate(math.log(150), 0.3)) for _ in range(400)] for _ in range(5)]
        for w in ("w0", "w1")
    }
    slow = {
        w: [[int(rnd.uniform(150_000, 400_000)) for _ in range(12)] for _ in range(5)]
        for w in ("w0", "w1")
    }
    metrics = RunMetrics()
    metrics.expect(["w0", "w1"])
    for w in ("w0", "w1"):
        for k in range(5):
            metrics.add(w, report(k + 1, {"lookup": fast[w][k], "slow": slow[w][k]}, last=k == 4))
    metrics.settle()
    summary = metrics.phase_summary(MEAS, 5.0)
    assert summary is not None
    every_fast = [v for w in fast.values() for batch in w for v in batch]
    every_slow = [v for w in slow.values() for batch in w for v in batch]
    for name, stats, values in (
        ("overall", summary.overall, every_fast + every_slow),
        ("lookup", summary.by_kind["lookup"], every_fast),
        ("slow", summary.by_kind["slow"], every_slow),
    ):
        oracle = oracle_histogram(values)
        assert stats.count == len(values), name
        assert stats.qps == pytest.approx(len(values) / 5.0), name
        for pct, ms in ((50, stats.p50_ms), (95, stats.p95_ms), (99, stats.p99_ms)):
            assert round(ms * 1000) == oracle.get_value_at_percentile(pct), (name, pct)
            assert_same_bucket(ms * 1000, raw_at(values, pct), (name, pct))
        assert round(stats.max_ms * 1000) == oracle.get_max_value(), name
        assert stats.mean_ms * 1000 == pytest.approx(oracle.get_mean_value(), rel=1e-12), name
        assert stats.mean_ms * 1000 == pytest.approx(sum(values) / len(values), rel=1e-3), name
    # the mix is such that an average of the kinds' p99 is far from the union's
    kinds = summary.by_kind
    assert abs((kinds["lookup"].p99_ms + kinds["slow"].p99_ms) / 2 - summary.overall.p99_ms) > 10
    # the stored overall histogram is the bucket-wise sum of the kinds' (hdrh's own add)
    added = oracle_histogram([])
    for kind in ("lookup", "slow"):
        added.add(hdr.decode(hdr.encode(metrics.cells[(MEAS, kind)].histogram)))
    stored = hdr.decode(hdr.encode(metrics.phase_histogram(MEAS)))
    assert list(stored.counts) == list(added.counts)


def test_rolling_qps_divides_a_partial_last_interval_by_its_true_length() -> None:
    """Fails if the rolling window counts a partial interval as a whole second."""
    metrics = RunMetrics()
    for k in range(1, 6):
        metrics.add("w0", report(k, {"q": [100] * 100}))
    metrics.add("w0", report(6, {"q": [100] * 30}, last=True, duration_s=0.3))
    assert metrics.rolling_qps(3) == pytest.approx((100 + 100 + 30) / 2.3)
    assert metrics.rolling_qps(10) == pytest.approx(530 / 5.3)
    last = metrics.series_protos()[-1]
    assert last.overall.qps == pytest.approx(100.0)
    assert last.duration.ToNanoseconds() == 300_000_000


def test_per_second_qps_uses_the_longest_report_of_the_second() -> None:
    """Two workers in a partial last second (0.4 s and 0.25 s): the second lasted 0.4 s.
    Fails if a second's QPS divides by 1 s, or by the shorter report."""
    metrics = RunMetrics()
    metrics.add("w0", report(1, {"q": [10] * 40}, last=True, duration_s=0.4))
    metrics.add("w1", report(1, {"q": [10] * 25}, last=True, duration_s=0.25))
    (point,) = metrics.series_protos()
    assert point.overall.qps == pytest.approx(65 / 0.4)


# -- SLO verdicts at their boundaries --------------------------------------------------


def stats(
    count: int = 1000,
    errors: int = 0,
    qps: float = 100.0,
    p50: float = 1.0,
    p95: float = 5.0,
    p99: float = 9.0,
) -> common_pb2.LatencyStats:
    return common_pb2.LatencyStats(
        count=count, errors=errors, qps=qps, p50_ms=p50, p95_ms=p95, p99_ms=p99
    )


def verdict(
    limits: Slo, overall: common_pb2.LatencyStats, **by_kind: common_pb2.LatencyStats
) -> dict[tuple[str, str], bool]:
    summary = common_pb2.PhaseSummary(phase=MEAS, overall=overall)
    for kind, s in by_kind.items():
        summary.by_kind[kind].CopyFrom(s)
    return {(v.kind, v.metric): v.passed for v in slo.evaluate(limits, summary)}


LATENCY_FIELDS = {"p50_ms": "p50", "p95_ms": "p95", "p99_ms": "p99"}
UP = math.nextafter


@pytest.mark.parametrize("scope", ["", "lookup"])
@pytest.mark.parametrize("metric", sorted(LATENCY_FIELDS))
def test_latency_limits_are_inclusive(scope: str, metric: str) -> None:
    """Fails if a latency limit turns exclusive, or its comparison flips."""
    arg = LATENCY_FIELDS[metric]
    for limit, actual, passed in (
        (5.0, 5.0, True),
        (5.0, UP(5.0, 0), True),
        (5.0, UP(5.0, 10), False),
        (5.0, 5.001, False),
        (0.0, 0.0, True),
        (0.0, 0.001, False),
    ):
        s = stats(**{arg: actual})
        limits = Slo(**{metric: limit})
        if scope:
            limits = Slo(by_kind={scope: limits})
            got = verdict(limits, stats(), **{scope: s})
        else:
            got = verdict(limits, s)
        assert got == {(scope, metric): passed}, (limit, actual)


@pytest.mark.parametrize("scope", ["", "lookup"])
def test_error_rate_limit_is_inclusive_and_zero_allows_no_error(scope: str) -> None:
    """Fails if error_rate turns exclusive (a limit of 0 would then fail every run) or
    flips, or if errors stop counting against it."""
    for limit, count, errors, passed in (
        (0.0, 1000, 0, True),
        (0.0, 1000, 1, False),
        (0.0, 1_000_000_000, 1, False),
        (0.01, 1000, 10, True),
        (0.01, 1000, 11, False),
        (0.01, 1000, 9, True),
        (1.0, 1000, 1000, True),
    ):
        s = stats(count=count, errors=errors)
        limits = Slo(error_rate=limit)
        if scope:
            got = verdict(Slo(by_kind={scope: limits}), stats(), **{scope: s})
        else:
            got = verdict(limits, s)
        assert got == {(scope, "error_rate"): passed}, (limit, count, errors)


@pytest.mark.parametrize("scope", ["", "lookup"])
def test_min_qps_is_a_floor_and_inclusive(scope: str) -> None:
    """Fails if min_qps compares the wrong way (a ceiling) or turns exclusive."""
    for limit, qps, passed in (
        (100.0, 100.0, True),
        (100.0, UP(100.0, 0), False),
        (100.0, 99.99, False),
        (100.0, 100.01, True),
        (100.0, 1e9, True),
        (0.0, 0.0, True),
    ):
        s = stats(qps=qps)
        limits = Slo(min_qps=limit)
        if scope:
            got = verdict(Slo(by_kind={scope: limits}), stats(), **{scope: s})
        else:
            got = verdict(limits, s)
        assert got == {(scope, "min_qps"): passed}, (limit, qps)


def test_a_scope_with_nothing_measured_fails_every_limit_even_the_loosest() -> None:
    """Fails if a kind that never ran (or a run with no MEASUREMENT) passes its SLOs: with
    nothing measured, error_rate = 1 and min_qps = 0 must not pass either."""
    loosest = Slo(p99_ms=1e9, error_rate=1.0, min_qps=0.0)
    limits = Slo(
        p99_ms=1e9, error_rate=1.0, min_qps=0.0, by_kind={"never": loosest, "ran": loosest}
    )
    got = verdict(limits, stats(), ran=stats(), never=stats(count=0, qps=0.0))
    assert got == {
        ("", "p99_ms"): True,
        ("", "error_rate"): True,
        ("", "min_qps"): True,
        ("never", "p99_ms"): False,
        ("never", "error_rate"): False,
        ("never", "min_qps"): False,
        ("ran", "p99_ms"): True,
        ("ran", "error_rate"): True,
        ("ran", "min_qps"): True,
    }
    assert all(not v.passed for v in slo.evaluate(limits, None))


def test_the_parser_accepts_zero_limits_and_keeps_them_apart_from_unset() -> None:
    """Fails if a limit of 0 is read as 'no limit' (falsy) anywhere between file and check."""
    text = """
name = "x"
[target]
database = "x.db"
[[query]]
name = "q"
sql = "SELECT 1"
[slo]
error_rate = 0
p95_ms = 0
min_qps = 0
[slo.query.q]
error_rate = 0
"""
    w = parse_toml(text, "w.toml")
    assert w.slo.error_rate == 0.0 and w.slo.p95_ms == 0.0 and w.slo.min_qps == 0.0
    assert w.slo.p50_ms is None and w.slo.p99_ms is None
    got = verdict(w.slo, stats(errors=1, p95=0.0, qps=0.0), q=stats(errors=0))
    assert got == {
        ("", "p95_ms"): True,
        ("", "error_rate"): False,
        ("", "min_qps"): True,
        ("q", "error_rate"): True,
    }


@pytest.mark.parametrize("metric", [*sorted(LATENCY_FIELDS), "error_rate", "min_qps"])
def test_the_tuis_live_verdict_agrees_with_the_controllers_at_the_boundaries(
    metric: str,
) -> None:
    """The Live screen judges the SLOs itself while the run goes. Fails if its comparison
    drifts from the controller's (exclusive, or the wrong way), so a run shown passing
    live ends FAIL, or the other way."""
    from tui import format as fmt

    limit = 0.01 if metric == "error_rate" else 5.0
    for actual in (0.0, limit, UP(limit, 0), UP(limit, 10), limit * 2):
        if metric == "error_rate":
            s = stats(count=10**9, errors=round(actual * 10**9))
        elif metric == "min_qps":
            s = stats(qps=actual)
        else:
            s = stats(**{LATENCY_FIELDS[metric]: actual})
        controller_says = verdict(Slo(**{metric: limit}), s)[("", metric)]
        live = fmt.slo_actual(metric, s)
        assert live is not None
        assert fmt.slo_holds(metric, limit, live) is controller_says, (metric, actual)
