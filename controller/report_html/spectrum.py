"""The latency spectrum of a histogram as HdrHistogram's plotter draws it: the value at
percentile p against 1/(1-p) on a log axis, so that each decade of the x axis is one more
nine (90%, 99%, 99.9%, ...) and the tail gets the room it deserves."""

from __future__ import annotations

from snowload import hdr

TICKS_PER_HALF = 5
"""Percentiles per halving of the distance to 100% (HdrHistogram's
``outputPercentileDistribution`` default)."""

NINES = (
    *((1.0, "0%"), (2.0, "50%"), (10.0, "90%"), (100.0, "99%"), (1e3, "99.9%")),
    *((1e4, "99.99%"), (1e5, "99.999%"), (1e6, "99.9999%"), (1e7, "99.99999%")),
)
"""x-axis ticks: 1/(1-p) named by its percentile."""


def percentiles(count: int, per_half: int = TICKS_PER_HALF) -> list[float]:
    """0, then ``per_half`` steps per halving of the distance to 100%, while 1/(1-p)
    stays within the count (beyond it the histogram holds no more detail)."""
    out: list[float] = []
    i = 0
    while True:
        remaining = 0.5 ** (i / per_half)
        if 1.0 / remaining > max(count, 1):
            return out
        out.append(100.0 * (1.0 - remaining))
        i += 1


def points(data: bytes, per_half: int = TICKS_PER_HALF) -> list[tuple[float, float]]:
    """(1/(1-p), value in ms) for each percentile of :func:`percentiles`, read with
    HdrHistogram's percentile semantics."""
    hist = hdr.decode(data)
    count = int(hist.get_total_count())
    if not count:
        return []
    wanted = tuple(percentiles(count, per_half))
    values = hdr.value_at_percentiles(hist, wanted)
    return [(100.0 / (100.0 - p), values[p] / 1000.0) for p in wanted]
