"""A run's phase boundaries on this process's perf-counter timeline.

The controller sends its plan (load start, MEASUREMENT start, measurement end) as
instants on its own clock; the worker maps them with its clock offset once and hands the
connection threads an immutable ``Boundaries``. A thread asks ``phase_at`` only when its
issue time reaches ``next_edge`` (one integer comparison per query), so every query is
tagged, recorded and stopped by the same instant whatever a command's arrival time.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

from snowload.v1 import common_pb2

NEVER = 1 << 62
"""An instant that does not come (perf ns)."""
BEFORE_LOAD = common_pb2.STATE_PREPARING
"""phase_at before the load starts: nothing is issued yet."""
AFTER_END = common_pb2.STATE_PROCESSING
"""phase_at at or after the measurement end: nothing is issued any more."""


@dataclass(frozen=True)
class Boundaries:
    """Edges ``(perf_ns, phase)`` in time order; the load ends at ``end``."""

    edges: tuple[tuple[int, int], ...]
    end: int = NEVER

    @classmethod
    def from_plan(cls, plan: common_pb2.PhasePlan, to_perf: Callable[[int], int]) -> Boundaries:
        edges: list[tuple[int, int]] = []
        load = plan.load_start_time.ToNanoseconds()
        measure = plan.measurement_start_time.ToNanoseconds()
        if plan.HasField("load_start_time") and load < measure:
            edges.append((to_perf(load), common_pb2.STATE_WARMUP))
        if plan.HasField("measurement_start_time"):
            edges.append((to_perf(measure), common_pb2.STATE_MEASUREMENT))
        end = (
            to_perf(plan.measurement_end_time.ToNanoseconds())
            if plan.HasField("measurement_end_time")
            else NEVER
        )
        return cls(tuple(edges), end)

    @classmethod
    def from_now(cls, phase: int, now: int) -> Boundaries:
        """Without a plan (a bare executor in benchmarks): ``phase`` from ``now`` on."""
        return cls(((now, phase),))

    @property
    def load_start(self) -> int:
        return self.edges[0][0] if self.edges else NEVER

    @property
    def measurement_start(self) -> int:
        for at, phase in self.edges:
            if phase == common_pb2.STATE_MEASUREMENT:
                return at
        return NEVER

    def phase_at(self, t: int) -> int:
        """The phase of a query issued (intended) at perf ns ``t``."""
        if t >= self.end:
            return AFTER_END
        i = bisect.bisect_right(self.edges, (t, 1 << 30))
        return self.edges[i - 1][1] if i else BEFORE_LOAD

    def next_edge(self, t: int) -> int:
        """The first boundary after ``t`` (the end included), NEVER if none."""
        for at, _ in self.edges:
            if at > t:
                return min(at, self.end)
        return self.end if self.end > t else NEVER

    def remapped(self, fresh: Boundaries, now: int) -> Boundaries:
        """``fresh`` (the same instants mapped with a newer clock offset) for the instants
        still ahead of ``now``; one the threads already met stays where they met it, so
        that the boundaries keep saying where they switched and stopped (moved back, a
        passed MEASUREMENT edge would send them back to WARMUP for a moment)."""
        if len(fresh.edges) == len(self.edges):
            edges: list[tuple[int, int]] = []
            for old, new in zip(self.edges, fresh.edges, strict=True):
                at, phase = old if old[0] <= now else new
                edges.append((max(at, edges[-1][0]) if edges else at, phase))
            kept = tuple(edges)
        else:
            kept = fresh.edges
        return Boundaries(kept, self.end if self.end <= now else fresh.end)

    def ending_at(self, end: int) -> Boundaries:
        """The same plan, ending no later than ``end`` (an unplanned stop)."""
        return Boundaries(self.edges, min(self.end, end))

    def with_phase(self, phase: int, at: int) -> Boundaries:
        """``phase`` from ``at`` on (a SetPhase instant); a repeated edge changes nothing."""
        if (at, phase) in self.edges:
            return self
        kept = tuple(e for e in self.edges if e[0] < at and e[1] != phase)
        return Boundaries((*kept, (at, phase)), self.end)


def plan_end_ns(plan: common_pb2.PhasePlan) -> int:
    """The plan's measurement end (controller clock), 0 if it has none."""
    return plan.measurement_end_time.ToNanoseconds() if plan.HasField("measurement_end_time") else 0


def same_instants(a: common_pb2.PhasePlan, b: common_pb2.PhasePlan) -> bool:
    """Whether two plans place the same boundaries at the same instants."""
    return Boundaries.from_plan(a, int) == Boundaries.from_plan(b, int)
