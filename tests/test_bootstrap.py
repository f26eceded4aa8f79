"""The bootstrap of ``runs compare``: merged percentiles against HdrHistogram's own merge
and the raw samples, resampling in circular blocks, and the calibration of its verdicts
on simulated runs whose truth is known."""

from __future__ import annotations

import math
import random

import pytest

from snowload import bootstrap, hdr
from snowload.bootstrap import Metric, Sample, Second, Verdict


def simulated_run(
    rng: random.Random,
    seconds: int,
    median_us: float,
    per_second: int = 200,
    error_p: float = 0,
    sigma: float = 0.35,
) -> tuple[list[Second], list[list[int]]]:
    """Seconds of lognormal latencies, and the raw samples of each."""
    out, raw = [], []
    for _ in range(seconds):
        values = [max(1, int(median_us * math.exp(rng.gauss(0, sigma)))) for _ in range(per_second)]
        errors = sum(1 for _ in range(per_second) if rng.random() < error_p)
        hist = hdr.new_histogram()
        for v in values:
            hist.record_value(v)
        out.append(Second(1.0, per_second + errors, errors, tuple(hdr.recorded(hdr.encode(hist)))))
        raw.append(values)
    return out, raw


def test_weighted_merge_reads_what_hdrhistogram_and_raw_samples_say() -> None:
    rng = random.Random(7)
    seconds, raw = simulated_run(rng, 12, 5000, error_p=0.02)
    sample = Sample(seconds)
    encoded = []
    for values in raw:
        hist = hdr.new_histogram()
        for v in values:
            hist.record_value(v)
        encoded.append(hdr.encode(hist))
    for trial in range(8):
        weights = sample.resample(rng) if trial else [1] * sample.n
        got = sample.statistic(weights)
        oracle = hdr.new_histogram()
        merged_raw: list[int] = []
        for w, data, values in zip(weights, encoded, raw, strict=True):
            for _ in range(w):
                oracle.add(hdr.decode(data))
                merged_raw += values
        merged_raw.sort()
        for metric, p in bootstrap.PERCENTILE.items():
            assert got[metric] == oracle.get_value_at_percentile(p) / 1000.0
            # and the raw samples' nearest-rank percentile, within HDR's 3 digits
            exact = merged_raw[max(1, math.ceil(p / 100 * len(merged_raw))) - 1] / 1000.0
            assert got[metric] == pytest.approx(exact, rel=2e-3)
        count = sum(w * s.count for w, s in zip(weights, seconds, strict=True))
        errors = sum(w * s.errors for w, s in zip(weights, seconds, strict=True))
        assert got[Metric.QPS] == pytest.approx(count / sum(weights))
        assert got[Metric.ERROR_RATE] == pytest.approx(errors / count)


def test_resamples_draw_n_seconds_in_circular_blocks() -> None:
    assert [bootstrap.block_length(n) for n in (1, 7, 8, 26, 27, 64, 1000)] == [
        1,
        1,
        2,
        2,
        3,
        4,
        10,
    ]
    rng = random.Random(1)
    seconds, _ = simulated_run(rng, 30, 1000, per_second=5)
    sample = Sample(seconds)
    assert sample.block == 3
    for _ in range(50):
        weights = sample.resample(rng)
        assert sum(weights) == 30
    # long runs are grouped into contiguous units, totals unchanged
    long_run, _ = simulated_run(rng, 50, 1000, per_second=5)
    grouped = Sample(long_run, max_units=10)
    assert grouped.n == 10 and grouped.block == 2
    whole = Sample(long_run).point()
    assert grouped.point() == whole


def test_verdicts_are_calibrated_on_simulated_runs() -> None:
    """Same distribution: some interval of the five excludes zero in about 5 % of pairs
    at most (they hold together at 95 %); 4 ms against 6 ms: slower every time."""
    rng = random.Random(2026)
    false_alarms = 0
    trials = 60
    for trial in range(trials):
        a, _ = simulated_run(rng, 10, 5000, per_second=60, error_p=0.01)
        b, _ = simulated_run(rng, 10, 5000, per_second=60, error_p=0.01)
        found = bootstrap.compare(Sample(a), Sample(b), resamples=200, seed=trial)
        false_alarms += any(d.verdict is not Verdict.NO_DIFFERENCE for d in found.values())
    # binomial(60, 0.05): more than 7 has probability < 2 %
    assert false_alarms <= 7
    for trial in range(5):
        a, _ = simulated_run(rng, 6, 4000, per_second=60, sigma=0.1)
        b, _ = simulated_run(rng, 6, 6000, per_second=60, sigma=0.1)
        found = bootstrap.compare(Sample(a), Sample(b), resamples=200, seed=trial)
        for metric in (Metric.P50, Metric.P95, Metric.P99):
            assert found[metric].verdict is Verdict.SLOWER
            assert found[metric].low is not None and found[metric].low > 0
        back = bootstrap.compare(Sample(b), Sample(a), resamples=200, seed=trial)
        assert back[Metric.P50].verdict is Verdict.FASTER


def test_t_quantiles_match_the_tables() -> None:
    # Student's t from printed tables
    assert bootstrap.t_quantile(0.975, 9) == pytest.approx(2.262, abs=2e-3)
    assert bootstrap.t_quantile(0.995, 9) == pytest.approx(3.250, abs=2e-3)
    assert bootstrap.t_quantile(0.995, 4) == pytest.approx(4.604, rel=0.01)
    assert bootstrap.t_quantile(0.975, 60) == pytest.approx(2.000, abs=2e-3)


def test_one_word_per_kind() -> None:
    def diffs(**verdicts: Verdict) -> dict[Metric, bootstrap.Difference]:
        return {
            m: bootstrap.Difference(
                m, 1, 1, 0, 0, 0, 0, 0, 0, verdicts.get(m.name, Verdict.NO_DIFFERENCE)
            )
            for m in Metric
        }

    assert bootstrap.overall_verdict(diffs()) is Verdict.NO_DIFFERENCE
    assert bootstrap.overall_verdict(diffs(P50=Verdict.SLOWER, QPS=Verdict.SLOWER)) is (
        Verdict.SLOWER
    )
    assert bootstrap.overall_verdict(diffs(P99=Verdict.FASTER)) is Verdict.FASTER
    assert bootstrap.overall_verdict(diffs(P50=Verdict.SLOWER, P99=Verdict.FASTER)) is (
        Verdict.MIXED
    )
    assert bootstrap.overall_verdict(diffs(ERROR_RATE=Verdict.MORE_ERRORS)) is (Verdict.MORE_ERRORS)
