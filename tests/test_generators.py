"""Parameter generators against their documented laws: exact probabilities computed by
hand from the spec (zipf's 1 / k**s, hotspot's traffic split), raw draws, and the
numbers math computes directly."""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from typing import Any

import pytest

from snowload.workload import ParamSpec, Query
from worker import generators as gen
from worker.generators import Sequences, compile_param, compile_query


def draws(spec: ParamSpec, n: int, seed: int = 1, seqs: Sequences | None = None) -> list[Any]:
    make = compile_param(spec, random.Random(seed), seqs or Sequences(0, 1), (0, 0))
    return [make() for _ in range(n)]


def assert_frequencies(counts: Counter[Any], probs: dict[Any, float], n: int) -> None:
    """Every count within 5 sigma of n * p (binomial), nothing outside ``probs``."""
    assert set(counts) <= set(probs), set(counts) - set(probs)
    for value, p in probs.items():
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[value] - n * p) <= 5 * sigma + 1, (value, counts[value], n * p)


@pytest.mark.parametrize("s", [0.5, 1.0, 1.2, 2.0, 3.0])
@pytest.mark.parametrize(("lo", "hi"), [(1, 6), (-3, 2), (100, 100)])
def test_zipf_follows_one_over_k_to_the_s(lo: int, hi: int, s: float) -> None:
    n = 20_000
    weights = {lo + k - 1: 1 / k**s for k in range(1, hi - lo + 2)}
    total = sum(weights.values())
    counts = Counter(draws(ParamSpec("zipf", (lo, hi, s)), n, seed=int(s * 10) + lo))
    assert_frequencies(counts, {v: w / total for v, w in weights.items()}, n)


def test_zipf_over_a_huge_range_stays_in_it_and_is_hot_at_the_bottom() -> None:
    lo, hi, s = 10, 10 + 10**12, 1.5
    values = draws(ParamSpec("zipf", (lo, hi, s)), 20_000, seed=3)
    assert all(type(v) is int and lo <= v <= hi for v in values)
    # P(first key) = 1 / H(10**12, 1.5) ~ 1 / zeta(1.5) = 0.3828..., P(second) = that / 2**1.5
    p1 = 1 / 2.6123753486854883
    counts = Counter(values)
    assert abs(counts[lo] / len(values) - p1) < 0.02
    assert abs(counts[lo + 1] / len(values) - p1 / 2**1.5) < 0.015
    assert max(values) > lo + 1000  # the tail is reached


@pytest.mark.parametrize("x", [1e-9, -1e-9, 5e-9, 1e-7, -0.5, 0.75, 3.0])
def test_log1p_and_expm1_ratios_match_math(x: float) -> None:
    """The series used near 0 agree with the library functions (which are accurate for
    small arguments too) to a few ulps."""
    assert gen._log1p_over(x) == pytest.approx(math.log1p(x) / x, rel=1e-15)
    assert gen._expm1_over(x) == pytest.approx(math.expm1(x) / x, rel=1e-15)


def test_ratios_at_zero_are_one() -> None:
    assert gen._log1p_over(0.0) == 1.0
    assert gen._expm1_over(0.0) == 1.0


@pytest.mark.parametrize(
    ("lo", "hi", "hot", "traffic"),
    [(1, 100, 0.1, 0.9), (0, 9, 0.5, 0.2), (5, 8, 0.25, 0.5), (1, 1000, 0.0001, 0.7)],
)
def test_hotspot_sends_traffic_to_the_hot_keys_uniformly(
    lo: int, hi: int, hot: float, traffic: float
) -> None:
    """The first max(1, int(n * hot)) keys get ``traffic`` of the draws, spread evenly; the
    others share the rest evenly."""
    n_keys = hi - lo + 1
    hot_n = max(1, int(n_keys * hot))
    probs = {
        lo + i: (traffic / hot_n if i < hot_n else (1 - traffic) / (n_keys - hot_n))
        for i in range(n_keys)
    }
    n = 40_000
    counts = Counter(draws(ParamSpec("hotspot", (lo, hi, hot, traffic)), n, seed=hi))
    hot_share = sum(counts[lo + i] for i in range(hot_n)) / n
    assert abs(hot_share - traffic) < 5 * math.sqrt(traffic * (1 - traffic) / n) + 1e-9
    if n_keys <= 100:
        assert_frequencies(counts, probs, n)
    else:
        assert set(counts) <= set(probs)


def test_hotspot_with_every_key_hot_never_leaves_the_range() -> None:
    values = draws(ParamSpec("hotspot", (3, 6, 1.0, 0.5)), 5_000)
    assert set(values) == {3, 4, 5, 6}


def test_int_generator_is_uniform_over_a_small_range() -> None:
    n = 30_000
    counts = Counter(draws(ParamSpec("int", (-2, 3)), n))
    assert_frequencies(counts, dict.fromkeys(range(-2, 4), 1 / 6), n)


def test_int_generator_above_float_precision_is_uniform_too() -> None:
    lo = 5
    hi = lo + 2**53  # span 2**53 + 1: just past what a float draw can cover
    values = draws(ParamSpec("int", (lo, hi)), 20_000)
    assert all(lo <= v <= hi for v in values)
    assert {v % 2 for v in values} == {0, 1}
    assert sum(v < lo + 2**52 for v in values) / len(values) == pytest.approx(0.5, abs=0.02)


def test_float_generator_is_uniform_over_its_interval() -> None:
    values = draws(ParamSpec("float", (-1.0, 3.0)), 40_000)
    assert all(-1.0 <= v < 3.0 for v in values)
    quarters = Counter(int(v + 1.0) for v in values)
    assert_frequencies(quarters, {0: 0.25, 1: 0.25, 2: 0.25, 3: 0.25}, len(values))


@pytest.mark.parametrize(("smin", "smax"), [(0, 0), (4, 4), (1, 3)])
def test_string_lengths_are_uniform_between_the_bounds(smin: int, smax: int) -> None:
    n = 12_000
    values = draws(ParamSpec("string", (smin, smax)), n)
    lengths = dict.fromkeys(range(smin, smax + 1), 1 / (smax - smin + 1))
    assert_frequencies(Counter(len(v) for v in values), lengths, n)
    letters = Counter("".join(values))
    assert all(re.fullmatch(r"[A-Za-z0-9]", c) for c in letters)
    if smax:
        assert len(letters) == 62  # every letter and digit shows up


def test_choice_is_uniform_over_the_listed_values() -> None:
    n = 30_000
    counts = Counter(draws(ParamSpec("choice", ("x", 7, None)), n))
    assert_frequencies(counts, {"x": 1 / 3, 7: 1 / 3, None: 1 / 3}, n)


def test_pool_slices_are_disjoint_and_walked_in_order() -> None:
    values = list(range(100, 110))
    seen: list[list[int]] = []
    for slot in range(3):
        seqs = Sequences(slot, 3)
        seqs.set_pools({(0, 0): values})
        make = compile_param(ParamSpec("pool", ("SELECT 1",)), random.Random(0), seqs, (0, 0))
        other = compile_param(ParamSpec("pool", ("SELECT 1",)), random.Random(0), seqs, (0, 0))
        # two threads of one worker share the walk: together they cycle through the slice
        seen.append([make() if i % 2 else other() for i in range(8)])
    assert seen == [
        [100, 103, 106, 109, 100, 103, 106, 109],
        [101, 104, 107, 101, 104, 107, 101, 104],
        [102, 105, 108, 102, 105, 108, 102, 105],
    ]


def test_a_pool_smaller_than_the_slots_gives_empty_slices_its_first_value() -> None:
    seqs = Sequences(2, 3)
    seqs.set_pools({(1, 0): ["only", "two"]})
    make = compile_param(ParamSpec("pool", ("q",)), random.Random(0), seqs, (1, 0))
    assert [make() for _ in range(3)] == ["only"] * 3


def test_a_missing_pool_is_an_error_naming_query_and_parameter() -> None:
    seqs = Sequences(0, 1)
    seqs.set_pools({(0, 0): []})
    with pytest.raises(ValueError, match=re.escape("pool for query 4 param 2 is empty")):
        compile_param(ParamSpec("pool", ("q",)), random.Random(0), seqs, (4, 2))
    with pytest.raises(ValueError, match=re.escape("pool for query 0 param 0 is empty")):
        compile_param(ParamSpec("pool", ("q",)), random.Random(0), seqs, (0, 0))


def test_unknown_generator_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=re.escape("unknown generator 'gauss'")):
        compile_param(ParamSpec("gauss", (1, 2)), random.Random(0), Sequences(0, 1), (0, 0))


@pytest.mark.parametrize(("slot", "slots"), [(-1, 2), (2, 2), (0, 0)])
def test_sequence_slots_outside_the_range_are_refused(slot: int, slots: int) -> None:
    with pytest.raises(ValueError, match=re.escape(f"sequence slot {slot} outside 0..{slots - 1}")):
        Sequences(slot, slots)


@pytest.mark.parametrize("nparams", [0, 1, 2, 3, 5])
def test_compiled_query_binds_every_parameter_in_order(nparams: int) -> None:
    query = Query(
        name="q",
        sql="SELECT " + ", ".join("?" * nparams),
        params=tuple(ParamSpec("sequence", (1000 * i,)) for i in range(nparams)),
    )
    make = compile_query(0, query, random.Random(0), Sequences(0, 1))
    assert [make() for _ in range(2)] == [
        tuple(1000 * i for i in range(nparams)),
        tuple(1000 * i + 1 for i in range(nparams)),
    ]


def test_two_pools_of_one_worker_are_walked_independently() -> None:
    seqs = Sequences(0, 1)
    seqs.set_pools({(0, 0): ["a", "b", "c"], (1, 0): [10, 20, 30]})
    first = compile_param(ParamSpec("pool", ("q",)), random.Random(0), seqs, (0, 0))
    second = compile_param(ParamSpec("pool", ("q",)), random.Random(0), seqs, (1, 0))
    assert [(first(), second()) for _ in range(4)] == [
        ("a", 10),
        ("b", 20),
        ("c", 30),
        ("a", 10),
    ]


def test_a_pool_before_any_was_sampled_is_an_error() -> None:
    with pytest.raises(ValueError, match=re.escape("pool for query 0 param 1 is empty")):
        compile_param(ParamSpec("pool", ("q",)), random.Random(0), Sequences(0, 1), (0, 1))
