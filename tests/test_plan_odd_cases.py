"""Planned boundaries in the odd cases: a command that arrives after its instant, a
worker whose clock is known only roughly, a StopRun that races the planned end, an
unplanned stop that reaches a worker late, open-mode slots that straddle a boundary."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path

from controller import lifecycle as lc
from controller.server import Controller
from snowload.report import summary_dict
from snowload.v1 import common_pb2
from snowload.workload import parse_toml
from tests.cluster import WorkerProcs, attached, read_traces, wait_for, workload
from tests.latency_proxy import LatencyProxy
from worker.boundaries import Boundaries
from worker.drivers import get_driver
from worker.executor import Executor, RunPlan
from worker.generators import Sequences

WORKLOAD = """
name = "odd"
[target]
driver = "sqlite"
database = "odd.db"
[setup]
sql = ["DROP TABLE IF EXISTS kv", "CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)"]
[load]
workers = 1
connections = 2
warmup = "0s"
duration = "{duration}"
think_time = "1ms"
[[query]]
name = "put"
sql = "INSERT INTO kv (k, v) VALUES (?, ?)"
params = [{{ sequence = 1 }}, {{ string = 8 }}]
"""


def through(proxy: LatencyProxy, workers: WorkerProcs) -> WorkerProcs:
    return WorkerProcs(f"127.0.0.1:{proxy.port}", workers.env)


async def test_a_late_start_applies_at_once_and_the_run_says_so(
    controller: Controller, workers: WorkerProcs
) -> None:
    host, port = controller.address.rsplit(":", 1)
    with LatencyProxy(host, int(port), up_s=0.012, down_s=0.012) as proxy:
        procs = through(proxy, workers)
        try:
            procs.spawn("far", "--connect-delay", "0.5s")  # READY 0.5 s after its Assign
            await attached(controller, 1)
            run = controller.runs.start(workload(WORKLOAD.format(duration="1s")))
            await wait_for(lambda: run.state == lc.PREPARING, 10, "PREPARING")
            (rec,) = run.workers
            await wait_for(lambda: "assign" in rec.delivery_ns, 10, "the Assign's Ack")
            # from now on commands take 0.5 s to arrive: far beyond the plan's lead (which
            # allows for the Assign's fan-out, measured before the network got slow)
            proxy.down_s = 0.5
            assert run.task is not None
            await run.task
        finally:
            procs.stop_all()
    assert run.state == lc.COMPLETED, run.message
    lead = run.plan.load_start_time.ToNanoseconds() - run.plan.decide_time.ToNanoseconds()
    assert lead < 450_000_000  # (four ~25 ms round trips, and some for a busy host)
    (row,) = run.to_proto().run_workers
    # Start arrived after the load start: applied at once, and recorded how late
    assert row.late_commands >= 1
    late = row.max_lateness.ToNanoseconds()
    assert 500_000_000 - lead - 100_000_000 < late < 1_000_000_000, (lead, late)
    assert any(w.startswith("plan not honoured: worker far") for w in run.warnings)
    # round trips of ~24 ms: the offset is known to ~12 ms, which is worth a warning too
    assert row.clock_uncertainty.ToNanoseconds() > 10_000_000
    assert any(w.startswith("clock uncertain: worker far") for w in run.warnings)
    # what GetRun answers for the finished run (from the store) and the JSON summary
    stored = controller.runs.get(run.run_id)
    assert stored.plan == run.plan
    assert stored.run_workers[0].late_commands == row.late_commands
    (clock,) = summary_dict(stored)["plan"]["workers"]
    assert clock["late_commands"] == row.late_commands and clock["max_lateness_ms"] > 100
    assert clock["clock_uncertainty_ms"] > 10
    # and the run still measured, exactly as long as planned
    assert run.metrics.cells[(lc.MEASUREMENT, "put")].count > 0
    assert run.measurement_end_ns - run.phase_ns[lc.MEASUREMENT] == 1_000_000_000


async def test_the_lead_follows_the_measured_fan_out_not_the_idle_round_trips(
    controller: Controller, workers: WorkerProcs, traces: Path
) -> None:
    host, port = controller.address.rsplit(":", 1)
    with LatencyProxy(host, int(port), up_s=0.012, down_s=0.012) as proxy:
        procs = through(proxy, workers)
        try:
            procs.spawn("slow-path")
            await attached(controller, 1)
            # commands now take 0.2 s to arrive, while the clock's best round trip (and so
            # the heartbeat's) stays the idle ~24 ms: four of those are not enough
            proxy.down_s = 0.2
            run = controller.runs.start(workload(WORKLOAD.format(duration="1s")))
            assert run.task is not None
            await run.task
        finally:
            procs.stop_all()
    assert run.state == lc.COMPLETED, run.message
    assert run.plan is not None
    (rec,) = run.workers
    assert rec.heartbeat is not None and rec.heartbeat.round_trip.ToNanoseconds() < 150_000_000
    lead = run.plan.load_start_time.ToNanoseconds() - run.plan.decide_time.ToNanoseconds()
    # the Assign took the proxy's 200 ms to arrive: the lead allows twice that
    assert lead > 2 * 190_000_000, lead
    (row,) = run.to_proto().run_workers
    assert row.late_commands == 0, row.max_lateness.ToNanoseconds()
    assert not any(w.startswith("plan not honoured") for w in run.warnings), run.warnings
    # and what the worker issued started at the plan's instant (within what its clock
    # knows, ~12 ms through this proxy), not on the Start's arrival ~90 ms after it
    start = run.plan.load_start_time.ToNanoseconds()
    first = min(s.time_ns for s in read_traces(traces, run.run_id))
    uncertainty = row.clock_uncertainty.ToNanoseconds()
    assert start - uncertainty - 1_000_000 <= first < start + 50_000_000, (first - start) / 1e6


async def test_a_stop_that_races_the_planned_end_changes_nothing(
    controller: Controller, workers: WorkerProcs
) -> None:
    workers.spawn("w")
    await attached(controller, 1)
    run = controller.runs.start(workload(WORKLOAD.format(duration="1s")))
    await wait_for(lambda: run.plan is not None, 20, "the plan")
    assert run.plan is not None
    end = run.plan.measurement_end_time.ToNanoseconds()
    await wait_for(lambda: time.time_ns() >= end, 20, "the planned end")
    try:
        controller.runs.stop(run.run_id)  # too late to cancel anything: no error either
    except lc.IllegalTransition:
        # on a loaded host the run may already have ended (and left the active runs) by
        # the time the stop is asked for: refused like any stop of an ended run
        assert run.terminal
    assert run.task is not None
    await run.task
    assert run.state == lc.COMPLETED and run.reason == lc.Reason.DURATION_ELAPSED
    assert run.measurement_end_ns == end


async def test_an_unplanned_stop_ends_measurement_at_its_decision_for_every_query(
    controller: Controller, workers: WorkerProcs, traces: Path
) -> None:
    host, port = controller.address.rsplit(":", 1)
    # symmetric, so the clock offset stays right: only the Stop's arrival is late
    with LatencyProxy(host, int(port), up_s=0.025, down_s=0.025) as proxy:
        procs = through(proxy, workers)
        try:
            procs.spawn("slow-news")
            await attached(controller, 1)
            run = controller.runs.start(workload(WORKLOAD.format(duration="30s")))
            await wait_for(lambda: run.state == lc.MEASUREMENT, 20, "MEASUREMENT")
            await wait_for(run.metrics.complete_point, 10, "a complete second")
            controller.runs.stop(run.run_id)
            assert run.task is not None
            await run.task
        finally:
            procs.stop_all()
    assert run.state == lc.CANCELLED
    end = run.measurement_end_ns
    assert end == run.decided_ns
    statements = read_traces(traces, run.run_id)
    # the Stop took 25 ms to arrive: the worker went on issuing meanwhile, with the tag it
    # had; those queries are not MEASUREMENT queries in the results
    after = [s for s in statements if s.time_ns >= end]
    assert len(after) > 10
    before = Counter(s.phase for s in statements if s.time_ns < end)
    measured = run.metrics.cells[(lc.MEASUREMENT, "put")].count
    connections = 2  # (a statement in flight at the instant may fall either side)
    assert abs(measured - before[lc.MEASUREMENT]) <= connections, (measured, before)
    processing = run.metrics.cells[(lc.PROCESSING, "put")].count
    assert abs(processing - len(after)) <= connections, (processing, len(after))


OPEN = """
name = "straddle"
[target]
driver = "sqlite"
database = "{db}"
[load]
mode = "open"
rate = 100
workers = 1
connections = 1
[[query]]
name = "put"
sql = "INSERT INTO t (v) VALUES (1)"
"""


def _sleep_until(perf_ns: int) -> None:
    while (left := perf_ns - time.perf_counter_ns()) > 0:
        time.sleep(left / 1e9)


def test_open_slots_take_the_phase_of_their_intended_start(tmp_path: Path) -> None:
    """One connection, 100 slots/s, and the test holds the database's write lock across
    the boundary: the connection falls behind whatever the host's speed, so slots planned
    in WARMUP start in MEASUREMENT. They are WARMUP queries all the same."""
    db = tmp_path / "s.db"
    hold = sqlite3.connect(db, isolation_level=None, timeout=10)
    hold.execute("PRAGMA journal_mode=wal").fetchall()
    hold.execute("CREATE TABLE t (v INTEGER)")
    wl = parse_toml(OPEN.format(db=db), source="open.toml")
    plan = RunPlan("r", wl, 0, 1, Sequences(0, 1), rate=100.0)
    executor = Executor(plan, get_driver(wl.target.driver))
    executor.open_connections()
    start = time.perf_counter_ns() + 50_000_000
    boundary = start + 300_000_000
    end = boundary + 1_000_000_000
    # every insert waits for the lock until just after the boundary: the slot at the
    # start runs into it, the other 29 WARMUP slots can only start after the boundary
    hold.execute("BEGIN IMMEDIATE")
    executor.start(
        Boundaries(
            ((start, common_pb2.STATE_WARMUP), (boundary, common_pb2.STATE_MEASUREMENT)), end
        )
    )
    _sleep_until(boundary + 50_000_000)
    hold.execute("COMMIT")
    # once the backlog cleared and MEASUREMENT began, the lock again until after the end:
    # the slot that runs into it started before the end, the next could only after it
    deadline = time.monotonic() + 12
    while hold.execute("SELECT count(*) FROM t").fetchone()[0] <= 30:
        assert time.monotonic() < deadline, "the WARMUP backlog did not clear"
        time.sleep(0.005)
    hold.execute("BEGIN IMMEDIATE")
    locked = time.perf_counter_ns()
    _sleep_until(end + 50_000_000)
    hold.execute("COMMIT")
    hold.close()
    assert locked < end - 20_000_000, "the test took the lock too late to hold a slot"
    while executor.active_connections:
        assert time.monotonic() < deadline, "the thread did not end at the end instant"
        time.sleep(0.01)
    executor.stop(1.0)
    cells = executor.collect()
    warmup = cells[(common_pb2.STATE_WARMUP, 0)].count
    measured = cells.get((common_pb2.STATE_MEASUREMENT, 0))
    # slots every 10 ms from the start: 30 before the boundary, every one issued (no
    # max_lag) and every one a WARMUP query ...
    assert warmup == 30
    # ... though all but the first started after the boundary (the last intended 10 ms
    # before it)
    schedule = executor.last_schedule
    assert schedule[common_pb2.STATE_WARMUP].lag.get_max_value() > 50_000
    # MEASUREMENT slots fell behind too: those that could only start after the end were
    # dropped, not issued
    assert measured is not None and 0 < measured.count < 100
    assert schedule[common_pb2.STATE_MEASUREMENT].dropped >= 1
