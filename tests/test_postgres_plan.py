"""Planned phase boundaries against real PostgreSQL: the server's own statement log says
when each worker's first and last MEASUREMENT statement ran.

Every worker maps the controller's instants onto its own clock and every query takes its
phase from its own issue time, so the workers switch together (to within the clock
error and the server log's millisecond stamps), however late their commands arrived.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller import lifecycle as lc
from controller.server import Controller, ControllerSettings
from tests.cluster import WorkerProcs, attached, run_to_end, worker_env, workload
from tests.in_flight import issued_after
from tests.pg import LoggedStatement, PgCluster, parse_log
from worker.tags import Tag, parse_compact

WORKERS = 4
SPREAD_MS = 5
STALL_S = 0.1
"""How long a loaded host may keep a worker process (both its connections) off the CPU:
what its last statement may precede the planned end by."""

WORKLOAD = """
name = "pg-plan"
[target]
driver = "postgres"
dsn = "{dsn}"
[load]
workers = 4
connections = 8  # 2 per worker: with 4 each the scheduler set the spread on 2 cores
warmup = "1s"
duration = "2s"
[[query]]
name = "one"
sql = "SELECT 1"
"""


@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await ctl.start()
    yield ctl
    await ctl.stop()


@pytest.fixture
def workers(controller: Controller, tmp_path: Path) -> AsyncIterator[WorkerProcs]:
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    yield procs  # type: ignore[misc]
    procs.stop_all()


def tagged(lines: list[str], run_id: str) -> list[tuple[LoggedStatement, Tag]]:
    """The run's statements in the server log, with the tag each one carried."""
    out = []
    for stmt in parse_log(lines):
        if not stmt.sql.startswith("/*sl/"):
            continue
        tag = parse_compact(stmt.sql.split("*/", 1)[0].removeprefix("/*"))
        if tag is not None and tag.run_short == run_id[:8]:
            out.append((stmt, tag))
    return out


async def test_workers_switch_phase_together_in_the_server_log(
    pg: PgCluster, controller: Controller, workers: WorkerProcs
) -> None:
    for i in range(WORKERS):
        workers.spawn(f"plan-{i}")
    await attached(controller, WORKERS)
    log_start = len(pg.log_lines())
    run = await run_to_end(controller, workload(WORKLOAD.format(dsn=pg.dsn)))
    assert run.state == lc.COMPLETED, run.message
    assert run.plan is not None
    ours = tagged(pg.log_lines()[log_start:], run.run_id)

    m_start = run.plan.measurement_start_time.ToNanoseconds() / 1e9
    m_end = run.plan.measurement_end_time.ToNanoseconds() / 1e9
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    by_worker: defaultdict[int, Counter[int]] = defaultdict(Counter)
    measured_at: list[tuple[float, int]] = []
    warmup_at: list[tuple[float, int]] = []
    for stmt, tag in ours:
        by_worker[tag.worker_index][tag.phase] += 1
        if tag.phase == lc.WARMUP:
            warmup_at.append((stmt.time_s, stmt.pid))
        if tag.phase == lc.MEASUREMENT:
            first[tag.worker_index] = min(first.get(tag.worker_index, stmt.time_s), stmt.time_s)
            last[tag.worker_index] = max(last.get(tag.worker_index, stmt.time_s), stmt.time_s)
            measured_at.append((stmt.time_s, stmt.pid))
    assert sorted(first) == list(range(WORKERS))

    # the spreads of the first and last MEASUREMENT statements the server logged (for the
    # record: a loaded host delays a statement's arrival, and so its stamp, by milliseconds)
    first_spread = max(first.values()) - min(first.values())
    last_spread = max(last.values()) - min(last.values())
    clocks = [
        (w.heartbeat.clock_offset.ToNanoseconds(), w.heartbeat.clock_uncertainty.ToNanoseconds())
        for w in run.workers
        if w.heartbeat is not None
    ]
    seen = {
        "first": {i: round(t - m_start, 4) for i, t in first.items()},
        "last": {i: round(t - m_end, 4) for i, t in last.items()},
        "clocks (offset, uncertainty) ns": clocks,
        "lateness": run.lateness,
    }
    print("spread", round(first_spread, 4), round(last_spread, 4), seen)
    # every worker began MEASUREMENT at the planned start: none before it (a statement is
    # logged after it was issued; the log's stamps are whole milliseconds) ...
    assert min(first.values()) >= m_start - 0.002, seen
    # ... and none more than SPREAD_MS after it: a worker that switched later would have
    # issued WARMUP statements after that, several per connection (SELECT 1 takes well
    # under a millisecond), while a worker that switched in time has at most the one it
    # had in flight logged after it (however late a loaded host let it arrive)
    late = issued_after(warmup_at, m_start + SPREAD_MS / 1000)
    assert not late, (late, seen)
    # every worker went on until the planned end: none stopped early (a wrongly mapped end
    # is off by the warmup's second or a command's lead; a loaded host's stall by less) ...
    assert min(last.values()) >= m_end - STALL_S, seen
    # ... and no connection issued a MEASUREMENT statement after it
    late = issued_after(measured_at, m_end + 0.002)
    assert not late, (late, seen)

    # the controller's counts are the server's, per phase, exactly
    measured = Counter({phase: cell.count for (phase, _kind), cell in run.metrics.cells.items()})
    logged = Counter(tag.phase for _, tag in ours)
    assert logged == measured, (logged, measured)
    # and per worker (each one's own totals)
    for index, rec in enumerate(run.workers):
        fin = run.finished[rec.worker_id]
        mine = Counter({t.phase: t.count for t in fin.totals})
        assert mine == by_worker[index], (rec.worker_id, mine, by_worker[index])

    # MEASUREMENT lasted exactly as configured
    summary = {p.phase: p for p in run.summary().phases}
    assert summary[lc.MEASUREMENT].duration.ToNanoseconds() == 2_000_000_000
    assert run.measurement_end_ns - run.phase_ns[lc.MEASUREMENT] == 2_000_000_000
