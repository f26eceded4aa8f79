"""The query log's arithmetic, against raw samples: the slowest-N threshold the hot loop
compares with keeps exactly the N slowest (the sorted raw latencies say which), and the
reservoir and its merge are uniform (a chi-square test over where the sampled items came
from, with a fixed seed; 27.88 is the 99.9 % point of chi-square with 9 degrees of
freedom, so a uniform sampler fails it once in a thousand seeds, and this seed is fixed).
"""

from __future__ import annotations

import json
import random

from controller.query_log import merge
from snowload.query_sampling import Reservoir, merge_samples
from snowload.v1 import common_pb2, control_pb2
from worker.query_log import MAX_PARAM_CHARS, LogShape, ThreadLog, gather, params_json

CHI2_9_999 = 27.88
MEAS = common_pb2.STATE_MEASUREMENT
WARM = common_pb2.STATE_WARMUP


def chi2(counts: list[int]) -> float:
    expected = sum(counts) / len(counts)
    return sum((c - expected) ** 2 / expected for c in counts)


def count_down(reservoir: Reservoir[int], items: range) -> None:
    """What a connection thread's hot loop does: count the gap down, offer at zero."""
    left = reservoir.first_gap()
    for item in items:
        left -= 1
        if not left:
            left = reservoir.offer(item)
    reservoir.finish(left)


def test_the_reservoir_is_uniform_and_counts_what_it_saw() -> None:
    rng = random.Random(20261203)
    bins = [0] * 10
    for _ in range(1500):
        r: Reservoir[int] = Reservoir(20, rng)
        count_down(r, range(1000))
        assert r.seen == 1000
        assert len(r.items) == 20 == len(set(r.items))
        for item in r.items:
            bins[item // 100] += 1
    assert chi2(bins) < CHI2_9_999, bins
    small: Reservoir[int] = Reservoir(50, rng)
    count_down(small, range(7))  # fewer items than its size: all of them
    assert sorted(small.items) == list(range(7)) and small.seen == 7
    none: Reservoir[int] = Reservoir(0, rng)
    count_down(none, range(100))
    assert none.items == []


def test_merged_samples_weigh_each_part_by_what_it_saw() -> None:
    """Two workers, one saw 9x the other's queries: a uniform run-wide sample takes 90 %
    of its items from it (a merge that took equal shares would take 50 %)."""
    rng = random.Random(7)
    bins = [0] * 10
    from_big = 0
    for _ in range(200):
        small: Reservoir[int] = Reservoir(100, rng)
        big: Reservoir[int] = Reservoir(100, rng)
        count_down(small, range(1000))
        count_down(big, range(1000, 10000))
        merged = merge_samples([(small.seen, small.items), (big.seen, big.items)], 100, rng)
        assert len(merged) == 100 == len(set(merged))
        from_big += sum(1 for x in merged if x >= 1000)
        for x in merged:
            bins[x // 1000] += 1
    assert chi2(bins) < CHI2_9_999, bins
    assert abs(from_big / 20000 - 0.9) < 0.01
    # fewer items in all than the size: everything
    assert sorted(merge_samples([(2, [1, 2]), (1, [3])], 10, rng)) == [1, 2, 3]


def test_the_threshold_keeps_exactly_the_slowest_per_phase_and_kind() -> None:
    """Three connection threads, two kinds, two phases; the gathered log's slowest are
    the raw latencies' top N per (phase, kind), whatever thread saw them."""
    rng = random.Random(11)
    logs = [ThreadLog(i, 2, 5, 10, random.Random(i)) for i in range(3)]
    raw: dict[tuple[int, int], list[int]] = {}
    issued = 0
    for log in logs:
        for _ in range(3000):
            phase = WARM if rng.random() < 0.3 else MEAS
            kind = rng.randrange(2)
            lat = int(rng.lognormvariate(6, 1.2))
            issued += 1
            raw.setdefault((phase, kind), []).append(lat)
            if lat > log.floors(phase)[kind]:  # the hot loop's one comparison
                log.slow(phase, kind, lat, issued, (lat,))
    shape = LogShape(("a", "b"), 5, 10, True)
    out = gather(logs, shape, lambda perf: perf, rng=random.Random(1))
    assert isinstance(out, control_pb2.QueryLog)
    for (phase, kind), lats in raw.items():
        got = sorted(
            (
                round(e.latency_ms * 1000)
                for e in out.entries
                if e.slowest and e.phase == phase and e.kind == "ab"[kind]
            ),
            reverse=True,
        )
        assert got == sorted(lats, reverse=True)[:5], (phase, kind)
    # the parameters travel with their query
    assert all(e.params_json == f"[{round(e.latency_ms * 1000)}]" for e in out.entries)
    unrecorded = gather(logs, LogShape(("a", "b"), 5, 10, False), lambda p: p)
    assert all(e.params_json == "" for e in unrecorded.entries)


def entry(
    n: int, ms: float, *, error: str = "", slow: bool = False, sampled: bool = False
) -> common_pb2.QueryEntry:
    e = common_pb2.QueryEntry(
        entry_id=n,
        kind="k",
        phase=MEAS,
        latency_ms=ms,
        slowest=slow,
        sampled=sampled,
        error=error,
        error_category="lock" if error else "",
    )
    e.start_time.FromNanoseconds(1_000_000_000 * n)
    return e


def test_the_controller_keeps_the_runs_slowest_first_failures_and_one_sample() -> None:
    w1 = control_pb2.QueryLog(
        sample_seen=10,
        entries=[entry(1, 50, slow=True, sampled=True), entry(2, 9, slow=True)]
        + [entry(10 + i, 1, error="x", sampled=i == 0) for i in range(4)],
    )
    w2 = control_pb2.QueryLog(
        sample_seen=10,
        entries=[entry(3, 40, slow=True), entry(4, 30, slow=True), entry(5, 2, sampled=True)]
        + [entry(6 + i, 1, error="y") for i in range(4)],
    )
    out = merge({"w1": w1, "w2": w2}, 3, 10, random.Random(3))
    assert [e.entry_id for e in out] == list(range(1, len(out) + 1))
    starts = [e.start_time.ToNanoseconds() for e in out]
    assert starts == sorted(starts)
    slow = sorted(((e.worker, e.latency_ms) for e in out if e.slowest), key=lambda x: -x[1])
    assert slow == [("w1", 50), ("w2", 40), ("w2", 30)]  # the 9 ms one is not the run's
    failed = [(e.worker, e.start_time.ToNanoseconds() // 10**9) for e in out if e.error]
    # the first five failures of (k, lock) by issue time, whichever worker had them
    assert failed == [("w2", 6), ("w2", 7), ("w2", 8), ("w2", 9), ("w1", 10)]
    sampled = [e for e in out if e.sampled]
    assert len(sampled) == 3  # all the workers sampled, fewer than the size
    assert next(e for e in out if e.latency_ms == 50).sampled  # slowest and sampled at once


def test_long_text_parameters_are_cut_and_the_rest_kept_as_json() -> None:
    text = params_json((7, 2.5, None, True, "x" * 5000, "é", b"ab"))
    values = json.loads(text)
    assert values[:4] == [7, 2.5, None, True]
    assert values[4] == "x" * MAX_PARAM_CHARS + "…" and values[5] == "é"
    assert values[6] == "b'ab'"  # what JSON has no type for, as text
