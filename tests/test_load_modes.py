"""Load modes against real targets: open model without coordinated omission, find_max,
stages, and a worker recruited mid-run."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from controller import lifecycle as lc
from controller.load_control import FindMaxSearch, split_connections, stage_target
from controller.server import Controller
from snowload.v1 import common_pb2
from snowload.workload import FindMax, Stage, StepBy
from tests.cluster import (
    WorkerProcs,
    attached,
    read_traces,
    run_to_end,
    wait_for,
    workload,
)
from tests.in_flight import issued_after
from tests.pg import PgCluster

# ---------------------------------------------------------------- pure load control


def test_stage_targets_ramp_linearly_from_the_previous_stage() -> None:
    stages = [Stage(2.0, connections=4), Stage(2.0, connections=4), Stage(4.0, connections=0)]
    assert stage_target(stages, 0.0, 0.0) == 0
    assert stage_target(stages, 1.0, 0.0) == 2
    assert stage_target(stages, 3.0, 0.0) == 4
    assert stage_target(stages, 6.0, 0.0) == 2
    assert stage_target(stages, 99.0, 0.0) == 0


def test_split_connections_is_even_and_respects_shares() -> None:
    assert split_connections(7, [4, 4]) == [4, 3]
    assert split_connections(7, [2, 8]) == [2, 5]
    assert split_connections(20, [2, 3]) == [2, 3]
    assert split_connections(0, [4, 4]) == [0, 0]
    assert sum(split_connections(13, [5, 5, 5])) == 13


def stats(qps: float, p95: float, errors: int = 0, count: int = 1000) -> common_pb2.LatencyStats:
    return common_pb2.LatencyStats(qps=qps, p95_ms=p95, count=count, errors=errors)


def test_find_max_backs_off_and_bisects_to_the_knee() -> None:
    search = FindMaxSearch(FindMax(start=10, step=10, max=100, p95_drift=0.5, min_gain=0.05))
    capacity = 35  # throughput grows until 35 connections, then is flat
    levels = []
    while (level := search.next_level()) is not None:
        levels.append(level)
        qps = 100 * min(level, capacity)
        p95 = 5.0 if level <= capacity else 5.0 * level / capacity
        search.record(level, stats(qps, p95))
    assert levels[:4] == [10, 20, 30, 40]
    assert search.concluded
    best = search.best.level if search.best else 0
    assert abs(best - capacity) <= 10  # within one step of the knee
    assert "throughput stopped growing" in search.reason
    assert all(40 <= lv <= 50 for lv in levels[5:])  # bisection between stable and degraded


def test_find_max_names_errors_and_latency_and_the_maximum() -> None:
    errors = FindMaxSearch(FindMax(start=1, step=1, max=5, max_error_rate=0.01))
    errors.record(1, stats(100, 1))
    errors.record(2, stats(200, 1, errors=50))
    assert errors.steps[-1].reason == "error rate 5.0% at 2 connections"
    drift = FindMaxSearch(FindMax(start=1, step=1, max=5, p95_drift=0.3, min_gain=0.0))
    drift.record(1, stats(100, 10))
    drift.record(2, stats(200, 14))
    assert drift.steps[-1].reason == "p95 drifted 40% above baseline at 2 connections"
    top = FindMaxSearch(FindMax(start=1, step=1, max=2, by=StepBy.RATE))
    while (level := top.next_level()) is not None:
        top.record(level, stats(level * 1000, 1))
    assert top.reason.startswith("reached the maximum (2 queries/s)")
    assert top.best is not None and top.best.level == 2


# ---------------------------------------------------------------- real runs


OPEN_PG = """
name = "open-pg"
[target]
driver = "postgres"
dsn = "{dsn}"
[setup]
sql = ["DROP TABLE IF EXISTS stall", "CREATE TABLE stall (k INT PRIMARY KEY, v INT)",
       "INSERT INTO stall SELECT g, 0 FROM generate_series(1, 10) g"]
[load]
mode = "open"
rate = 200
workers = 1
connections = 4
warmup = "1s"
duration = "{duration}"
enrich = false
[[query]]
name = "read"
sql = "SELECT v FROM stall WHERE k = ?"
params = [{{ int = [1, 10] }}]
"""


def _phase(run: object, phase: int) -> common_pb2.PhaseSummary:
    summary = run.summary()  # type: ignore[attr-defined]
    return next(p for p in summary.phases if p.phase == phase)


async def test_open_mode_holds_the_rate_and_shows_a_stall(
    pg: PgCluster, controller: Controller, workers: WorkerProcs
) -> None:
    workers.spawn("open")
    await attached(controller, 1)
    # capacity allows: the achieved rate is the target
    run = await run_to_end(controller, workload(OPEN_PG.format(dsn=pg.dsn, duration="2s")))
    assert run.state == lc.COMPLETED, run.message
    meas = _phase(run, lc.MEASUREMENT)
    assert meas.target_rate == pytest.approx(200)
    assert abs(meas.achieved_rate - 200) / 200 < 0.02, meas.achieved_rate
    # nothing dropped but at the end: a slot planned just before it whose start a busy
    # host delayed past it (no max_lag, and a connection stops at its first such slot)
    assert meas.dropped <= 4, meas.dropped

    # the target stalls for 2 s mid-measurement: a lock the workload needs
    run = controller.runs.start(workload(OPEN_PG.format(dsn=pg.dsn, duration="7s")))
    await wait_for(
        lambda: run.state == lc.MEASUREMENT and run.metrics.intervals_from("open") >= 2,
        30,
        "MEASUREMENT",
    )
    held = threading.Event()

    def stall() -> None:
        with psycopg.connect(pg.dsn) as conn:
            conn.execute("LOCK TABLE stall IN ACCESS EXCLUSIVE MODE")
            held.set()
            conn.execute("SELECT pg_sleep(2)")
            conn.rollback()

    locker = threading.Thread(target=stall)
    locker.start()
    await asyncio.to_thread(held.wait, 10)
    assert run.task is not None
    await asyncio.wait_for(asyncio.shield(run.task), 60)
    locker.join(10)
    assert run.state == lc.COMPLETED, run.message
    meas = _phase(run, lc.MEASUREMENT)
    print(
        f"corrected p99 {meas.overall.p99_ms:.0f} ms, uncorrected p99 "
        f"{meas.service.p99_ms:.1f} ms, lag p99 {meas.lag.p99_ms:.0f} ms, late {meas.late}"
    )
    assert meas.overall.p99_ms >= 1000  # the stall shows in the numbers
    assert meas.service.p99_ms < 1000  # the uncorrected view would have hidden it
    assert meas.lag.p99_ms >= 500 and meas.late > 100  # and the lag is reported
    series = [p for p in run.metrics.series_protos() if p.phase == lc.MEASUREMENT]
    assert max(p.lag_p99_ms for p in series) >= 500
    # the query log's slowest are the stalled queries, timed from their intended start
    slowest = controller.runs.store.run_queries(run.run_id, phase=lc.MEASUREMENT, slowest=20)
    assert len(slowest) == 20 and all(e.latency_ms >= 500 for e in slowest)
    assert slowest[0].latency_ms == pytest.approx(meas.overall.max_ms, rel=0.01)


FIND_MAX_PG = """
name = "knee"
[target]
driver = "postgres"
dsn = "{dsn}"
[load]
mode = "find_max"
workers = 1
enrich = false
think_time = "150ms"
[load.find_max]
start = 2
step = 2
max = 10
step_duration = "3s"
min_gain = 0.15
p95_drift = 5.0
[[query]]
name = "slot"
# one lock held 50 ms per query caps the server at 20 queries/s; with 150 ms of think
# time a connection alone does 5/s, so throughput stops growing at about 4 connections.
# What a loaded host adds to each query outside the lock (d ms) moves the knee to
# 4 + d/50: these long sleeps keep it below 4.6 (where 6 would still gain 15 %) up to
# d = 30 ms, while with 4 ms and 12 ms it moved to 4 + d/4 and a busy host made 6 best
sql = "SELECT pg_advisory_xact_lock(4242), pg_sleep(0.05), ?::int"
params = [{{ int = [1, 9] }}]
"""


async def test_find_max_lands_on_the_knee_with_the_right_reason(
    pg: PgCluster, controller: Controller, workers: WorkerProcs
) -> None:
    workers.spawn("search")
    await attached(controller, 1)
    run = await run_to_end(controller, workload(FIND_MAX_PG.format(dsn=pg.dsn)), timeout_s=120)
    assert run.state == lc.COMPLETED, run.message
    result = run.to_proto().find_max
    print([(s.level, round(s.stats.qps), s.verdict) for s in result.steps], result.reason)
    assert result.concluded
    assert 3 <= result.best_level <= 5  # within one step of the knee at 4
    assert "throughput stopped growing" in result.reason
    assert [s.level for s in result.steps][:3] == [2, 4, 6]


STAGES = """
name = "stages"
[target]
database = ":memory:"
[load]
mode = "open"
workers = 1
connections = 4
[[load.stage]]
duration = "3s"
rate = 300
[[load.stage]]
duration = "3s"
rate = 300
[[load.stage]]
duration = "2s"
rate = 100
[[query]]
name = "one"
sql = "SELECT 1"
"""


async def test_stages_are_followed_by_the_per_second_series(
    controller: Controller, workers: WorkerProcs
) -> None:
    workers.spawn("stager")
    await attached(controller, 1)
    run = await run_to_end(controller, workload(STAGES))
    assert run.state == lc.COMPLETED, run.message
    points = [
        p for p in run.metrics.series_protos() if p.duration.ToTimedelta().total_seconds() > 0.9
    ]
    qps = [round(p.overall.qps) for p in points]
    stages = run.workload.load.stages
    # the mean target over each second (the ramp moves within the second)
    expected = [round(stage_target(stages, p.second - 0.5, 0.0)) for p in points]
    print("per second:", qps, "expected:", expected)
    assert len(points) >= 7
    for got, want in zip(qps, expected, strict=True):
        assert abs(got - want) <= 0.2 * want + 25, (qps, expected)
    # ramp up, hold, ramp down
    assert qps[0] < qps[1] < qps[2]
    assert all(abs(q - 300) / 300 < 0.1 for q in qps[3:6]), qps
    assert qps[-1] < qps[5]


RECRUIT = """
name = "recruit"
[target]
database = "recruit.db"
[setup]
sql = ["DROP TABLE IF EXISTS keys", "CREATE TABLE keys (k INTEGER PRIMARY KEY, w TEXT)"]
[load]
workers = 1
connections = 6
think_time = "5ms"
[[load.stage]]
duration = "2s"
connections = 2
[[load.stage]]
duration = "3s"
connections = 6
[[query]]
name = "insert"
sql = "INSERT INTO keys (k, w) VALUES (?, ?)"
params = [{ sequence = 1 }, { choice = ["x"] }]
"""


async def test_a_worker_recruited_mid_measurement_starts_in_it_with_disjoint_keys(
    controller: Controller, workers: WorkerProcs, traces: Path, tmp_path: Path
) -> None:
    workers.spawn("first", "--capacity", "2")
    await attached(controller, 1)
    workers.spawn("reserve")
    await attached(controller, 2)
    run = await run_to_end(controller, workload(RECRUIT))
    assert run.state == lc.COMPLETED, run.message
    assert run.recruited == ["reserve"]
    statements = read_traces(traces, run.run_id)
    recruited = sorted((s for s in statements if s.worker_index == 1), key=lambda s: s.time_ns)
    assert recruited, "the recruited worker issued no query"
    assert recruited[0].phase == lc.MEASUREMENT  # no warmup of its own
    assert {s.phase for s in recruited} == {lc.MEASUREMENT}
    # keys stayed disjoint: every insert succeeded, no constraint error anywhere
    meas = _phase(run, lc.MEASUREMENT)
    assert meas.overall.errors == 0
    assert meas.overall.count > 0
    assert run.finished["reserve"].totals
    # its seconds are the run's seconds it ran in, not the run's first ones
    points = run.metrics.series_protos()
    print("workers per second:", [p.workers_active for p in points])
    assert points[0].workers_active == 1
    joined = next(i for i, p in enumerate(points) if p.workers_active == 2)
    assert joined >= 2  # the second stage began after 2 s of MEASUREMENT
    assert all(p.workers_active == 2 for p in points[joined:-1])
    # it joined between two planned edges: its queries lie inside the plan's window, and
    # its first second is the run second (on the controller's clock) it began in
    assert run.plan is not None
    load_start = run.plan.load_start_time.ToNanoseconds()
    m_end = run.plan.measurement_end_time.ToNanoseconds()
    # (SQLite traces a statement after its issue, by however long a loaded host delays it:
    # after the end, each connection may have only the one it had in flight traced)
    assert all(load_start <= s.time_ns for s in recruited)
    assert not issued_after([(s.time_ns, s.file) for s in recruited], m_end + 2_000_000), m_end
    began = (recruited[0].time_ns - load_start) // 1_000_000_000 + 1
    assert points[joined].second in (began, began - 1)  # (it may begin just before a query)


POOLS = """
name = "pools"
[target]
database = "pools.db"
[setup]
sql = [
  "DROP TABLE IF EXISTS sparse",
  "CREATE TABLE sparse (id INTEGER PRIMARY KEY, hits INTEGER NOT NULL DEFAULT 0)",
  '''INSERT INTO sparse (id) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n
     WHERE i < 500) SELECT i * 7919 FROM n''',
]
[load]
workers = 2
connections = 4
warmup = "0s"
duration = "2s"
think_time = "2ms"
[[query]]
name = "touch"
sql = "UPDATE sparse SET hits = hits + 1 WHERE id = ?"
params = [{ pool = "SELECT id FROM sparse ORDER BY id" }]
"""


async def test_pools_are_sampled_once_and_walked_in_disjoint_slices(
    controller: Controller, workers: WorkerProcs, traces: Path, tmp_path: Path
) -> None:
    workers.spawn("p0")
    workers.spawn("p1")
    await attached(controller, 2)
    run = await run_to_end(controller, workload(POOLS))
    assert run.state == lc.COMPLETED, run.message
    # sampled once by the setup worker, stored with the run
    assert len(run.pools) == 1 and run.pools[0].rows == 500
    assert run.to_proto().pools[0].rows == 500
    # every key used exists (random keys would mostly miss: ids are multiples of 7919)
    db = sqlite3.connect(tmp_path / "home" / "targets" / "pools.db")
    hits = db.execute("SELECT sum(hits) FROM sparse").fetchone()[0]
    total = sum(c.count for c in run.metrics.cells.values())
    assert hits == total > 0
    # the two workers walked disjoint slices of the pool
    by_worker = _touched_ids(traces)
    assert by_worker[0] and by_worker[1]
    assert not by_worker[0] & by_worker[1]


def _touched_ids(traces: Path) -> dict[int, set[int]]:
    """Ids each worker updated, as SQLite executed the statements."""
    by_worker: dict[int, set[int]] = {0: set(), 1: set()}
    for path in traces.glob("trace-*.log"):
        for line in path.read_text().splitlines():
            m = re.search(r"/\*sl/[^/]+/w(\d)/M/touch\*/ UPDATE .* WHERE id = (\d+)", line)
            if m:
                by_worker[int(m.group(1))].add(int(m.group(2)))
    return by_worker
