"""A run's Snowflake warehouse samples in bounded memory: the first one (the run's
warehouse snapshot) and the credits burnt between the first sample and any later instant,
each sample's state holding until the next one.

The setup worker attaches its latest sample to every interval report, so a week-long run
delivers about 600,000 of them. Only the newest ``WINDOW`` (in sample-time order) are
kept; an older one is folded into a running credit sum with the sample that follows it,
in time order, so the total is the very sum a list of every sample would give. A sample
that arrives older than the oldest one kept (it cannot while one worker polls in order)
would change a folded pair: it is counted in ``late`` and left out.
"""

from __future__ import annotations

import bisect

from snowload.credits import credits_between
from snowload.v1 import common_pb2

WINDOW = 64
"""Samples kept unfolded (a minute of reports or more: out-of-order arrival fits in it)."""


def _time(sample: common_pb2.WarehouseSample) -> int:
    return int(sample.sample_time.ToNanoseconds())


class WarehouseLedger:
    def __init__(self, window: int = WINDOW) -> None:
        self.window = max(2, window)
        self.first: common_pb2.WarehouseSample | None = None
        """The first sample received (the run's warehouse snapshot)."""
        self.count = 0
        """Samples received and counted."""
        self.late = 0
        """Samples left out: older than the oldest sample kept."""
        self._kept: list[common_pb2.WarehouseSample] = []
        """The newest samples, in sample-time order (arrival order among equal times)."""
        self._folded_credits = 0.0
        """Credits of every folded sample up to the sample after it."""
        self._folded = False

    def __bool__(self) -> bool:
        return self.first is not None

    def add(self, sample: common_pb2.WarehouseSample) -> None:
        if self.first is None:
            self.first = sample
        if self._folded and _time(sample) < _time(self._kept[0]):
            self.late += 1
            return
        self.count += 1
        bisect.insort_right(self._kept, sample, key=_time)
        while len(self._kept) > self.window:
            a, b = self._kept[0], self._kept[1]
            self._folded_credits += credits_between(a, max(0, _time(b) - _time(a)) / 1e9)
            del self._kept[0]
            self._folded = True

    def credits(self, until_ns: int) -> float:
        """Credits between the first sample and ``until_ns`` (each sample's state holds
        until the next one; an end before the last sample adds nothing after it)."""
        total = self._folded_credits
        kept = self._kept
        for a, b in zip(kept, [*kept[1:], None], strict=True):
            end = _time(b) if b is not None else until_ns
            total += credits_between(a, max(0, end - _time(a)) / 1e9)
        return total

    def kept(self) -> list[common_pb2.WarehouseSample]:
        """The samples still held, oldest first."""
        return list(self._kept)
