"""A run's warehouse samples are kept in bounded memory, and the credits and snapshot
computed from the bounded form are those every sample gives.

The oracle sums size x started clusters x time over the raw list of samples, written out
here from Snowflake's published credit rates (not with snowload.credits).
"""

from __future__ import annotations

import random

import pytest

from controller.metrics import RunMetrics
from controller.warehouse_ledger import WarehouseLedger
from snowload.v1 import common_pb2, control_pb2

T0 = 1_700_000_000 * 10**9
S = 10**9
PER_HOUR = {"X-Small": 1, "Small": 2, "Medium": 4, "Large": 8}


def sample(at_ns: int, size: str, state: str, clusters: int) -> common_pb2.WarehouseSample:
    w = common_pb2.WarehouseSample(
        name="WH", size=size, state=state, started_clusters=clusters, queued=clusters
    )
    w.sample_time.FromNanoseconds(at_ns)
    return w


def oracle_credits(samples: list[common_pb2.WarehouseSample], until_ns: int) -> float:
    """Every sample sorted by time (ties in arrival order), each one's state until the
    next sample, the last one's until ``until_ns``."""
    ordered = sorted(samples, key=lambda s: s.sample_time.ToNanoseconds())
    total = 0.0
    for i, s in enumerate(ordered):
        start = s.sample_time.ToNanoseconds()
        end = ordered[i + 1].sample_time.ToNanoseconds() if i + 1 < len(ordered) else until_ns
        running = s.started_clusters if s.state in ("STARTED", "RESIZING") else 0
        total += PER_HOUR[s.size] * running * max(0, end - start) / 1e9 / 3600.0
    return total


def a_long_run(n: int, seed: int) -> list[common_pb2.WarehouseSample]:
    """A sample per report, repeated until the next poll, resized and suspended now and
    then, arriving a little out of order (within a few reports)."""
    rng = random.Random(seed)
    out = []
    size, state, clusters = "X-Small", "STARTED", 1
    at = T0
    for i in range(n):
        if i % 5 == 0:  # a new poll: the state may have changed
            at += 5 * S + rng.randrange(-S // 10, S // 10)
            if rng.random() < 0.1:
                size = rng.choice(list(PER_HOUR))
            if rng.random() < 0.05:
                state = "SUSPENDED" if state == "STARTED" else "STARTED"
            clusters = rng.randint(1, 4)
        out.append(sample(at, size, state, clusters))
    for i in range(0, n - 3, 7):  # neighbours swapped: out of order by a few reports
        j = i + rng.randint(1, 3)
        out[i], out[j] = out[j], out[i]
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_the_bounded_ledger_gives_the_credits_of_every_sample(seed: int) -> None:
    """Fails if folding old samples changes the credit total (by one pair too many or too
    few, or in another order), or if memory grows with the samples."""
    samples = a_long_run(3_000, seed)
    ledger = WarehouseLedger(window=32)
    for s in samples:
        ledger.add(s)
    assert ledger.late == 0 and ledger.count == len(samples)
    assert len(ledger.kept()) == 32  # bounded, whatever the run's length
    last = max(s.sample_time.ToNanoseconds() for s in samples)
    for until in (last + 7 * S, last, last - S):
        assert ledger.credits(until) == pytest.approx(oracle_credits(samples, until), rel=1e-12)
    assert ledger.first is samples[0]


def test_a_sample_older_than_every_one_kept_is_left_out_and_counted() -> None:
    ledger = WarehouseLedger(window=2)
    for k in (0, 10, 20, 30):
        ledger.add(sample(T0 + k * S, "Small", "STARTED", 1))
    ledger.add(sample(T0 + 5 * S, "Large", "STARTED", 4))  # before the oldest kept (20 s)
    assert ledger.late == 1 and ledger.count == 4
    # 2 credits/h over 0..40 s: the late sample changed nothing
    assert ledger.credits(T0 + 40 * S) == pytest.approx(2 * 40 / 3600)


def report(second: int, warehouse: common_pb2.WarehouseSample) -> control_pb2.MetricsReport:
    r = control_pb2.MetricsReport(interval_id=second, warehouse=warehouse)
    r.start_time.FromNanoseconds(T0 + (second - 1) * S)
    r.end_time.FromNanoseconds(T0 + second * S)
    return r


def test_a_run_keeps_its_snapshot_and_credits_in_bounded_memory() -> None:
    """Through RunMetrics, as the run's summary reads them: the first sample received is
    the run's warehouse snapshot, the credits are the oracle's over every report."""
    samples = a_long_run(1_000, 7)
    metrics = RunMetrics()
    for second, s in enumerate(samples, start=1):
        metrics.add("setup", report(second, s))
    until = max(s.sample_time.ToNanoseconds() for s in samples) + 3 * S
    assert metrics.credits(until) == pytest.approx(oracle_credits(samples, until), rel=1e-12)
    assert metrics.warehouse.first == samples[0]
    assert len(metrics.warehouse.kept()) <= 64
