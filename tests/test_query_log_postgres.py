"""The query log against PostgreSQL's own record: the server logs every statement it
executed with its duration, its backend pid and its bound parameters
(``log_min_duration_statement = 0`` in a database of this test's own). A statement
sleeps for a duration its parameter decides, so the server's slowest statements are
known; the run's slowest entries must be exactly those, with their parameters, the
backend pid that ran them and an issue time that matches the server's clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from controller import lifecycle as lc
from controller.server import Controller
from tests.cluster import WorkerProcs, attached, run_to_end, wait_for, worker_env, workload
from tests.pg import PgCluster

pytestmark = pytest.mark.slow

DB = "query_log_pg"
SLEEPS = {40: 0.02, 90: 0.05, 140: 0.15, 190: 0.25, 240: 0.35}
"""Parameter -> seconds pg_sleep: every other statement sleeps 0 s."""
CASES = " ".join(f"WHEN {v} THEN {s}" for v, s in SLEEPS.items())
WORKLOAD = f"""
name = "pg-query-log"
[target]
driver = "postgres"
dsn = "{{dsn}}"
[load]
workers = 1
connections = 2
warmup = "0s"
duration = "2s"
enrich = false
slow_queries = 5
query_sample = 50
[[query]]
name = "sleepy"
sql = "SELECT pg_sleep(CASE v {CASES} ELSE 0 END) FROM (SELECT ?::int AS v) s"
params = [{{{{ sequence = 1 }}}}]
"""

LINE = re.compile(
    r"^(?P<ts>\S+ \S+) \S+ \[(?P<pid>\d+)\] app=(?P<app>\S*) "
    r"(?:LOG:  duration: (?P<ms>[0-9.]+) ms  execute [^:]*: /\*sl/(?P<run>[0-9a-f]{8})"
    r"|DETAIL:  [Pp]arameters: \$1 = '(?P<param>\d+)')"
)


@dataclass(frozen=True)
class Executed:
    pid: int
    duration_ms: float
    end_s: float
    param: int


def executed(pg: PgCluster, run_short: str) -> list[Executed]:
    """The run's statements as the server logged them (a duration line, then its
    parameters on the DETAIL line of the same backend)."""
    out = []
    pending: dict[int, tuple[float, float]] = {}
    for line in pg.log_lines():
        m = LINE.match(line)
        if m is None:
            continue
        pid = int(m.group("pid"))
        if m.group("ms") is not None:
            if m.group("run") == run_short:
                ts = datetime.strptime(m.group("ts"), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
                pending[pid] = (float(m.group("ms")), ts.timestamp())
        elif pid in pending:
            ms, end = pending.pop(pid)
            out.append(Executed(pid, ms, end, int(m.group("param"))))
    return out


async def test_the_slowest_entries_are_the_servers_slowest(
    pg: PgCluster, controller: Controller, tmp_path: Path
) -> None:
    """Fails if the slow-N threshold drops a slower query, if the entries carry another
    query's parameters or pid, or if their issue times are on the wrong clock."""
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.execute(f"CREATE DATABASE {DB}")
        conn.execute(f"ALTER DATABASE {DB} SET log_min_duration_statement = 0")
        conn.execute(f"ALTER DATABASE {DB} SET log_statement = 'none'")
    dsn = pg.dsn.replace("dbname=postgres", f"dbname={DB}")
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    procs.spawn("pg-log")
    try:
        await attached(controller, 1)
        run = await run_to_end(controller, workload(WORKLOAD.format(dsn=dsn)))
    finally:
        procs.stop_all()
    assert run.state == lc.COMPLETED, run.message
    count = run.metrics.cells[(lc.MEASUREMENT, "sleepy")].count
    assert count > max(SLEEPS), "the run did not reach every sleeping parameter"
    short = run.run_id[:8]
    await wait_for(lambda: len(executed(pg, short)) >= count, 10, "the server's log")
    server = sorted(executed(pg, short), key=lambda e: -e.duration_ms)
    store = controller.runs.store
    slowest = store.run_queries(run.run_id, phase=lc.MEASUREMENT, slowest=10)
    assert len(slowest) == 5  # [load] slow_queries
    # the server's three slowest (100 ms apart) are among them, in the server's order: a
    # client stall on a loaded host may add a fast query, it cannot drop a slow one
    assert [s.param for s in server[:3]] == [240, 190, 140]
    logged = [(e.params, e.server_id) for e in slowest]
    ranks = [logged.index(([s.param], str(s.pid))) for s in server[:3]]
    assert ranks == sorted(ranks), (logged, server[:3])
    by_statement = {(s.param, s.pid): s for s in server}
    for entry in slowest:
        assert entry.kind == "sleepy" and entry.error is None and entry.worker == "pg-log"
        assert entry.params is not None
        # every entry is a statement the server ran, on the backend the entry names
        stmt = by_statement[(entry.params[0], int(entry.server_id))]
        # the client waited at least as long as the server executed
        assert entry.latency_ms >= stmt.duration_ms
        # issued on the run's clock: the server ended it about latency later
        started = entry.start_ns / 1e9
        assert abs((stmt.end_s - stmt.duration_ms / 1000) - started) < 0.25, entry
        issued = datetime.fromisoformat(entry.started_at.replace("Z", "+00:00"))
        assert abs(issued.timestamp() - started) < 1e-3
    # the uniform sample: its entries are statements the server ran, with their pids
    by_param = {s.param: s.pid for s in server}
    sample = [e for e in store.query_entries(run.run_id) if e.sampled]
    assert len(sample) == 50
    assert all(e.params is not None and by_param[e.params[0]] == int(e.server_id) for e in sample)
