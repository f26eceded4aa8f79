"""The worker's clock: its wall time, and the controller's clock mapped onto it.

Everything the worker puts on the wire (heartbeat send times, report times, ack times)
is read from one clock, ``now_ns()``: the monotonic ``time.perf_counter_ns()`` plus a
base fixed at start-up (wall time then). So the worker's wall clock never steps, and an
instant converts to the perf-counter timeline the hot loop reads without a second clock.

The offset (controller clock - worker clock) comes from Heartbeat/Pong round trips:
``offset = t1 - (t0 + t3) / 2`` with t0 the send time, t1 the controller's receive time,
t3 the Pong's arrival. Its error is at most half the round trip, so the estimate is the
sample with the smallest round trip among the recent ones (the best-RTT filter of NTP's
clock filter), and its uncertainty is half that round trip.

``SNOWLOAD_TEST_CLOCK_SKEW_MS`` (float, may be negative; read once at start-up) shifts
the worker's clock by that many milliseconds, for tests that check that the offset
estimate absorbs a skewed clock.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

SKEW_ENV = "SNOWLOAD_TEST_CLOCK_SKEW_MS"
SAMPLES = 64
"""At most this many recent round trips are kept ..."""
WINDOW_NS = 60_000_000_000
"""... and none older than this (the clocks drift apart slowly; a stale sample goes)."""
UNCERTAINTY_WARN_NS = 10_000_000
"""An offset known less well than this (10 ms) is worth a warning in the run."""


def _skew_ns() -> int:
    raw = os.environ.get(SKEW_ENV, "").strip()
    if not raw:
        return 0
    try:
        return int(float(raw) * 1e6)
    except ValueError:
        return 0


_BASE_NS = time.time_ns() - time.perf_counter_ns() + _skew_ns()


def now_ns() -> int:
    """The worker's wall clock (ns since the epoch), monotonic."""
    return time.perf_counter_ns() + _BASE_NS


def now_ts() -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(now_ns())
    return ts


def wall_to_perf(wall_ns: int) -> int:
    """A worker-clock instant on the perf-counter timeline."""
    return wall_ns - _BASE_NS


def perf_to_wall(perf_ns: int) -> int:
    return perf_ns + _BASE_NS


@dataclass(frozen=True)
class Sample:
    offset_ns: int
    rtt_ns: int


class ClockSync:
    """The offset estimate from recent Heartbeat/Pong round trips."""

    def __init__(self, samples: int = SAMPLES, window_ns: int = WINDOW_NS) -> None:
        self._samples: deque[tuple[int, Sample]] = deque(maxlen=samples)
        self._window_ns = window_ns
        self.best: Sample | None = None

    def add(self, sent_ns: int, controller_ns: int, received_ns: int) -> Sample:
        """One round trip: sent and received on this clock, controller_ns on the other."""
        rtt = max(0, received_ns - sent_ns)
        sample = Sample(controller_ns - (sent_ns + received_ns) // 2, rtt)
        self._samples.append((received_ns, sample))
        while self._samples and received_ns - self._samples[0][0] > self._window_ns:
            self._samples.popleft()
        self.best = min((s for _, s in self._samples), key=lambda s: s.rtt_ns)
        return sample

    @property
    def known(self) -> bool:
        return self.best is not None

    @property
    def offset_ns(self) -> int:
        """controller clock - worker clock (0 until a Pong arrived)."""
        return self.best.offset_ns if self.best is not None else 0

    @property
    def uncertainty_ns(self) -> int:
        return self.best.rtt_ns // 2 if self.best is not None else 0

    @property
    def rtt_ns(self) -> int:
        return self.best.rtt_ns if self.best is not None else 0

    def to_perf(self, controller_ns: int) -> int:
        """A controller-clock instant on this process's perf-counter timeline."""
        return wall_to_perf(controller_ns - self.offset_ns)

    def to_controller(self, perf_ns: int) -> int:
        return perf_to_wall(perf_ns) + self.offset_ns
