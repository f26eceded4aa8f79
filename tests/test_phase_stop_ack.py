"""A Stop's end instant applies in the Stop's handler itself, before its Ack is queued:
no statement can be issued after the end while the Ack already says the Stop applied
(the drain, and its CPU work, follow in a task). A real agent state machine and a real
SQLite executor; the agent is not attached, its outbox is read directly."""

from __future__ import annotations

import time
from pathlib import Path

from snowload.v1 import common_pb2, control_pb2
from snowload.workload import parse_toml
from tests.cluster import wait_for
from worker import clock
from worker import state_machine as sm
from worker.agent import Agent
from worker.boundaries import NEVER, Boundaries
from worker.drivers import get_driver
from worker.executor import Executor, RunPlan
from worker.generators import Sequences
from worker.run_context import RunContext

WORKLOAD = """
name = "stop-ack"
[target]
driver = "sqlite"
database = "{db}"
[load]
workers = 1
connections = 1
[[query]]
name = "one"
sql = "SELECT 1"
"""


async def test_a_stops_end_applies_before_its_ack_is_queued(tmp_path: Path) -> None:
    wl = parse_toml(WORKLOAD.format(db=tmp_path / "s.db"), source="stop-ack.toml")
    executor = Executor(RunPlan("r", wl, 0, 1, Sequences(0, 1)), get_driver(wl.target.driver))
    executor.start(Boundaries(((time.perf_counter_ns(), common_pb2.STATE_MEASUREMENT),)))
    agent = Agent("127.0.0.1:9", worker_id="stop-ack")
    agent.run = RunContext(assign=control_pb2.Assign(run_id="r"), executor=executor)
    agent.model = sm.Model(state=sm.RUNNING, run_id="r", last_seq=3)
    decided = clock.now_ns() - 20_000_000  # decided 20 ms ago, as an unplanned stop is
    stop = control_pb2.AttachResponse(
        seq=4, stop=control_pb2.Stop(run_id="r", reason="user_requested")
    )
    stop.stop.measurement_end_time.FromNanoseconds(decided)
    assert executor.control.bounds.end == NEVER

    agent._handle(stop)

    # nothing else has run on the loop yet: the end is in place, the Ack queued
    end = agent.to_perf(decided)
    assert executor.control.bounds.end == end
    assert executor.ended == end  # decided before it arrived: what came since is not M
    ack = agent._outbox.get_nowait()
    assert ack.WhichOneof("message") == "ack" and ack.ack.seq == 4
    # the drain follows and finishes the run
    await wait_for(lambda: agent.run is None, 10, "the drain to finish")
    assert executor.control.stopping
