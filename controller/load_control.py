"""How much load to ask for, and from whom: stage ramps, splitting a level across workers,
and the find-max step search. Pure code; the orchestrator does the I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from snowload.v1 import common_pb2
from snowload.workload import FindMax, Stage, StepBy


def stage_target(stages: Sequence[Stage], elapsed_s: float, initial: float) -> float:
    """Where a k6-style ramp is after ``elapsed_s``: each stage moves linearly from the
    previous stage's target (``initial`` before the first) to its own."""
    start = initial
    for stage in stages:
        end = float(stage.connections if stage.connections is not None else stage.rate or 0.0)
        if elapsed_s < stage.duration_s:
            return start + (end - start) * (elapsed_s / stage.duration_s)
        elapsed_s -= stage.duration_s
        start = end
    return start


def split_connections(level: int, shares: Sequence[int]) -> list[int]:
    """Spread ``level`` connections over workers evenly, never above a worker's share."""
    out = [0] * len(shares)
    remaining = max(0, level)
    open_ = [i for i, s in enumerate(shares) if s > 0]
    while remaining > 0 and open_:
        each, extra = divmod(remaining, len(open_))
        nxt = []
        for rank, i in enumerate(open_):
            want = each + (1 if rank < extra else 0)
            take = min(want, shares[i] - out[i])
            out[i] += take
            remaining -= take
            if out[i] < shares[i]:
                nxt.append(i)
        # a worker still open took all it was offered: if every one did, nothing remains
        open_ = nxt
    return out


def split_rate(rate: float, workers: int) -> list[float]:
    return [rate / workers] * workers if workers else []


@dataclass
class StepResult:
    level: float
    stats: common_pb2.LatencyStats
    error_rate: float
    stable: bool
    reason: str


@dataclass
class FindMaxSearch:
    """Step up from ``start`` by ``step``; on the first degraded step, back off to the best
    stable level and bisect toward the degraded one; conclude with a plain reason."""

    config: FindMax
    steps: list[StepResult] = field(default_factory=list)
    best: StepResult | None = None
    baseline_p95: float | None = None
    failed_level: float | None = None
    failed_reason: str = ""
    concluded: bool = False
    reason: str = ""

    @property
    def unit(self) -> str:
        return "connections" if self.config.by is StepBy.CONNECTIONS else "queries/s"

    def _granularity(self) -> float:
        return 1.0 if self.config.by is StepBy.CONNECTIONS else max(1.0, self.config.step / 8)

    def next_level(self) -> float | None:
        if self.concluded:
            return None
        c = self.config
        if not self.steps:
            return c.start
        if self.failed_level is None:
            nxt = self.steps[-1].level + c.step
            if nxt > c.max:
                self._conclude(f"reached the maximum ({c.max:g} {self.unit}) without degrading")
                return None
            return nxt
        lo = self.best.level if self.best is not None else 0.0
        hi = self.failed_level
        mid = (lo + hi) / 2
        if self.config.by is StepBy.CONNECTIONS:
            mid = float(int(mid))
        if hi - lo <= self._granularity() or mid <= lo:
            self._conclude(self.failed_reason)
            return None
        return mid

    def record(self, level: float, stats: common_pb2.LatencyStats) -> StepResult:
        c = self.config
        error_rate = stats.errors / stats.count if stats.count else 1.0
        if self.baseline_p95 is None and stats.count:
            self.baseline_p95 = stats.p95_ms
        reason = ""
        gain = None
        if self.best is not None and level > self.best.level and self.best.stats.qps:
            gain = stats.qps / self.best.stats.qps - 1
        if error_rate > c.max_error_rate:
            reason = f"error rate {error_rate:.1%} at {level:g} {self.unit}"
        elif gain is not None and self.best is not None and gain < c.min_gain:
            reason = (
                f"throughput stopped growing at {level:g} {self.unit} "
                f"({stats.qps:,.0f} vs {self.best.stats.qps:,.0f} queries/s)"
            )
        elif self.baseline_p95 and stats.p95_ms > self.baseline_p95 * (1 + c.p95_drift):
            drift = stats.p95_ms / self.baseline_p95 - 1
            reason = f"p95 drifted {drift:.0%} above baseline at {level:g} {self.unit}"
        result = StepResult(level, stats, error_rate, not reason, reason)
        self.steps.append(result)
        if result.stable:
            if self.best is None or level > self.best.level:
                self.best = result
        elif self.failed_level is None or level < self.failed_level:
            self.failed_level = level
            self.failed_reason = reason
        return result

    def _conclude(self, reason: str) -> None:
        self.concluded = True
        self.reason = reason

    def to_proto(self) -> common_pb2.FindMaxResult:
        out = common_pb2.FindMaxResult(
            by=self.config.by.value, concluded=self.concluded, reason=self.reason
        )
        for s in self.steps:
            out.steps.append(
                common_pb2.FindMaxStep(
                    level=s.level,
                    stats=s.stats,
                    error_rate=s.error_rate,
                    verdict="stable" if s.stable else "degraded",
                    reason=s.reason,
                )
            )
        if self.best is not None:
            out.best_level = self.best.level
            out.best.CopyFrom(self.best.stats)
        return out
