"""HDR histogram helpers shared by workers (record, encode) and the controller (merge).

Latencies are recorded in microseconds, from 1 µs to one hour, with 3 significant digits.
The wire carries the HdrHistogram V2 compressed encoding (raw bytes, not base64), which
HdrHistogram's own tools read too.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

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


def merge_into(target: HdrHistogram, data: bytes) -> None:
    """Add an encoded histogram to ``target`` exactly (bucket counts add up)."""
    if data:
        target.decode_and_add(base64.b64encode(data))


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
    values = value_at_percentiles(hist, (50.0, 95.0, 99.0))
    return Percentiles(
        count=count,
        p50_ms=values[50.0] / 1000.0,
        p95_ms=values[95.0] / 1000.0,
        p99_ms=values[99.0] / 1000.0,
        max_ms=float(hist.get_max_value()) / 1000.0,
        min_ms=float(hist.get_min_value()) / 1000.0,
        mean_ms=_mean(hist) / 1000.0,
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


def value_at_percentiles(hist: HdrHistogram, wanted: tuple[float, ...]) -> dict[float, int]:
    total = int(hist.get_total_count())
    targets = sorted((max(1, int(p * total / 100 + 0.5)), p) for p in wanted)
    out: dict[float, int] = {}
    seen = 0
    t = 0
    for index, c in _nonzero(hist):
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


def _mean(hist: HdrHistogram) -> float:
    total = int(hist.get_total_count())
    acc = 0
    for index, c in _nonzero(hist):
        acc += c * hist._hdr_median_equiv_value(hist.get_value_from_index(index))
    return acc / total if total else 0.0
