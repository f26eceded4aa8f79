"""HDR histogram helpers shared by workers (record, encode) and the controller (merge).

Latencies are recorded in microseconds, from 1 µs to one hour, with 3 significant digits.
The wire carries the HdrHistogram V2 compressed encoding (raw bytes, not base64), which
HdrHistogram's own tools read too.
"""

from __future__ import annotations

import base64
import bisect
import functools
import itertools
import operator
import weakref
import zlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple

from hdrh.codec import (
    V2_COMPRESSION_COOKIE_BASE,
    PayloadHeader,
    ext_header_size,
    payload_header_size,
)
from hdrh.histogram import HdrHistogram
from pyhdrh import decode as _varint_decode

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3


def new_histogram() -> HdrHistogram:
    return _acyclic(HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS))


def record(hist: HdrHistogram, value_us: int, count: int = 1) -> None:
    """Record ``count`` values, clamped to the histogram's range [0, HIGHEST_US]: hdrh
    silently refuses a value past its range (``record_value`` returns False), which would
    drop a statement longer than about 71 minutes from the count as well as from the
    latencies. Clamped, it counts, with the range's top (one hour) as its latency."""
    hist.record_value(min(max(value_us, 0), HIGHEST_US), count)


def _acyclic(hist: HdrHistogram) -> HdrHistogram:
    """hdrh's histogram and its encoder refer to each other: such a pair (and its 184 KiB
    of counts) is freed only by Python's cyclic garbage collector, which an idle process
    runs seldom. The encoder's reference made weak, a histogram goes when its last user
    lets it go."""
    hist.encoder.histogram = weakref.proxy(hist)
    return hist


def encode(hist: HdrHistogram) -> bytes:
    """Compressed V2 encoding as raw bytes; empty bytes for an empty histogram."""
    if hist.get_total_count() == 0:
        return b""
    return base64.b64decode(hist.encode())


def decode(data: bytes) -> HdrHistogram:
    if not data:
        return new_histogram()
    decoded: HdrHistogram = HdrHistogram.decode(base64.b64encode(data))
    return _acyclic(decoded)


class _Merge(NamedTuple):
    """What add_encoded and percentiles reuse for one layout: numpy (imported on first
    use, so a worker, which records and encodes, does not load it), a zeroed scratch array
    and its address, and the buckets' bounds (:func:`_bounds`; the medians as an array)."""

    np: ModuleType
    scratch: NDArray[np.uint64]
    address: int
    low: list[int]
    high: list[int]
    mid: list[int]
    mid_array: NDArray[np.uint64]


@functools.cache
def _merge_tools(counts_len: int, half_mag: int, half: int, unit: int) -> _Merge:
    import numpy  # (see _Merge)

    scratch = numpy.zeros(counts_len, numpy.uint64)
    low, high, mid = _bounds(counts_len, half_mag, half, unit)
    return _Merge(
        numpy, scratch, scratch.ctypes.data, low, high, mid, numpy.array(mid, numpy.uint64)
    )


def prepare_merge() -> None:
    """Load what merging and reading histograms needs (numpy, the bucket tables: a few
    hundred ms) now rather than in a run's first second."""
    _merge_tools(*_layout(new_histogram()))


def add_encoded(targets: list[HdrHistogram], data: bytes) -> None:
    """Add one encoded histogram to every histogram of ``targets`` (all made by
    new_histogram()), exactly as ``t.add(decode(data))`` would, without allocating a
    histogram: the varints are decoded into a reused scratch array and only the span
    between the lowest and the highest non-zero bucket is added (one vectorised add per
    target; the controller merges a thousand of these a second at 256 workers)."""
    if not data or not targets:
        return
    raw = (
        zlib.decompress(memoryview(data)[ext_header_size:])
        if data[:4] in _COMPRESSED_COOKIES
        else b""
    )
    if raw[8:payload_header_size] != _OUR_LAYOUT:
        other = decode(data)  # foreign layout: the slow, general path
        for t in targets:
            t.add(other)
        return
    first = targets[0]
    layout = _layout(first)
    tools = _merge_tools(*layout)
    try:
        res = _varint_decode(raw, payload_header_size, tools.address, layout[0], 8)
    except Exception:
        tools.scratch.fill(0)  # what it decoded before failing must not reach the next one
        raise
    total = res["total"]
    if total == 0:  # no positive count (then pyhdrh's min_nonzero_index is -1)
        return
    lo, hi = res["min_nonzero_index"], res["max_nonzero_index"] + 1
    src = tools.scratch[lo:hi]
    other_max = tools.high[hi - 1]
    other_min = tools.low[lo]  # 0 for bucket 0
    np_ = tools.np
    for t in targets:
        dst = np_.frombuffer(t.counts, np_.uint64)[lo:hi]
        np_.add(dst, src, out=dst)
        t.total_count += total
        t.max_value = max(t.max_value, other_max)
        t.min_value = min(t.min_value, other_min)  # (get_min_value() reads the same)
    src.fill(0)


_OUR_LAYOUT = bytes(
    PayloadHeader(
        0,
        0,
        0,
        SIGNIFICANT_DIGITS,
        LOWEST_US,
        HIGHEST_US,
        new_histogram().int_to_double_conversion_ratio,
    )
)[8:]
"""The V2 payload header after cookie and length: what every snowload histogram has."""

_COMPRESSED_COOKIES = frozenset(
    (V2_COMPRESSION_COOKIE_BASE | nibble << 4).to_bytes(4, "big") for nibble in range(16)
)
"""The first 4 bytes of a compressed V2 histogram: every cookie whose base
(``get_cookie_base``) is the compressed V2 one."""


class HistogramError(ValueError):
    """Bytes that are not a histogram of snowload's layout in the compressed V2 encoding."""


class Span(NamedTuple):
    """A checked encoded histogram, decoded (:func:`read_span`): its non-zero span of
    counts, from counts index ``lo`` on, and their total. The counts are a view of a
    pooled buffer: :func:`release` gives it back once the span is added."""

    lo: int
    counts: NDArray[np.uint64]
    total: int
    buffer: tuple[NDArray[np.uint64], int]


_new_span = tuple.__new__
"""Span's constructor without NamedTuple's keyword handling (this runs per histogram)."""

_POOL: list[tuple[NDArray[np.uint64], int]] = []
"""Zeroed counts buffers of snowload's layout, with their addresses, for
:func:`read_span` (a report's kinds are decoded before any is added: one buffer each,
reused from report to report)."""
_POOL_KEEP = 32
"""At most this many buffers (184 KiB each) stay pooled between reports."""


def release(span: Span | None) -> None:
    """Zero a span's buffer and give it back to the pool."""
    if span is not None:
        span.counts.fill(0)
        if len(_POOL) < _POOL_KEEP:
            _POOL.append(span.buffer)


def release_all(spans: list[Span | None]) -> None:
    """:func:`release` every span of ``spans``."""
    pool = _POOL
    for span in spans:
        if span is not None:
            span[1].fill(0)  # (Span.counts)
            if len(pool) < _POOL_KEEP:
                pool.append(span[3])  # (Span.buffer)


_MAX_RAW = payload_header_size + 9 * new_histogram().counts_len
"""The longest payload snowload's layout can have (a varint per count, 9 bytes at most):
anything that inflates past it is not one of ours (and is not inflated further)."""

_SMALL_BODY = 1016
"""Compressed bodies up to this size are inflated in one call and their size checked
after: deflate expands at most 1032 to 1, so one inflates to 1 MiB at most. A larger body
is inflated only up to :data:`_MAX_RAW`."""


def read_span(data: bytes) -> Span | None:
    """Check and decode an encoded histogram from outside (a worker's report): None for
    empty bytes or a histogram without counts; :class:`HistogramError` saying what is wrong
    for anything that is not snowload's layout (1 µs to 1 h, 3 significant digits) in the
    compressed V2 encoding: a wrong cookie, a truncated or corrupt body, another layout,
    counts past the layout's range. Costs what :func:`add_encoded` does (one inflate, one
    varint pass); :func:`add_span` then adds it, and :func:`release` frees it."""
    if not data:
        return None
    if data[:4] not in _COMPRESSED_COOKIES:
        raise HistogramError(
            f"not a compressed V2 HdrHistogram (cookie {data[:4].hex() or 'missing'})"
        )
    body = memoryview(data)[ext_header_size:]
    try:
        if len(body) <= _SMALL_BODY:  # inflates to 1 MiB at most: in one call, then bounded
            raw = zlib.decompress(body)
            if len(raw) > _MAX_RAW:
                raise _broken(data, "corrupt compressed body (past the layout's size)")
        else:
            inflate = zlib.decompressobj()
            raw = inflate.decompress(body, _MAX_RAW)
            if not inflate.eof:
                raise _broken(
                    data, "corrupt compressed body (incomplete, or past the layout's size)"
                )
    except zlib.error as e:
        raise _broken(data, f"corrupt compressed body ({e})") from e
    if raw[8:payload_header_size] != _OUR_LAYOUT:
        raise _foreign(raw)
    length = int.from_bytes(raw[4:8], "big")
    if length != len(raw) - payload_header_size:
        raise HistogramError(
            f"truncated: its payload header says {length} bytes of counts, "
            f"{len(raw) - payload_header_size} follow"
        )
    buffer = _POOL.pop() if _POOL else _new_buffer()
    try:
        res = _varint_decode(raw, payload_header_size, buffer[1], _OUR_TOOLS[0], 8)
    except Exception as e:  # (pyhdrh: IndexError past the end; ValueError on bad input)
        buffer[0].fill(0)  # what it decoded before failing must not reach the next one
        _POOL.append(buffer)
        raise HistogramError(f"counts past the layout's range ({e})") from e
    total = res["total"]
    if total == 0:
        _POOL.append(buffer)  # (nothing was written to it)
        return None
    lo = res["min_nonzero_index"]
    return _new_span(Span, (lo, buffer[0][lo : res["max_nonzero_index"] + 1], total, buffer))


def _new_buffer() -> tuple[NDArray[np.uint64], int]:
    np_ = _merge_tools(*_OUR_TOOLS).np
    array = np_.zeros(_OUR_TOOLS[0], np_.uint64)
    return array, array.ctypes.data


def _broken(data: bytes, why: str) -> HistogramError:
    """What is wrong with bytes that did not inflate (only when they did not)."""
    declared = int.from_bytes(data[4:ext_header_size], "big")
    body = len(data) - ext_header_size
    if declared > body:
        return HistogramError(
            f"truncated: its header says {declared} compressed bytes, {body} follow"
        )
    return HistogramError(why)


def _foreign(raw: bytes) -> HistogramError:
    """What is wrong with a payload whose header is not snowload's layout."""
    if len(raw) < payload_header_size:
        return HistogramError(f"payload of {len(raw)} bytes is shorter than its header")
    head = PayloadHeader.from_buffer_copy(raw[:payload_header_size])
    return HistogramError(
        f"layout {head.lowest_trackable_value}..{head.highest_trackable_value} µs with "
        f"{head.significant_figures} significant digits (normalizing offset "
        f"{head.normalizing_index_offset}), not {LOWEST_US}..{HIGHEST_US} µs with "
        f"{SIGNIFICANT_DIGITS}: made by another version of snowload?"
    )


def add_span(targets: list[HdrHistogram], span: Span | None) -> None:
    """Add a :func:`read_span` histogram to every histogram of ``targets`` (all made by
    new_histogram()), exactly as ``add_encoded`` of its bytes would."""
    if span is None or not targets:
        return
    lo, counts, total, _ = span
    hi = lo + len(counts)
    tools = _OURS[0] if _OURS else _ours()
    other_max = tools.high[hi - 1]
    other_min = tools.low[lo]
    np_ = tools.np
    for t in targets:
        dst = np_.frombuffer(t.counts, np_.uint64)[lo:hi]
        np_.add(dst, counts, out=dst)
        t.total_count += total
        t.max_value = max(t.max_value, other_max)
        t.min_value = min(t.min_value, other_min)


_OURS: list[_Merge] = []
"""_merge_tools of snowload's layout, once loaded (a list lookup, not a cached call)."""


def _ours() -> _Merge:
    _OURS.append(_merge_tools(*_OUR_TOOLS))
    return _OURS[0]


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
    ``get_value_at_percentile`` (highest equivalent value of the bucket) and its
    ``get_mean_value``, read in one pass over the recorded span with vectorised loops
    (cumulative sum, binary search, integer dot product) instead of per-bucket method
    calls. Every value is read from the same histogram, so p50 <= p95 <= p99 <= max
    always holds."""
    count = int(hist.get_total_count())
    if count == 0:
        return Percentiles(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    layout = _layout(hist)
    tools = _merge_tools(*layout)
    np_ = tools.np
    lo, hi = _span_bounds(hist)
    counts = np_.frombuffer(hist.counts, np_.uint64)[lo:hi]
    ranks = [max(1, int(p * count / 100 + 0.5)) for p in _READ]
    at = np_.searchsorted(np_.cumsum(counts), ranks, side="left").tolist()
    high = tools.high
    values = [high[lo + i] for i in at]  # rank <= count: i is within the span
    if count * high[hi - 1] < 1 << 64:  # the dot product cannot wrap: exact
        weighted = int(np_.dot(counts, tools.mid_array[lo:hi]))
    else:
        weighted = sum(map(operator.mul, counts.tolist(), itertools.islice(tools.mid, lo, None)))
    return Percentiles(
        count=count,
        p50_ms=values[0] / 1000.0,
        p95_ms=values[1] / 1000.0,
        p99_ms=values[2] / 1000.0,
        max_ms=float(hist.get_max_value()) / 1000.0,
        min_ms=float(hist.get_min_value()) / 1000.0,
        mean_ms=weighted / count / 1000.0,
    )


_READ = (50.0, 95.0, 99.0)
"""The percentiles :func:`percentiles` reads."""


def value_at_percentiles(hist: HdrHistogram, wanted: tuple[float, ...]) -> dict[float, int]:
    """HdrHistogram's get_value_at_percentile for several percentiles in one pass."""
    if not hist.get_total_count():
        return dict.fromkeys(wanted, 0)
    lo, counts = _span(hist)
    return _at_ranks(hist, lo, counts, wanted)


def _span(hist: HdrHistogram) -> tuple[int, list[int]]:
    """(first index, counts) between the buckets of the smallest and the largest
    recorded value."""
    lo, hi = _span_bounds(hist)
    # new_histogram() and decode() make 64-bit counts
    view = memoryview(hist.counts).cast("B").cast("Q")
    return lo, view[lo:hi].tolist()


def _span_bounds(hist: HdrHistogram) -> tuple[int, int]:
    """[first, last + 1) counts indexes around the smallest and the largest recorded
    value (a bucket to spare on each side)."""
    n = min(hist.counts_len, hist.encoder.payload.counts_len)
    lo = max(0, hist.get_counts_array_index(hist.get_min_value()) - 1)
    hi = min(n, hist.get_counts_array_index(hist.get_max_value()) + 2)
    return lo, hi


def _at_ranks(
    hist: HdrHistogram, lo: int, counts: list[int], wanted: tuple[float, ...]
) -> dict[float, int]:
    total = int(hist.get_total_count())
    cumulative = list(itertools.accumulate(counts))
    low, high, _ = _bounds(*_layout(hist))
    out: dict[float, int] = {}
    for p in wanted:
        # as get_value_at_percentile: p capped at 100; p 0 is the lowest equivalent value
        rank = max(1, int(min(p, 100.0) * total / 100 + 0.5))
        i = bisect.bisect_left(cumulative, rank)
        out[p] = (high if p else low)[lo + i]  # rank <= total: i is within the span
    return out


def _layout(hist: HdrHistogram) -> tuple[int, int, int, int]:
    return (
        hist.counts_len,
        hist.sub_bucket_half_count_magnitude,
        hist.sub_bucket_half_count,
        hist.unit_magnitude,
    )


_OUR_TOOLS = _layout(new_histogram())
"""The counts layout of every snowload histogram (what :func:`_merge_tools` takes)."""


@functools.cache
def _bounds(
    counts_len: int, half_mag: int, half: int, unit: int
) -> tuple[list[int], list[int], list[int]]:
    """Per counts index: the lowest, highest and median equivalent value (hdrh's methods,
    inlined): bucket b, sub-bucket s hold the values [s << (b + u), (s + 1) << (b + u))."""
    low, high, mid = [], [], []
    for index in range(counts_len):
        bucket = (index >> half_mag) - 1
        sub = (index & (half - 1)) + half
        if bucket < 0:
            sub -= half
            bucket = 0
        shift = bucket + unit
        first = sub << shift
        low.append(first)
        high.append(first + (1 << shift) - 1)
        mid.append(first + ((1 << shift) >> 1))
    return low, high, mid


SPECTRUM = (50.0, 90.0, 95.0, 99.0, 99.9, 99.99)
"""The percentiles of a tail table (runs show --percentiles, the TUI's Percentiles tab)."""


def spectrum(data: bytes) -> dict[str, float]:
    """{"p50": ms, ..., "p99.99": ms, "max": ms, "count": n} of an encoded histogram (empty
    for an empty one), with HdrHistogram's percentile semantics."""
    hist = decode(data)
    count = int(hist.get_total_count())
    if not count:
        return {}
    values = value_at_percentiles(hist, SPECTRUM)
    row = {f"p{p:g}": values[p] / 1000.0 for p in SPECTRUM}
    row["max"] = hist.get_max_value() / 1000.0
    row["count"] = float(count)
    return row


def recorded(data: bytes) -> list[tuple[int, int]]:
    """(highest equivalent value in µs, count) of every non-empty bucket of an encoded
    histogram, ascending: what a percentile of merged histograms is read from (the value
    ``get_value_at_percentile`` would return for a rank falling in that bucket)."""
    return recorded_of(decode(data)) if data else []


def recorded_of(hist: HdrHistogram) -> list[tuple[int, int]]:
    """:func:`recorded` of a histogram."""
    if not hist.get_total_count():
        return []
    lo, counts = _span(hist)
    high = _bounds(*_layout(hist))[1]
    return [(high[lo + i], c) for i, c in enumerate(counts) if c]
