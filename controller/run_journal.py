"""Which of a run's sealed seconds still have to reach the results store (written by
controller/seconds_writer.py while the run goes on; the end of the run adds only its
totals and verdicts).

A second is handed to the writer once it is sealed; a report that arrives late for a
sealed second changes it, and it is handed over again. A batch the store refused goes
back into the pending seconds and is tried again with the next one; the first refusal
is reported in the run's warnings (and every one in the log).
"""

from __future__ import annotations

from controller.metric_cells import SeriesPoint
from controller.metrics import RunMetrics
from controller.seconds_writer import Outcome
from controller.store import StoredSecond

KEEP_SECONDS = 300
"""Sealed seconds kept in memory once stored (the live views need the last 30; a
find-max step's window is kept whole)."""
FLUSH_INTERVAL_S = 1.0
"""How often sealed seconds are handed to the writer (a second is stored within about
this plus the writer's transaction after it is sealed)."""


def stored_second(point: SeriesPoint) -> StoredSecond:
    """A sealed second as the store keeps it."""
    assert point.proto is not None, "only sealed seconds are stored"
    start = point.end_ns - int((point.duration_s or 1.0) * 1e9)
    return StoredSecond(
        point.proto,
        start,
        point.end_ns,
        point.overall_encoded,
        dict(point.packed),
        dict(point.packed_schedules),
    )


class RunJournal:
    def __init__(self, metrics: RunMetrics, keep: int = KEEP_SECONDS) -> None:
        self.metrics = metrics
        self.keep = keep
        """Stored seconds older than this many seconds leave memory."""
        self.forgotten_upto = 0
        self.handed_upto = 0
        """Every sealed second up to this one was handed to the writer at least once."""
        self.pending: set[int] = set()
        """Seconds to hand over (again): changed by a late report, or refused."""
        self.in_flight: set[int] = set()
        self.stored: set[int] = set()
        """Seconds the store confirmed (and not changed since)."""
        self.error = ""
        """The store's first refusal, if any."""

    def changed(self, second: int) -> None:
        """A report for a second that was already sealed changed it (one that left memory
        cannot be written again: the totals have the report, its stored second not)."""
        if second <= self.forgotten_upto:
            self.metrics.forget([second])
        elif second <= self.handed_upto:
            self.pending.add(second)
            self.stored.discard(second)

    def take(self) -> list[StoredSecond]:
        """The sealed seconds to hand to the writer now."""
        upto = self.metrics.sealed_upto
        numbers = sorted(self.pending | set(range(self.handed_upto + 1, upto + 1)))
        self.handed_upto = max(self.handed_upto, upto)
        out = []
        self.pending = set()
        for second in numbers:
            point = self.metrics.series.get(second)
            if point is None:
                continue  # (no worker reported it: nothing to store)
            if not point.sealed:
                self.pending.add(second)
                continue
            out.append(stored_second(point))
            self.in_flight.add(second)
        return out

    def settled(self, outcome: Outcome) -> str:
        """Note what the writer did with a batch; the error to report, once."""
        self.in_flight.difference_update(outcome.seconds)
        if not outcome.error:
            self.stored.update(outcome.seconds)
            return ""
        self.pending.update(outcome.seconds)
        if self.error:
            return ""
        self.error = outcome.error
        return outcome.error

    def forget_old(self) -> None:
        """Drop the stored seconds older than the window from memory."""
        upto = self.metrics.sealed_upto - self.keep
        old = sorted(s for s in self.stored if s <= upto)
        if old:
            self.metrics.forget(old)
            self.stored.difference_update(old)
            self.forgotten_upto = max(self.forgotten_upto, old[-1])

    @property
    def unwritten(self) -> int:
        return len(self.pending) + len(self.in_flight) + self.metrics.sealed_upto - self.handed_upto
