"""A statement longer than the histograms' range still counts.

hdrh refuses a value past a histogram's range (``record_value`` returns False and records
nothing), and a cell's count is its histogram's total: unclamped, a statement of more than
about 71 minutes would vanish from the count as well as from the latencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from snowload import hdr
from snowload.v1 import common_pb2
from worker.collection import LAT_SHIFT, PHASE_SHIFT, collect
from worker.schedule import DROPPED

HOUR_US = 3_600_000_000
MEASURING = common_pb2.STATE_MEASUREMENT


@dataclass
class Lists:
    """A connection thread's lists, as worker/connection.py fills them."""

    samples: list[int] = field(default_factory=list)
    issued: list[int] = field(default_factory=list)
    service: list[int] = field(default_factory=list)
    lags: list[int] = field(default_factory=list)
    errors: list[tuple[int, str, str, int]] = field(default_factory=list)


def test_hdrh_itself_refuses_what_is_past_the_range() -> None:
    """The premise: without the clamp the value is lost."""
    h = HdrHistogram(hdr.LOWEST_US, hdr.HIGHEST_US, hdr.SIGNIFICANT_DIGITS)
    assert not h.record_value(1 << 40)
    assert h.get_total_count() == 0


def test_record_clamps_to_the_range_and_keeps_every_count() -> None:
    values = [0, 5, HOUR_US, HOUR_US + 1, 2 * HOUR_US, 1 << 40, -3]
    h = hdr.new_histogram()
    for v in values:
        hdr.record(h, v)
    hdr.record(h, 3 * HOUR_US, 4)
    oracle = HdrHistogram(hdr.LOWEST_US, hdr.HIGHEST_US, hdr.SIGNIFICANT_DIGITS)
    for v in [0, 5, HOUR_US, HOUR_US, HOUR_US, HOUR_US, 0] + [HOUR_US] * 4:
        assert oracle.record_value(v)
    assert h.get_total_count() == len(values) + 4
    assert h.get_max_value() == oracle.get_max_value()
    assert h.get_min_value() == 0
    assert h.get_mean_value() == oracle.get_mean_value()


def test_a_two_hour_statement_counts_in_its_interval() -> None:
    kind, key = 3, MEASURING << PHASE_SHIFT | 3
    t = Lists()
    for lat_us in (1_500, 2 * HOUR_US, 7 * 24 * HOUR_US):
        t.issued.append(len(t.issued))
        t.samples.append(lat_us << LAT_SHIFT | key)
        t.service.append(lat_us << LAT_SHIFT | key)
    lag_key = (5 * HOUR_US) << 8 | MEASURING
    t.lags += [lag_key, (1 << 8) | MEASURING, DROPPED | MEASURING]
    cells, schedule = collect([t], open_mode=True)
    cell = cells[(MEASURING, kind)]
    assert cell.count == 3
    assert cell.service is not None and cell.service.get_total_count() == 3
    assert cell.histogram.get_max_value() >= HOUR_US
    assert cell.histogram.get_value_at_percentile(1) <= 1_501
    sched = schedule[MEASURING]
    assert sched.lag.get_total_count() == 2
    assert (sched.late, sched.dropped) == (1, 1)
