"""Open mode: intended start times at a target rate, constant or Poisson."""

from __future__ import annotations

import random
import threading
import time

DROPPED = 0xF0
MAX_WAIT_NS = 50_000_000
"""Open mode: threads wait for a slot in steps of at most this, to notice rate changes."""
LATE_NS = 10_000_000
"""Open mode: a query that starts more than 10 ms behind its schedule counts as late."""


class Schedule:
    """Open mode: intended start times at a target rate, constant or Poisson.

    Connection threads take the next slot when they are free; a slot in the past is
    started at once and its latency is still measured from the slot (no coordinated
    omission). Changing the rate re-bases the schedule at the current time."""

    def __init__(self, rate: float, poisson: bool, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rnd = random.Random(seed)
        self.poisson = poisson
        self.rate = 0.0
        self._next_ns = 0
        self.generation = 0
        """Bumped on every rate change: a thread waiting for an older slot drops it."""
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        with self._lock:
            now = time.perf_counter_ns()
            self.rate = max(0.0, rate)
            self.generation += 1
            if not self.rate:
                self._next_ns = now
                return
            # a backlog (next slot in the past) is kept; a slot far ahead, left by a lower
            # rate, comes in to one new interval from now
            self._next_ns = min(self._next_ns or now, now + int(1e9 / self.rate))

    def start(self, at_ns: int | None = None) -> None:
        """The first slot is at ``at_ns`` (perf ns: the planned load start), or now."""
        with self._lock:
            self._next_ns = time.perf_counter_ns() if at_ns is None else at_ns

    def next(self) -> int:
        """The next intended start (perf_counter ns), or -1 while the rate is 0."""
        with self._lock:
            if not self.rate:
                return -1
            slot = self._next_ns
            gap = self._rnd.expovariate(self.rate) if self.poisson else 1.0 / self.rate
            self._next_ns = slot + int(gap * 1e9)
            return slot
