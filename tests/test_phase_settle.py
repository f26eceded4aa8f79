"""After a Stop, the drain's CPU work waits until the Stop has most likely reached every
worker: at least SETTLE_MIN_NS after its arrival, half the plan's lead after the end
(the lead allows twice the measured fan-out), at most SETTLE_MAX_NS after the end."""

from __future__ import annotations

from controller import plan as cplan
from worker.settle import SETTLE_MAX_NS, SETTLE_MIN_NS, settle_until

MS = 1_000_000


def test_a_short_lead_leaves_the_least_wait_after_arrival() -> None:
    plan = cplan.make_plan(10**18, 60 * MS, 0.0, 5.0)
    assert settle_until(plan, end_perf=1000 * MS, arrived_perf=1003 * MS) == 1103 * MS
    assert settle_until(None, end_perf=1000 * MS, arrived_perf=1003 * MS) == 1103 * MS


def test_a_long_lead_waits_half_of_it_after_the_end() -> None:
    plan = cplan.make_plan(10**18, 600 * MS, 0.0, 5.0)
    # arrived 20 ms after the end: the last worker may get it up to ~300 ms after
    assert settle_until(plan, end_perf=1000 * MS, arrived_perf=1020 * MS) == 1300 * MS
    # a worker that got it late waits SETTLE_MIN_NS only
    assert settle_until(plan, end_perf=1000 * MS, arrived_perf=1290 * MS) == 1390 * MS


def test_the_wait_after_the_end_is_capped() -> None:
    plan = cplan.make_plan(10**18, cplan.LEAD_MAX_NS * 3, 0.0, 5.0)
    end = 1000 * MS
    assert settle_until(plan, end_perf=end, arrived_perf=end) == end + SETTLE_MAX_NS
    assert SETTLE_MIN_NS < SETTLE_MAX_NS
