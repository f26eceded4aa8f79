"""Statements still in flight when the load stops count once, as errors of the phase they
were issued in, exactly as PostgreSQL's log has them.

The test holds a lock that the workload's statements wait for, from the middle of
MEASUREMENT until after the run: every connection is stuck in a statement when the
planned end comes, the drain timeout passes, and the worker cancels them. Where the
statement waits decides what the server's log shows:

- in execution (an advisory lock the statement takes): the server logged it as executed
  when it began (``log_statement = 'all'``), then its error;
- before execution (a lock on the table its plan reads, taken when its parameters are
  bound): the server logged only its error (``ERROR`` and the ``STATEMENT`` it names).

Either way the statement was sent and failed: the run counts it once, as a ``timeout``
error (the drain's cancel: it did not finish within the drain timeout) of the phase it
was issued in. The oracle follows the same rule: what the server executed, plus what it
refused before executing.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from controller import lifecycle as lc
from controller.server import Controller, ControllerSettings
from tests.cluster import WorkerProcs, attached, wait_for, worker_env, workload
from tests.pg import PgCluster, parse_failures, parse_log
from worker.tags import Tag, parse_compact

pytestmark = pytest.mark.slow

CONNECTIONS = 2
WORKLOAD = """
name = "in-flight"
[target]
driver = "postgres"
dsn = "{dsn}"
[setup]
sql = [
  "CREATE TABLE IF NOT EXISTS in_flight (k BIGINT PRIMARY KEY)",
  "INSERT INTO in_flight VALUES (1) ON CONFLICT DO NOTHING",
]
[load]
workers = 1
connections = {connections}
warmup = "0s"
duration = "1500ms"
think_time = "0s"
[[query]]
name = "held"
sql = "{sql}"
"""
WAITS = {
    "in-execution": ("SELECT pg_advisory_xact_lock_shared(7301)", "SELECT pg_advisory_lock(7301)"),
    "before-execution": (
        "SELECT k FROM in_flight WHERE k = 1",
        "LOCK TABLE in_flight IN ACCESS EXCLUSIVE MODE",
    ),
}
DRAIN_S = 0.5


@pytest.fixture
async def quick_drain() -> AsyncIterator[Controller]:
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0", drain_timeout_s=DRAIN_S))
    await ctl.start()
    yield ctl
    await ctl.stop()


@pytest.fixture
def worker(quick_drain: Controller, tmp_path: Path) -> Iterator[WorkerProcs]:
    procs = WorkerProcs(quick_drain.address, worker_env(tmp_path / "home"))
    procs.spawn("w")
    yield procs
    procs.stop_all()


def ours(sql: str, run_id: str) -> Tag | None:
    if not sql.startswith("/*sl/"):
        return None
    tag = parse_compact(sql.split("*/", 1)[0].removeprefix("/*"))
    return tag if tag is not None and tag.run_short == run_id[:8] else None


def sessions(pg: PgCluster, run_id: str, lock_waits: bool) -> int:
    """The run's MEASUREMENT sessions (those waiting for a lock, if ``lock_waits``)."""
    wait = " AND wait_event_type = 'Lock'" if lock_waits else ""
    with pg.connect() as conn:
        row = conn.execute(
            f"SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s{wait}",
            (f"sl/{run_id[:8]}/%/M",),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("where", list(WAITS))
async def test_statements_in_flight_at_the_stop_count_once_as_the_server_logged_them(
    pg: PgCluster, quick_drain: Controller, worker: WorkerProcs, where: str
) -> None:
    sql, lock = WAITS[where]
    await attached(quick_drain, 1)
    since = len(pg.log_lines())
    text = WORKLOAD.format(dsn=pg.dsn, connections=CONNECTIONS, sql=sql)
    run = quick_drain.runs.start(workload(text))

    await wait_for(lambda: sessions(pg, run.run_id, False) == CONNECTIONS, 20, "MEASUREMENT")
    holder = await asyncio.to_thread(psycopg.connect, pg.dsn)
    try:
        await asyncio.to_thread(holder.execute, lock)
        await wait_for(lambda: sessions(pg, run.run_id, True) == CONNECTIONS, 10, "lock waits")
        assert run.plan is not None and run.state == lc.MEASUREMENT  # (before the end)
        assert run.task is not None
        await asyncio.wait_for(asyncio.shield(run.task), 30)
    finally:
        await asyncio.to_thread(holder.close)
    assert run.state == lc.COMPLETED, run.message

    lines = pg.log_lines()[since:]
    logged = Counter(t.phase for s in parse_log(lines) if (t := ours(s.sql, run.run_id)))
    assert logged[lc.MEASUREMENT] > CONNECTIONS  # (some ran before the lock)
    failed = [f for f in parse_failures(lines) if ours(f.sql, run.run_id) is not None]
    # the drain cancelled one statement per connection, and the server says so
    assert len(failed) == CONNECTIONS, failed
    assert all("canceling statement due to user request" in f.error for f in failed)
    if where == "before-execution":  # never logged as executed: refused before it
        for f in failed:
            tag = ours(f.sql, run.run_id)
            assert tag is not None
            logged[tag.phase] += 1
    # the run counts exactly that, per phase, errors included; the cancelled ones are
    # MEASUREMENT timeouts (issued before the planned end), and nothing is PROCESSING
    counted: Counter[int] = Counter()
    errors: Counter[tuple[int, str]] = Counter()
    for (phase, _), cell in run.metrics.cells.items():
        counted[phase] += cell.count  # (errors included)
        errors.update({(phase, cat): n for cat, n in cell.errors.items()})
    assert counted == logged, (counted, logged)
    assert errors == Counter({(lc.MEASUREMENT, "timeout"): CONNECTIONS}), errors
    fin = run.finished["w"]
    assert sum(t.count + sum(e.count for e in t.errors) for t in fin.totals) == sum(logged.values())
