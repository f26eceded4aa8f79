"""A run's phase plan: its boundaries as instants on the controller's clock.

Once every worker is READY the controller fixes the load start a short lead ahead and
every boundary it already knows from there (MEASUREMENT start, measurement end). The
lead covers sending Start to every worker: a few of their measured round trips plus
twice what a fan-out to them measurably takes (from queueing to the last worker applying
it, by its Ack: the run's Assign, moments earlier, and these workers' last Start, so a
late Start lengthens the next lead), never under 50 ms nor over 2 s. Pure code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from snowload.v1 import common_pb2

LEAD_MIN_NS = 50_000_000
LEAD_MAX_NS = 2_000_000_000
LEAD_ROUND_TRIPS = 4
FANOUT_MARGIN = 2
"""The fan-out allowance: this many times the measured fan-out (``fanout_ns``)."""
FANOUT_PER_WORKER_NS = 1_500_000
"""Per worker, when no fan-out was measured: Start reaches 64 worker processes sharing
2 cores over 40-80 ms (docs/benchmarks.md, planned boundaries); at 0.2 ms per worker a
third of them got it after its instant, at 1.5 ms none did."""
FANOUT_KINDS = ("assign", "start")
UNKNOWN_RTT_NS = 20_000_000
"""Assumed for a worker that has not measured a round trip yet."""


def lead_ns(round_trips_ns: Iterable[int], workers: int, fanout_ns: int = 0) -> int:
    """How far ahead of now the load start goes; ``fanout_ns`` is the measured time a
    command to all these workers took to reach the last (0: not measured)."""
    worst = max((rtt or UNKNOWN_RTT_NS for rtt in round_trips_ns), default=UNKNOWN_RTT_NS)
    fanout = FANOUT_MARGIN * fanout_ns if fanout_ns > 0 else FANOUT_PER_WORKER_NS * workers
    lead = LEAD_ROUND_TRIPS * worst + fanout + 10_000_000
    return max(LEAD_MIN_NS, min(LEAD_MAX_NS, lead))


def fanout_ns(deliveries: Iterable[Mapping[str, int]]) -> int:
    """The fan-out to these workers: the slowest delivery of an Assign or a Start (per
    worker, the last of each kind, controller.registry.WorkerRecord.delivery_ns)."""
    return max((d.get(kind, 0) for d in deliveries for kind in FANOUT_KINDS), default=0)


def make_plan(
    decide_ns: int, lead: int, warmup_s: float, measurement_s: float | None
) -> common_pb2.PhasePlan:
    """The plan: load start ``lead`` after ``decide_ns``, then WARMUP for ``warmup_s``,
    then MEASUREMENT for ``measurement_s`` (None: its end is not known ahead)."""
    load_start = decide_ns + lead
    measurement_start = load_start + round(warmup_s * 1e9)
    plan = common_pb2.PhasePlan()
    plan.decide_time.FromNanoseconds(decide_ns)
    plan.load_start_time.FromNanoseconds(load_start)
    plan.measurement_start_time.FromNanoseconds(measurement_start)
    if measurement_s is not None:
        plan.measurement_end_time.FromNanoseconds(measurement_start + round(measurement_s * 1e9))
    return plan


def planned_end_ns(plan: common_pb2.PhasePlan | None) -> int:
    """The planned measurement end, 0 if none."""
    if plan is None or not plan.HasField("measurement_end_time"):
        return 0
    return int(plan.measurement_end_time.ToNanoseconds())
