"""When a stopped worker does its drain's CPU work (the last report, the query log).

A Stop with its end instant stops the load at once (nothing is issued from the end on);
what is left is CPU: joining the threads, gathering the last report. Done the moment a
worker gets its Stop, that work takes the cores from the workers still waiting for
theirs, and the Stop's fan-out grows with it. So it waits until the Stop has most likely
reached every worker: SETTLE_MIN_NS after its arrival at least, and half the plan's lead
after the end instant (the lead allows twice the fan-out the controller last measured to
these workers, controller/plan.py), at most SETTLE_MAX_NS after the end. With a few
workers the lead is short and the wait is SETTLE_MIN_NS; with 64 on two cores it is a
few hundred ms. Nothing waits for it but the run's last report.
"""

from __future__ import annotations

from snowload.v1 import common_pb2

SETTLE_MIN_NS = 100_000_000
SETTLE_MAX_NS = 1_000_000_000


def settle_until(plan: common_pb2.PhasePlan | None, end_perf: int, arrived_perf: int) -> int:
    """The perf-ns instant the drain's CPU work may begin: the Stop arrived at
    ``arrived_perf``, the load ended at ``end_perf``."""
    lead = 0
    if plan is not None and plan.HasField("load_start_time") and plan.HasField("decide_time"):
        lead = plan.load_start_time.ToNanoseconds() - plan.decide_time.ToNanoseconds()
    fanout = min(SETTLE_MAX_NS, max(0, lead // 2))
    return max(arrived_perf + SETTLE_MIN_NS, end_perf + fanout)
