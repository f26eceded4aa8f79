"""A run that ends as planned counts as MEASUREMENT exactly what PostgreSQL logged as
MEASUREMENT, whatever the worker's clock estimate does after it mapped the plan.

A worker maps the plan's instants onto its own clock once (and again when its offset
estimate moves by more than REMAP_NS, for the instants still ahead); its connection
threads stop issuing at the planned end and tag every statement with the phase it was
issued in. The Stop that follows carries the same end instant. Were the worker to map
that instant anew with a newer estimate, the end would land a little earlier than where
its threads stopped, and the statements issued in between would be re-labelled
PROCESSING although the server saw them tagged MEASUREMENT: the run would count fewer
MEASUREMENT statements than the server's log (and the summary, which shows WARMUP and
MEASUREMENT, would seem to have lost them).

The worker here is an in-process Agent attached over a real gRPC stream (through a
proxy that delays each way by 20 ms, a link across zones) to an in-process controller,
with real PostgreSQL connections; the test delivers the Pong of a better round trip at
a chosen moment through the agent's own Pong handler, as the network would have, so the
moment the estimate moves is not left to luck.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from controller import lifecycle as lc
from controller.server import Controller
from snowload.v1 import common_pb2, control_pb2
from tests.cluster import wait_for, workload
from tests.latency_proxy import LatencyProxy
from tests.pg import PgCluster, parse_log
from worker import clock as wclock
from worker.agent import REMAP_NS, Agent
from worker.boundaries import NEVER, Boundaries, plan_end_ns, same_instants
from worker.executor import Executor
from worker.tags import parse_compact

pytestmark = pytest.mark.slow

WORKLOAD = """
name = "planned-end"
[target]
driver = "postgres"
dsn = "{dsn}"
[load]
workers = 1
connections = 2
warmup = "300ms"
duration = "1s"
think_time = "0s"
[[query]]
name = "one"
sql = "SELECT 1"
"""
LINK_S = 0.02
"""One-way delay of the worker's link to the controller."""


@pytest.fixture
async def agent(controller: Controller) -> AsyncIterator[tuple[Agent, LatencyProxy]]:
    host, port = controller.address.rsplit(":", 1)
    with LatencyProxy(host, int(port), up_s=LINK_S, down_s=LINK_S) as proxy:
        made = Agent(f"127.0.0.1:{proxy.port}", worker_id="far")
        task = asyncio.get_running_loop().create_task(made.serve())
        try:
            yield made, proxy
        finally:
            await made.shutdown(1.0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def better_round_trip(agent: Agent, shift_ns: int) -> control_pb2.Pong:
    """The Pong of a round trip 1 ms shorter than the best so far whose halves differ by
    ``2 * shift_ns`` more than the best's did: it becomes the best, and the offset
    estimate moves up by ``shift_ns`` (the worker's instants move earlier)."""
    best = agent.clock.best
    assert best is not None
    rtt = best.rtt_ns - 1_000_000
    t3 = wclock.now_ns()
    t0 = t3 - rtt
    pong = control_pb2.Pong()
    pong.heartbeat_send_time.FromNanoseconds(t0)
    pong.controller_receive_time.FromNanoseconds(best.offset_ns + shift_ns + (t0 + t3) // 2)
    return pong


def server_counts(pg: PgCluster, since: int, run_id: str) -> Counter[int]:
    """Per phase, the run's statements in the server's log, by the tag they carried."""
    out: Counter[int] = Counter()
    for stmt in parse_log(pg.log_lines()[since:]):
        if stmt.sql.startswith("/*sl/"):
            tag = parse_compact(stmt.sql.split("*/", 1)[0].removeprefix("/*"))
            if tag is not None and tag.run_short == run_id[:8]:
                out[tag.phase] += 1
    return out


async def measuring(controller: Controller, agent: Agent, text: str) -> tuple[str, Executor]:
    await wait_for(lambda: agent.attached.is_set() and agent._synced.is_set(), 20, "attached")
    run = controller.runs.start(workload(text))
    await wait_for(lambda: run.state == lc.MEASUREMENT, 20, "MEASUREMENT")
    assert agent.run is not None and agent.run.executor is not None
    return run.run_id, agent.run.executor


async def finish(controller: Controller, run_id: str) -> tuple[Counter[int], Counter[int]]:
    """The run's merged counts and the worker's own totals, per phase (errors included)."""
    run = controller.runs.active[run_id]
    assert run.task is not None
    await asyncio.wait_for(asyncio.shield(run.task), 30)
    assert run.state == lc.COMPLETED, run.message
    merged: Counter[int] = Counter()
    for (phase, _), cell in run.metrics.cells.items():
        merged[phase] += cell.count  # (errors included)
    own: Counter[int] = Counter()
    for total in run.finished["far"].totals:
        own[int(total.phase)] += total.count + sum(e.count for e in total.errors)
    return +merged, +own


@pytest.mark.parametrize("when", ["less-than-remap-mid-run", "after-the-end"], ids=str)
async def test_an_estimate_that_moves_after_the_plan_relabels_nothing(
    pg: PgCluster, controller: Controller, agent: tuple[Agent, LatencyProxy], when: str
) -> None:
    worker, proxy = agent
    since = len(pg.log_lines())
    run_id, executor = await measuring(controller, worker, WORKLOAD.format(dsn=pg.dsn))
    end = executor.control.bounds.end
    assert end < NEVER
    if when == "less-than-remap-mid-run":
        # too little to re-map the plan: the threads keep the end they have
        worker._on_pong(better_round_trip(worker, REMAP_NS - 10_000))
        assert executor.control.bounds.end == end
    else:
        # the Stop comes late (it leaves the controller at the end) ...
        proxy.down_s = 0.4
        await wait_for(lambda: time.perf_counter_ns() > end + 1_000_000, 10, "the end")
        assert executor.control.bounds.end == end and worker.run is not None
        assert not executor.control.stopping  # (the Stop has not arrived)
        # ... and a better round trip moves the estimate by 15 ms before it does
        worker._on_pong(better_round_trip(worker, 15_000_000))
    merged, own = await finish(controller, run_id)
    logged = server_counts(pg, since, run_id)
    print(f"{when}: server {dict(logged)}, run {dict(merged)}, worker {dict(own)}")
    assert logged[lc.MEASUREMENT] > 100
    # the run (and the worker's own totals) count per phase exactly what the server ran,
    # with no PROCESSING statement: nothing was issued after the planned end
    assert merged == logged, (merged, logged)
    assert own == logged, (own, logged)
    # the worker never re-labelled a statement: the end it cut at is its threads' own
    assert executor.ended == NEVER


W, M = common_pb2.STATE_WARMUP, common_pb2.STATE_MEASUREMENT


def test_a_remap_moves_only_the_instants_still_ahead() -> None:
    held = Boundaries(((1_000, W), (2_000, M)), 3_000)
    earlier = Boundaries(((900, W), (1_900, M)), 2_900)
    # before the load: everything moves
    assert held.remapped(earlier, 500) == earlier
    # in WARMUP: its start stays where the threads met it
    assert held.remapped(earlier, 1_500) == Boundaries(((1_000, W), (1_900, M)), 2_900)
    # an edge exactly at now was met (a query issued at it takes its phase): it stays
    assert held.remapped(earlier, 1_000) == Boundaries(((1_000, W), (1_900, M)), 2_900)
    # after the end: nothing moves, the end least of all
    assert held.remapped(earlier, 3_000) == held
    # an instant ahead that the new estimate puts before a kept one takes effect with it
    assert held.remapped(Boundaries(((0, W), (500, M)), 900), 1_200) == Boundaries(
        ((1_000, W), (1_000, M)), 900
    )
    # another set of boundaries (a phase set by hand since): taken as it is
    other = Boundaries(((900, M),), 2_900)
    assert held.remapped(other, 1_500) == other


def test_plans_with_the_same_instants_are_told_from_changed_ones() -> None:
    plan = common_pb2.PhasePlan()
    plan.load_start_time.FromNanoseconds(1_000)
    plan.measurement_start_time.FromNanoseconds(2_000)
    plan.measurement_end_time.FromNanoseconds(3_000)
    same = common_pb2.PhasePlan()
    same.CopyFrom(plan)
    same.decide_time.FromNanoseconds(500)  # (not an instant of the load)
    assert same_instants(plan, same)
    stopped = common_pb2.PhasePlan()
    stopped.CopyFrom(plan)
    stopped.measurement_end_time.FromNanoseconds(2_500)
    assert not same_instants(plan, stopped)
    assert plan_end_ns(stopped) == 2_500
    assert plan_end_ns(common_pb2.PhasePlan()) == 0
