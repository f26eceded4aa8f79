"""snowload.hdr against HdrHistogram's own methods and the raw samples."""

from __future__ import annotations

import base64
import gc
import tracemalloc
import weakref
from collections import Counter

import pytest
from hdrh.codec import V2_ENCODING_COOKIE_BASE, HdrCookieException
from hdrh.histogram import HdrHistogram
from hypothesis import example, given, settings
from hypothesis import strategies as st

from snowload import hdr

# latencies spread over every magnitude a run sees: sub-millisecond to an hour
values_us = st.one_of(
    st.integers(min_value=0, max_value=2_000),
    st.integers(min_value=0, max_value=5_000_000),
    st.integers(min_value=0, max_value=hdr.HIGHEST_US),
)
samples = st.lists(values_us, min_size=1, max_size=60)
WANTED = (0.0, 1.0, 25.0, 50.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0, 150.0)


def histogram(values: list[int]) -> HdrHistogram:
    h = hdr.new_histogram()
    for v in values:
        h.record_value(v)
    return h


def nearest_rank(values: list[int], p: float) -> int:
    """The sample HdrHistogram's percentile lands on: rank max(1, round(p% of n)) with
    p capped at 100."""
    ordered = sorted(values)
    rank = max(1, int(min(p, 100.0) * len(values) / 100 + 0.5))
    return ordered[rank - 1]


def test_new_histogram_has_the_documented_range_and_precision() -> None:
    h = hdr.new_histogram()
    assert (h.lowest_trackable_value, h.highest_trackable_value) == (1, 3_600_000_000)
    assert h.significant_figures == 3
    h.record_value(3_600_000_000)  # one hour is recordable
    assert h.get_max_value() >= 3_600_000_000


@settings(max_examples=25, deadline=None)
@given(samples)
def test_percentiles_are_hdrhistograms_own(values: list[int]) -> None:
    h = histogram(values)
    own = h.get_percentile_to_value_dict([50.0, 95.0, 99.0])
    assert hdr.percentiles(h) == hdr.Percentiles(
        count=len(values),
        p50_ms=own[50.0] / 1000,
        p95_ms=own[95.0] / 1000,
        p99_ms=own[99.0] / 1000,
        max_ms=h.get_max_value() / 1000,
        min_ms=h.get_min_value() / 1000,
        # get_mean_value, summed per sample instead of per bucket (much faster)
        mean_ms=sum(map(h._hdr_median_equiv_value, values)) / len(values) / 1000,
    )


def test_the_mean_is_exact_when_counts_times_values_pass_64_bits() -> None:
    """Billions of queries and hour-long outliers (a week-long phase): the sum of count x
    value no longer fits an unsigned 64-bit product, and the mean is still hdrh's."""
    h = hdr.new_histogram()
    h.record_value(hdr.HIGHEST_US, 6_000_000_000)
    h.record_value(5, 3)
    h.record_value(2_000, 7)
    assert 6_000_000_000 * hdr.HIGHEST_US >= 1 << 64
    p = hdr.percentiles(h)
    assert p.count == 6_000_000_010
    assert p.mean_ms == pytest.approx(h.get_mean_value() / 1000, rel=1e-12)
    assert p.p50_ms == h.get_value_at_percentile(50.0) / 1000
    # and just below the limit, through the vectorised sum
    small = hdr.new_histogram()
    small.record_value(hdr.HIGHEST_US, 4_000_000_000)
    small.record_value(5, 3)
    assert hdr.percentiles(small).mean_ms == pytest.approx(small.get_mean_value() / 1000, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(samples)
# always one whose smallest value lies in a bucket wider than 1 µs, where p0 (the lowest
# equivalent value) and the bucket's highest value differ
@example([3_000, 250_000, 7_000_000])
def test_value_at_percentiles_lands_on_the_bucket_of_the_ranked_sample(values: list[int]) -> None:
    h = histogram(values)
    got = hdr.value_at_percentiles(h, WANTED)
    assert set(got) == set(WANTED)
    own = h.get_percentile_to_value_dict([p for p in WANTED if p <= 100])
    own[150.0] = h.get_value_at_percentile(150.0)
    for p in WANTED:
        assert got[p] == own[p], p
        sample = nearest_rank(values, p)
        if p == 0:
            assert got[p] == h.get_lowest_equivalent_value(sample)
        else:
            assert got[p] == h.get_highest_equivalent_value(sample)
        # 3 significant digits: within 0.1 % (plus the 1 µs resolution) of the sample
        assert abs(got[p] - sample) <= sample / 1000 + 1


def test_percentiles_at_the_top_of_the_range() -> None:
    """A query that outlasts the hour is still recorded: hdrh takes values up to the
    highest of its last bucket (2^32 - 1 µs), so the span ends at the counts array's
    end. Read there, the mean stays exact for the fewest counts whose sum of count x
    value passes 64 bits (all of them in that last bucket)."""
    h = hdr.new_histogram()
    top = h.get_highest_equivalent_value(h.get_value_from_index(h.counts_len - 1))
    assert top == 2**32 - 1
    assert h.record_value(top)
    assert not h.record_value(top + 1)  # the end of the range
    h.record_value(5, 2)
    own = h.get_percentile_to_value_dict([50.0, 95.0, 99.0])
    p = hdr.percentiles(h)
    assert (p.count, p.p50_ms, p.p95_ms, p.p99_ms, p.max_ms, p.min_ms) == (
        3,
        own[50.0] / 1000,
        own[95.0] / 1000,
        own[99.0] / 1000,
        top / 1000,
        0.005,
    )
    assert p.mean_ms == pytest.approx(h.get_mean_value() / 1000, rel=1e-12)
    assert hdr.value_at_percentiles(h, (0.0, 50.0, 100.0)) == {0.0: 5, 50.0: 5, 100.0: top}
    assert hdr.recorded_of(h) == [(5, 2), (top, 1)]
    wraps = -(-(1 << 64) // h._hdr_median_equiv_value(top))  # ceil(2^64 / median)
    heavy = hdr.new_histogram()
    heavy.record_value(top, wraps)
    p = hdr.percentiles(heavy)
    assert (p.count, p.p50_ms) == (wraps, top / 1000)
    assert p.mean_ms == pytest.approx(heavy.get_mean_value() / 1000, rel=1e-12)


def test_percentiles_of_known_samples() -> None:
    """Hand-computed: 1..100 ms, one each. Rank of p50 is 50 -> 50 ms, of p95 95 ms, of
    p99 99 ms; values below 2048 µs are exact, above they sit in buckets of 2^k µs."""
    h = histogram([ms * 1000 for ms in range(1, 101)])
    p = hdr.percentiles(h)
    assert p.count == 100
    # 50_000 µs falls in a bucket of width 32 starting at 49_984: highest 50_015
    assert p.p50_ms == 50.015
    assert p.p95_ms == 95.039  # width 64 from 94_976
    assert p.p99_ms == 99.007  # width 64 from 98_944
    assert p.max_ms == 100.031  # width 64 from 99_968
    assert p.min_ms == 1.0
    # the mean of bucket midpoints sits within 0.1 % of the true 50.5 ms
    assert p.mean_ms == pytest.approx(50.5, rel=1e-3)
    # p0 is the lowest value of the first bucket, p100 and beyond the highest of the last
    assert hdr.value_at_percentiles(h, (0.0, 100.0, 101.0, 150.0)) == {
        0.0: 1000,
        100.0: 100_031,
        101.0: 100_031,
        150.0: 100_031,
    }


@pytest.mark.parametrize(
    ("values", "p50", "p99", "minimum", "maximum", "mean"),
    [
        ([7], 0.007, 0.007, 0.007, 0.007, 0.007),
        ([0, 0, 0, 2000], 0.0, 2.0, 0.0, 2.0, 0.5),
        ([1000, 3000], 1.0, 3.001, 1.0, 3.001, 2.0005),  # 3000 sits in [3000, 3001]
    ],
)
def test_percentiles_of_tiny_samples(
    values: list[int], p50: float, p99: float, minimum: float, maximum: float, mean: float
) -> None:
    p = hdr.percentiles(histogram(values))
    assert (p.count, p.p50_ms, p.p99_ms, p.min_ms, p.max_ms) == (
        len(values),
        p50,
        p99,
        minimum,
        maximum,
    )
    assert p.mean_ms == pytest.approx(mean, abs=1e-9)


def test_an_empty_histogram_reads_as_zeros() -> None:
    assert hdr.percentiles(hdr.new_histogram()) == hdr.Percentiles(0, 0, 0, 0, 0, 0, 0)
    assert hdr.value_at_percentiles(hdr.new_histogram(), (50.0, 99.0)) == {50.0: 0, 99.0: 0}
    assert hdr.encode(hdr.new_histogram()) == b""
    assert hdr.spectrum(b"") == {}


def test_bucket_bounds_are_hdrhistograms_equivalent_values() -> None:
    h = hdr.new_histogram()
    low, high, mid = hdr._bounds(*hdr._layout(h))
    assert len(low) == len(high) == len(mid) == h.counts_len
    for index in range(0, h.counts_len, 7):
        value = h.get_value_from_index(index)
        assert low[index] == h.get_lowest_equivalent_value(value), index
        assert high[index] == h.get_highest_equivalent_value(value), index
        assert mid[index] == h._hdr_median_equiv_value(value), index


@settings(max_examples=25, deadline=None)
@given(samples)
def test_encoding_is_hdrhistograms_v2_and_round_trips(values: list[int]) -> None:
    h = histogram(values)
    data = hdr.encode(h)
    # raw bytes of the base64 form HdrHistogram writes and reads
    assert base64.b64encode(data) == h.encode()
    other = HdrHistogram.decode(base64.b64encode(data))
    back = hdr.decode(data)
    for decoded in (other, back):
        assert decoded.get_total_count() == len(values)
        assert decoded.get_max_value() == h.get_max_value()
        assert decoded.get_min_value() == h.get_min_value()
        for v in set(values):
            assert decoded.get_count_at_value(v) == h.get_count_at_value(v)


def test_decoding_nothing_gives_an_empty_histogram_of_our_layout() -> None:
    h = hdr.decode(b"")
    assert h.get_total_count() == 0
    assert (h.lowest_trackable_value, h.highest_trackable_value, h.significant_figures) == (
        hdr.LOWEST_US,
        hdr.HIGHEST_US,
        hdr.SIGNIFICANT_DIGITS,
    )


def counts(h: HdrHistogram) -> list[int]:
    return [h.get_count_at_index(i) for i in range(h.counts_len)]


@settings(max_examples=25, deadline=None)
@given(st.lists(samples, min_size=1, max_size=4), st.lists(values_us, max_size=5))
def test_add_encoded_equals_hdrhistograms_add(batches: list[list[int]], before: list[int]) -> None:
    """Into targets that already hold data (whose min and max must survive a merge with
    larger and smaller values), batch after batch (the scratch array is reused)."""
    fast = [histogram(before), histogram(before)]
    slow = histogram(before)
    for batch in batches:
        data = hdr.encode(histogram(batch))
        hdr.add_encoded(fast, data)
        slow.add(HdrHistogram.decode(base64.b64encode(data)))
    everything = before + [v for batch in batches for v in batch]
    for h in fast:
        assert counts(h) == counts(slow)
        assert h.get_total_count() == slow.get_total_count() == len(everything)
        assert h.get_max_value() == slow.get_max_value() == histogram(everything).get_max_value()
        assert h.get_min_value() == slow.get_min_value() == histogram(everything).get_min_value()


def test_add_encoded_allocates_no_histogram() -> None:
    """The point of add_encoded: a snowload histogram is merged through the reused scratch
    array; decoding it would allocate a counts array (8 bytes per bucket)."""
    data = hdr.encode(histogram([5, 500, 50_000, 5_000_000]))
    target = hdr.new_histogram()
    hdr.add_encoded([target], data)  # the scratch array exists from here on
    counts_bytes = 8 * target.counts_len
    tracemalloc.start()
    try:
        hdr.add_encoded([target], data)
        fast_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        target.add(hdr.decode(data))
        slow_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert slow_peak > counts_bytes  # the measurement sees a decode
    assert fast_peak < counts_bytes / 4
    assert target.get_total_count() == 12


def test_prepare_merge_readies_the_first_merge() -> None:
    """What prepare_merge is for: the scratch array and the bucket tables are built
    before a run, so its first merge allocates nothing of a counts array's size (a cold
    first merge builds them: two arrays of a counts array's size)."""
    data = hdr.encode(histogram([5, 500, 50_000]))
    target = hdr.new_histogram()
    counts_bytes = 8 * target.counts_len
    hdr._merge_tools.cache_clear()
    hdr.prepare_merge()
    tracemalloc.start()
    try:
        hdr.add_encoded([target], data)
        prepared_peak = tracemalloc.get_traced_memory()[1]
        hdr._merge_tools.cache_clear()
        tracemalloc.reset_peak()
        hdr.add_encoded([target], data)
        cold_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert cold_peak > counts_bytes  # the measurement sees the tables being built
    assert prepared_peak < counts_bytes / 4
    assert counts(target) == counts(histogram([5, 500, 50_000] * 2))


def test_add_encoded_refuses_what_hdrhistogram_refuses() -> None:
    """Only a compressed V2 histogram is read: the same bytes under another cookie (here
    the uncompressed V2 one) are refused with HdrHistogram's own error, not merged."""
    data = hdr.encode(histogram([5, 500]))
    other = (V2_ENCODING_COOKIE_BASE | 0x10).to_bytes(4, "big") + data[4:]
    with pytest.raises(HdrCookieException):
        HdrHistogram.decode(base64.b64encode(other))
    target = histogram([7])
    with pytest.raises(HdrCookieException):
        hdr.add_encoded([target], other)
    assert counts(target) == counts(histogram([7]))


def test_add_encoded_of_nothing_or_into_nothing_changes_nothing() -> None:
    h = histogram([5, 50])
    hdr.add_encoded([h], b"")
    assert (h.get_total_count(), h.get_min_value(), h.get_max_value()) == (2, 5, 50)
    hdr.add_encoded([], hdr.encode(histogram([1])))  # no target: no error
    # and the scratch array is left clean for the next caller
    fresh = hdr.new_histogram()
    hdr.add_encoded([fresh], hdr.encode(histogram([9])))
    assert counts(fresh) == counts(histogram([9]))


def test_add_encoded_of_a_zero_only_histogram_keeps_min_zero() -> None:
    h = histogram([40, 400])
    hdr.add_encoded([h], hdr.encode(histogram([0, 0])))
    assert (h.get_total_count(), h.get_min_value(), h.get_max_value()) == (4, 0, 400)
    assert h.get_count_at_value(0) == 2


@pytest.mark.parametrize(
    ("lowest", "highest", "digits"), [(1, 10_000_000, 2), (1, 3_600_000_000, 4), (1000, 10**9, 3)]
)
def test_add_encoded_of_a_foreign_layout_records_its_values(
    lowest: int, highest: int, digits: int
) -> None:
    """Histograms written by another tool with another precision or range still merge,
    value by value, as HdrHistogram's add does it."""
    foreign = HdrHistogram(lowest, highest, digits)
    for v in (1500, 1500, 27_000, 9_000_000):
        foreign.record_value(v)
    data = base64.b64decode(foreign.encode())
    targets = [histogram([3]), histogram([3])]
    hdr.add_encoded(targets, data)
    expected = histogram([3])
    expected.add(foreign)
    for t in targets:
        assert counts(t) == counts(expected)
        assert t.get_total_count() == 5
        assert t.get_max_value() == expected.get_max_value()


@settings(max_examples=20, deadline=None)
@given(samples)
def test_spectrum_reads_the_tail_of_an_encoded_histogram(values: list[int]) -> None:
    h = histogram(values)
    row = hdr.spectrum(hdr.encode(h))
    assert list(row) == ["p50", "p90", "p95", "p99", "p99.9", "p99.99", "max", "count"]
    own = h.get_percentile_to_value_dict(list(hdr.SPECTRUM))
    for key, p in zip(row, hdr.SPECTRUM, strict=False):
        assert row[key] == own[p] / 1000, key
    assert row["max"] == h.get_max_value() / 1000
    assert row["count"] == float(len(values))


def buckets_of_samples(h: HdrHistogram, values: list[int]) -> list[tuple[int, int]]:
    """The raw samples' (highest equivalent value, count) pairs, ascending."""
    tally = Counter(h.get_highest_equivalent_value(v) for v in values)
    return sorted(tally.items())


@settings(max_examples=15, deadline=None)
@given(samples, st.integers(min_value=1, max_value=5))
def test_recorded_lists_every_non_empty_bucket_like_hdrhistograms_iterator(
    values: list[int], times: int
) -> None:
    h = histogram(values * times)
    own = [(i.value_iterated_to, i.count_at_value_iterated_to) for i in h.get_recorded_iterator()]
    expected = buckets_of_samples(h, values * times)
    assert own == expected
    assert hdr.recorded_of(h) == expected
    assert hdr.recorded(hdr.encode(h)) == expected


def test_recorded_of_merged_histograms_adds_the_counts_of_shared_buckets() -> None:
    a, b = [0, 3, 1_000, 1_000, 250_000], [3, 1_001, 250_100, hdr.HIGHEST_US]
    merged = hdr.new_histogram()
    for part in (a, b):
        hdr.add_encoded([merged], hdr.encode(histogram(part)))
    expected = buckets_of_samples(merged, a + b)
    assert (3, 2) in expected and sum(c for _, c in expected) == len(a + b)
    assert hdr.recorded_of(merged) == expected
    assert hdr.recorded(hdr.encode(merged)) == expected


def test_recorded_of_nothing_is_empty() -> None:
    assert hdr.recorded(b"") == []
    assert hdr.recorded_of(hdr.new_histogram()) == []


def test_a_histogram_is_freed_without_the_cyclic_collector() -> None:
    """The encoder's reference to its histogram is weak: dropping the last reference
    frees the pair at once (and encoding still works while the histogram lives)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for make in (hdr.new_histogram, lambda: hdr.decode(hdr.encode(histogram([7, 70])))):
            h = make()
            h.record_value(5)
            assert hdr.decode(hdr.encode(h)).get_total_count() == h.get_total_count()
            ref = weakref.ref(h)
            del h
            assert ref() is None
    finally:
        if was_enabled:
            gc.enable()
