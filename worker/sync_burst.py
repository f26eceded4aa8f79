"""The clock-sync burst after Welcome: how many round trips, how far apart.

A worker needs a clock offset before READY (the plan's instants are mapped with it), so
right after Welcome it sends Heartbeats and keeps the Pong with the best round trip
(worker/clock.py). Every worker of a fleet starts this at about the same moment, so it is
bounded: SYNC_MIN round trips nearly back to back, then more only while
the estimate is not within SYNC_TARGET_NS, spaced by at least SYNC_GAP_NS and the last
round trip (jittered: a busy controller is asked less often, and workers that attached
together drift apart), at most SYNC_MAX of them and (with an estimate) for at most
SYNC_BUDGET_NS; READY waits for it. After that the regular heartbeats (one a second
while idle) go on improving the estimate: a faster trickle for every worker of a fleet at
once loaded the controller of 64 workers on a busy host more than it helped their clocks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SYNC_MIN = 8
"""Round trips always made, nearly back to back (SYNC_MIN_GAP_NS): the best of a few (a
lone one may meet a busy controller), before anything changes."""
SYNC_MIN_GAP_NS = (2_000_000, 10_000_000)
"""The time between those first round trips: uniform in this range."""
SYNC_MAX = 24
"""Round trips at most."""
SYNC_TARGET_NS = 250_000
"""After SYNC_MIN, more round trips only while the estimate is known less well."""
SYNC_BUDGET_NS = 2_000_000_000
"""The burst ends this long after the first round trip (once an estimate exists)."""
SYNC_GAP_NS = 10_000_000
"""The least time between two round trips after the first SYNC_MIN (before jitter)."""


@dataclass(frozen=True)
class SyncBurst:
    """The burst's rule; asked after each round trip."""

    minimum: int = SYNC_MIN
    maximum: int = SYNC_MAX
    target_ns: int = SYNC_TARGET_NS
    budget_ns: int = SYNC_BUDGET_NS
    gap_ns: int = SYNC_GAP_NS

    def exhausted(self, sent: int, elapsed_ns: int, *, known: bool) -> bool:
        """After ``sent`` round trips, ``elapsed_ns`` after the first was sent: is the
        burst over without reaching its target?"""
        return sent >= self.maximum or (known and elapsed_ns >= self.budget_ns)

    def next_gap_ns(
        self,
        sent: int,
        elapsed_ns: int,
        *,
        known: bool,
        uncertainty_ns: int,
        last_rtt_ns: int,
        rnd: random.Random | None = None,
    ) -> int | None:
        """How long to wait before the next round trip, or None when the burst is over."""
        uniform = (rnd or random).uniform
        if known and sent >= self.minimum and uncertainty_ns <= self.target_ns:
            return None
        if sent < self.minimum:
            return round(uniform(*SYNC_MIN_GAP_NS))
        if self.exhausted(sent, elapsed_ns, known=known):
            return None
        return round(max(self.gap_ns, last_rtt_ns) * uniform(0.5, 1.5))
