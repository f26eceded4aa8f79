"""A bootstrap over the seconds of two runs: the difference of QPS, p50 / p95 / p99 and
error rate between run A and run B with a 95 % confidence interval (docs/compare.md says
why this method and what it assumes).

Each run is a sequence of one-second units, each an HDR histogram with its query and error
counts. A bootstrap replicate draws as many seconds as the run has, with replacement, in
circular blocks (length the cube root of the number of seconds: 1 below 8 s, so short runs
resample single seconds), merges them and reads the statistic from the merged histogram
with HdrHistogram's percentile semantics. The merge is never built: every second's
cumulative counts are laid out on the run's grid of bucket values once, so the merged
count below a value is a sum of products, and a percentile a binary search over the grid.
Seeded: the same data and seed give the same intervals.
"""

from __future__ import annotations

import bisect
import math
import operator
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

RESAMPLES = 1000
CONFIDENCE = 0.95
MAX_UNITS = 120
"""Longer runs are cut into this many contiguous groups of seconds before resampling (the
memory of the layout is units x distinct bucket values)."""
MIN_SECONDS = 5
"""Full MEASUREMENT seconds a run needs before it can be compared."""


class Metric(StrEnum):
    QPS = "qps"
    P50 = "p50_ms"
    P95 = "p95_ms"
    P99 = "p99_ms"
    ERROR_RATE = "error_rate"


PERCENTILE = {Metric.P50: 50.0, Metric.P95: 95.0, Metric.P99: 99.0}
HIGHER_IS_WORSE = {Metric.P50, Metric.P95, Metric.P99, Metric.ERROR_RATE}


class Verdict(StrEnum):
    SLOWER = "slower"
    FASTER = "faster"
    MORE_ERRORS = "more errors"
    FEWER_ERRORS = "fewer errors"
    NO_DIFFERENCE = "no significant difference"
    MIXED = "mixed"
    UNKNOWN = "not enough data"


@dataclass(frozen=True)
class Second:
    """One second of one run (every kind, or one kind): what the bootstrap resamples."""

    duration_s: float
    count: int
    """Queries finished, errors included."""
    errors: int
    buckets: tuple[tuple[int, int], ...]
    """(value in µs, count) per non-empty histogram bucket, ascending (hdr.recorded)."""


@dataclass(frozen=True)
class Difference:
    """B against A for one metric: point values, B - A with its 95 % interval, the
    relative change B / A - 1 with that interval divided by A, and the verdict."""

    metric: Metric
    a: float | None
    b: float | None
    delta: float | None
    low: float | None
    high: float | None
    relative: float | None
    relative_low: float | None
    relative_high: float | None
    verdict: Verdict

    def as_dict(self) -> dict[str, object]:
        return {
            "a": self.a,
            "b": self.b,
            "delta": self.delta,
            "ci95": [self.low, self.high] if self.low is not None else None,
            "relative": self.relative,
            "relative_ci95": (
                [self.relative_low, self.relative_high] if self.relative_low is not None else None
            ),
            "verdict": self.verdict.value,
        }


def block_length(n: int) -> int:
    """Circular-block length for n units: the cube root of n, rounded down (n^(1/3) is the
    order that minimises the error of block-bootstrap variance estimates)."""
    length = 1
    while (length + 1) ** 3 <= n:
        length += 1
    return length


def _group(seconds: Sequence[Second], max_units: int) -> list[Second]:
    if len(seconds) <= max_units:
        return list(seconds)
    out = []
    size = -(-len(seconds) // max_units)
    for i in range(0, len(seconds), size):
        chunk = seconds[i : i + size]
        merged: dict[int, int] = {}
        for s in chunk:
            for value, count in s.buckets:
                merged[value] = merged.get(value, 0) + count
        out.append(
            Second(
                sum(s.duration_s for s in chunk),
                sum(s.count for s in chunk),
                sum(s.errors for s in chunk),
                tuple(sorted(merged.items())),
            )
        )
    return out


class Sample:
    """The seconds of one run laid out for fast weighted merges."""

    def __init__(self, seconds: Sequence[Second], max_units: int = MAX_UNITS) -> None:
        units = _group(seconds, max_units)
        self.n = len(units)
        self.block = block_length(self.n)
        self.durations = [u.duration_s for u in units]
        self.counts = [u.count for u in units]
        self.errors = [u.errors for u in units]
        self.grid = sorted({v for u in units for v, _ in u.buckets})
        rows = []
        for u in units:
            row = [0] * len(self.grid)
            for value, count in u.buckets:
                row[bisect.bisect_left(self.grid, value)] = count
            rows.append(_accumulate(row))
        self.totals = [row[-1] if row else 0 for row in rows]
        self.columns: list[tuple[int, ...]] = list(zip(*rows, strict=True)) if rows else []

    def statistic(self, weights: Sequence[int]) -> dict[Metric, float | None]:
        """Every metric of the merge of the units, each taken ``weights[i]`` times."""
        duration = sum(map(operator.mul, weights, self.durations))
        count = sum(map(operator.mul, weights, self.counts))
        errors = sum(map(operator.mul, weights, self.errors))
        out: dict[Metric, float | None] = {
            Metric.QPS: count / duration if duration > 0 else None,
            Metric.ERROR_RATE: errors / count if count else None,
        }
        total = sum(map(operator.mul, weights, self.totals))
        for metric, p in PERCENTILE.items():
            out[metric] = self._percentile(weights, total, p) if total else None
        return out

    def _percentile(self, weights: Sequence[int], total: int, p: float) -> float:
        rank = max(1, int(p * total / 100 + 0.5))  # as HdrHistogram's get_value_at_percentile
        lo, hi = 0, len(self.grid) - 1
        columns = self.columns
        while lo < hi:
            mid = (lo + hi) // 2
            if sum(map(operator.mul, weights, columns[mid])) >= rank:
                hi = mid
            else:
                lo = mid + 1
        return self.grid[lo] / 1000.0

    def point(self) -> dict[Metric, float | None]:
        return self.statistic([1] * self.n)

    def resample(self, rng: random.Random) -> list[int]:
        """Weights of one circular-block resample: n units in blocks of ``self.block``."""
        weights = [0] * self.n
        drawn = 0
        while drawn < self.n:
            start = rng.randrange(self.n)
            take = min(self.block, self.n - drawn)
            for k in range(take):
                weights[(start + k) % self.n] += 1
            drawn += take
        return weights


def _accumulate(row: list[int]) -> list[int]:
    total = 0
    for i, c in enumerate(row):
        total += c
        row[i] = total
    return row


def compare(
    a: Sample,
    b: Sample,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    threshold: float = 0.0,
) -> dict[Metric, Difference]:
    """B against A for every metric, with intervals that hold together at 95 % over the
    metrics (each at 1 - 5 %/5; see :func:`tail`). A verdict other than "no significant
    difference" needs an interval of B - A that excludes zero and (where A is not zero) a
    relative change of at least ``threshold``."""
    rng = random.Random(seed)
    deltas: dict[Metric, list[float]] = {m: [] for m in Metric}
    for _ in range(resamples):
        sa = a.statistic(a.resample(rng))
        sb = b.statistic(b.resample(rng))
        for m in Metric:
            va, vb = sa[m], sb[m]
            if va is None or vb is None:
                continue
            deltas[m].append(vb - va)
    pa, pb = a.point(), b.point()
    factor = half_width_factor(min(a.n // a.block, b.n // b.block), (1 - CONFIDENCE) / len(Metric))
    return {
        m: _difference(m, pa[m], pb[m], deltas[m], resamples, threshold, factor) for m in Metric
    }


def half_width_factor(n: int, alpha: float) -> float:
    """How many bootstrap standard errors each side of the estimate an interval of level
    1 - alpha spans, for n independent units: Student's t with n - 1 degrees of freedom,
    times sqrt(n / (n - 1)) because the bootstrap's standard error of a mean falls short
    of the usual estimate by sqrt((n - 1) / n)."""
    if n < 2:
        return math.inf
    return t_quantile(1 - alpha / 2, n - 1) * math.sqrt(n / (n - 1))


def t_quantile(p: float, nu: int) -> float:
    """Student's t quantile by the Cornish-Fisher expansion (Abramowitz & Stegun 26.7.5):
    within 1 % from nu = 4 up."""
    z = NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / nu + g2 / nu**2 + g3 / nu**3 + g4 / nu**4


def interval(estimate: float, replicates: list[float], factor: float) -> tuple[float, float]:
    """estimate -/+ factor x the replicates' standard deviation."""
    if len(replicates) < 2 or math.isinf(factor):
        return -math.inf, math.inf
    half = factor * statistics.stdev(replicates)
    return estimate - half, estimate + half


def _difference(
    metric: Metric,
    va: float | None,
    vb: float | None,
    deltas: list[float],
    resamples: int,
    threshold: float,
    factor: float,
) -> Difference:
    if va is None or vb is None or len(deltas) < resamples * 0.9:
        return Difference(metric, va, vb, None, None, None, None, None, None, Verdict.UNKNOWN)
    low, high = interval(vb - va, deltas, factor)
    # within what the metric can be (B >= 0; an error rate <= 1)
    low = max(low, -va)
    if metric is Metric.ERROR_RATE:
        high = min(high, 1.0 - va)
    # relative to A's figure, so that both intervals say the same thing
    rel = vb / va - 1.0 if va else None
    rel_low, rel_high = (low / va, high / va) if va else (None, None)
    verdict = Verdict.NO_DIFFERENCE
    excludes_zero = low > 0 or high < 0
    large_enough = rel is None or abs(rel) >= threshold
    if excludes_zero and large_enough:
        worse = (low > 0) == (metric in HIGHER_IS_WORSE)
        if metric is Metric.ERROR_RATE:
            verdict = Verdict.MORE_ERRORS if worse else Verdict.FEWER_ERRORS
        else:
            verdict = Verdict.SLOWER if worse else Verdict.FASTER
    return Difference(metric, va, vb, vb - va, low, high, rel, rel_low, rel_high, verdict)


def overall_verdict(metrics: dict[Metric, Difference]) -> Verdict:
    """One word for a kind: ``slower`` if QPS or a percentile is called slower and none
    faster (and the other way round), ``mixed`` if some are each; otherwise the error
    rate's verdict, or no significant difference."""
    speed = {
        d.verdict
        for m, d in metrics.items()
        if m is not Metric.ERROR_RATE and d.verdict in (Verdict.SLOWER, Verdict.FASTER)
    }
    if len(speed) == 2:
        return Verdict.MIXED
    if speed:
        return speed.pop()
    errors = metrics.get(Metric.ERROR_RATE)
    if errors is not None and errors.verdict in (Verdict.MORE_ERRORS, Verdict.FEWER_ERRORS):
        return errors.verdict
    return Verdict.NO_DIFFERENCE
