"""HDR histogram helpers shared by workers (record, encode) and the controller (merge).

Latencies are recorded in microseconds, from 1 µs to one hour, with 3 significant digits.
The wire carries the HdrHistogram V2 compressed encoding (raw bytes, not base64), which
HdrHistogram's own tools read too.
"""

from __future__ import annotations

import base64
import ctypes
import functools
import itertools
import zlib
from dataclasses import dataclass

from hdrh.codec import (
    V2_COMPRESSION_COOKIE_BASE,
    ExternalHeader,
    PayloadHeader,
    ext_header_size,
    get_cookie_base,
    payload_header_size,
)
from hdrh.histogram import HdrHistogram
from pyhdrh import add_array
from pyhdrh import decode as _varint_decode

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def encode(hist: HdrHistogram) -> bytes:
    """Compressed V2 encoding as raw bytes; empty bytes for an empty histogram."""
    if hist.get_total_count() == 0:
        return b""
    return base64.b64decode(hist.encode())


def decode(data: bytes) -> HdrHistogram:
    if not data:
        return new_histogram()
    decoded: HdrHistogram = HdrHistogram.decode(base64.b64encode(data))
    return decoded


@functools.cache
def _scratch(counts_len: int) -> ctypes.Array[ctypes.c_uint64]:
    """A zeroed counts array, reused by add_encoded (which leaves it zeroed again)."""
    return (ctypes.c_uint64 * counts_len)()


def add_encoded(targets: list[HdrHistogram], data: bytes) -> None:
    """Add one encoded histogram to every histogram of ``targets`` (all made by
    new_histogram()), exactly as ``t.add(decode(data))`` would, without allocating a
    histogram: the varints are decoded into a reused scratch array and only the span
    between the lowest and the highest non-zero bucket is added."""
    if not data or not targets:
        return
    header = ExternalHeader.from_buffer_copy(data)
    raw = (
        zlib.decompress(data[ext_header_size:])
        if get_cookie_base(header.cookie) == V2_COMPRESSION_COOKIE_BASE
        else b""
    )
    payload = PayloadHeader.from_buffer_copy(raw) if len(raw) >= payload_header_size else None
    if (
        payload is None
        or payload.lowest_trackable_value != LOWEST_US
        or payload.highest_trackable_value != HIGHEST_US
        or payload.significant_figures != SIGNIFICANT_DIGITS
    ):
        other = decode(data)  # foreign layout: the slow, general path
        for t in targets:
            t.add(other)
        return
    t0 = targets[0]
    n = t0.counts_len
    scratch = _scratch(n)
    res = _varint_decode(raw, payload_header_size, ctypes.addressof(scratch), n, 8)
    total = res["total"]
    lo, hi = res["min_nonzero_index"], res["max_nonzero_index"]
    if total == 0 or lo < 0 or hi < lo:
        return
    span = hi - lo + 1
    src = ctypes.addressof(scratch) + 8 * lo
    other_max = _highest_at(hi)
    other_min = 0 if lo == 0 else _lowest_at(lo)
    for t in targets:
        add_array(ctypes.addressof(t.counts) + 8 * lo, src, span, 8)
        t.total_count += total
        t.max_value = max(t.max_value, other_max)
        t.min_value = min(t.get_min_value(), other_min)
    ctypes.memset(src, 0, 8 * span)


_LAYOUT = new_histogram()


@functools.cache
def _highest_at(index: int) -> int:
    """Highest value equivalent to bucket ``index`` (the layout of new_histogram())."""
    value: int = _LAYOUT.get_highest_equivalent_value(_LAYOUT.get_value_from_index(index))
    return value


@functools.cache
def _lowest_at(index: int) -> int:
    value: int = _LAYOUT.get_lowest_equivalent_value(_LAYOUT.get_value_from_index(index))
    return value


@dataclass(frozen=True)
class Percentiles:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    min_ms: float
    mean_ms: float


def percentiles(hist: HdrHistogram) -> Percentiles:
    """Percentiles in milliseconds, with exactly the semantics of HdrHistogram's
    ``get_value_at_percentile`` (highest equivalent value of the bucket) but in one pass
    over the non-zero buckets. Every value is read from the same histogram, so
    p50 <= p95 <= p99 <= max always holds."""
    count = int(hist.get_total_count())
    if count == 0:
        return Percentiles(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    nonzero = _nonzero(hist)  # one pass shared by the percentiles and the mean
    values = value_at_percentiles(hist, (50.0, 95.0, 99.0), nonzero)
    return Percentiles(
        count=count,
        p50_ms=values[50.0] / 1000.0,
        p95_ms=values[95.0] / 1000.0,
        p99_ms=values[99.0] / 1000.0,
        max_ms=float(hist.get_max_value()) / 1000.0,
        min_ms=float(hist.get_min_value()) / 1000.0,
        mean_ms=_mean(hist, nonzero) / 1000.0,
    )


def _nonzero(hist: HdrHistogram) -> list[tuple[int, int]]:
    """(index, count) of the non-zero buckets, scanning only between the buckets of the
    smallest and the largest recorded value."""
    counts = hist.counts
    n = min(hist.counts_len, hist.encoder.payload.counts_len)
    lo = max(0, hist.get_counts_array_index(hist.get_min_value()) - 1)
    hi = min(n, hist.get_counts_array_index(hist.get_max_value()) + 2)
    if hi <= lo:
        lo, hi = 0, n
    return [(i, counts[i]) for i in itertools.compress(range(lo, hi), counts[lo:hi])]


def value_at_percentiles(
    hist: HdrHistogram,
    wanted: tuple[float, ...],
    nonzero: list[tuple[int, int]] | None = None,
) -> dict[float, int]:
    total = int(hist.get_total_count())
    targets = sorted((max(1, int(p * total / 100 + 0.5)), p) for p in wanted)
    out: dict[float, int] = {}
    seen = 0
    t = 0
    for index, c in _nonzero(hist) if nonzero is None else nonzero:
        seen += c
        while t < len(targets) and seen >= targets[t][0]:
            value = hist.get_highest_equivalent_value(hist.get_value_from_index(index))
            out[targets[t][1]] = int(value)
            t += 1
        if t == len(targets):
            break
    for _, p in targets[t:]:
        out[p] = 0
    return out


def _mean(hist: HdrHistogram, nonzero: list[tuple[int, int]]) -> float:
    """Mean of the buckets' median equivalent values (HdrHistogram's get_mean_value),
    with hdrh's per-bucket method calls inlined: bucket b, sub-bucket s hold the values
    [s << (b + u), (s + 1) << (b + u)), whose median equivalent value is
    (s << (b + u)) + ((1 << (b + u)) >> 1)."""
    total = int(hist.get_total_count())
    if not total:
        return 0.0
    half_mag = hist.sub_bucket_half_count_magnitude
    half = hist.sub_bucket_half_count
    unit = hist.unit_magnitude
    acc = 0
    for index, c in nonzero:
        bucket = (index >> half_mag) - 1
        sub = (index & (half - 1)) + half
        if bucket < 0:
            sub -= half
            bucket = 0
        shift = bucket + unit
        acc += c * ((sub << shift) + ((1 << shift) >> 1))
    return acc / total
