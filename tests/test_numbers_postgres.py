"""Client latencies against the server's own clock: PostgreSQL logs how long it spent
executing each statement (``log_min_duration_statement = 0``, in a database of this
test's own), with the tag each statement carried. A client latency includes the server's
execution, so every order statistic of the client's samples is at least the same order
statistic of the server's, per kind and overall; and it adds little on top of it.

Two kinds of very different latency (a primary-key lookup and ``pg_sleep(0.03)``), so the
overall figures are nothing like either kind's.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import psycopg
import pytest
from hdrh.histogram import HdrHistogram

from controller import lifecycle as lc
from controller.server import Controller
from tests.cluster import WorkerProcs, attached, run_to_end, wait_for, worker_env, workload
from tests.pg import PgCluster
from worker.tags import parse_compact

pytestmark = pytest.mark.slow

DB = "numbers_pg"
WORKLOAD = """
name = "pg-numbers"
[target]
driver = "postgres"
dsn = "{dsn}"
[setup]
sql = ["DROP TABLE IF EXISTS t", "CREATE TABLE t (k BIGINT PRIMARY KEY, v TEXT)",
       "INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1000) g"]
[load]
workers = 1
connections = 4
warmup = "0s"
duration = "3s"
enrich = false
[[query]]
name = "point"
weight = 20
sql = "SELECT v FROM t WHERE k = ?"
params = [{{ int = [1, 1000] }}]
[[query]]
name = "sleepy"
weight = 1
sql = "SELECT pg_sleep(0.03), ?::int"
params = [{{ int = [1, 9] }}]
"""

EXECUTED = re.compile(r"duration: ([0-9.]+) ms\s+execute [^:]*: /\*(sl/[^*]+)\*/")
PERCENTILES = (50.0, 90.0, 95.0, 99.0)
CLIENT_OVERHEAD_MS = 100.0
"""How much a client latency may exceed the server's execution at the same rank: the
network round trip, libpq, the worker's thread on a busy two-core machine."""


def server_durations(pg: PgCluster, run_short: str) -> dict[tuple[int, str], list[float]]:
    """Milliseconds per (phase, kind) of every statement of the run the server executed."""
    out: dict[tuple[int, str], list[float]] = defaultdict(list)
    for line in pg.log_lines():
        m = EXECUTED.search(line)
        if m is None:
            continue
        tag = parse_compact(m.group(2))
        if tag is not None and tag.run_short == run_short:
            out[(tag.phase, tag.kind)].append(float(m.group(1)))
    return out


def at_rank(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, int(pct * len(ordered) / 100 + 0.5)) - 1]


def highest_equivalent_ms(h: HdrHistogram, ms: float) -> float:
    return float(h.get_highest_equivalent_value(int(ms * 1000))) / 1000


async def test_client_latencies_bound_the_servers_per_kind_and_overall(
    pg: PgCluster, controller: Controller, tmp_path: Path
) -> None:
    """Fails if latencies are recorded in the wrong unit or from the wrong instant (e.g.
    after execute returned), or if the overall percentiles are derived from the kinds'
    rather than from all samples: the server's execution times would then not fit under
    (or too far under) the client's at the same rank."""
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.execute(f"CREATE DATABASE {DB}")
        conn.execute(f"ALTER DATABASE {DB} SET log_min_duration_statement = 0")
        conn.execute(f"ALTER DATABASE {DB} SET log_statement = 'none'")
    dsn = pg.dsn.replace("dbname=postgres", f"dbname={DB}")
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    procs.spawn("pg-numbers")
    try:
        await attached(controller, 1)
        run = await run_to_end(controller, workload(WORKLOAD.format(dsn=dsn)))
    finally:
        procs.stop_all()
    assert run.state == lc.COMPLETED, run.message
    summary = {p.phase: p for p in run.summary().phases}[lc.MEASUREMENT]
    client = {kind: run.metrics.cells[(lc.MEASUREMENT, kind)].count for kind in ("point", "sleepy")}
    # the server's log holds every statement of the run (it may lag the run's end a little)
    await wait_for(
        lambda: all(
            len(server_durations(pg, run.run_id[:8]).get((lc.MEASUREMENT, k), [])) >= n
            for k, n in client.items()
        ),
        10,
        "the server's log to hold every statement",
    )
    server = server_durations(pg, run.run_id[:8])
    h = HdrHistogram(1, 3_600_000_000, 3)
    scopes = {
        "point": (summary.by_kind["point"], server[(lc.MEASUREMENT, "point")]),
        "sleepy": (summary.by_kind["sleepy"], server[(lc.MEASUREMENT, "sleepy")]),
    }
    scopes["overall"] = (
        summary.overall,
        server[(lc.MEASUREMENT, "point")] + server[(lc.MEASUREMENT, "sleepy")],
    )
    for name, (stats, durations) in scopes.items():
        # the same statements on both sides, once each
        assert stats.count == len(durations), name
        reported = {50.0: stats.p50_ms, 95.0: stats.p95_ms, 99.0: stats.p99_ms}
        for pct, client_ms in reported.items():
            server_ms = at_rank(durations, pct)
            assert client_ms >= server_ms, (name, pct, client_ms, server_ms)
            assert client_ms <= highest_equivalent_ms(h, server_ms + CLIENT_OVERHEAD_MS), (
                name,
                pct,
                client_ms,
                server_ms,
            )
        assert stats.max_ms >= max(durations), name
        assert stats.mean_ms >= sum(durations) / len(durations), name
    sleepy, point = summary.by_kind["sleepy"], summary.by_kind["point"]
    assert sleepy.p50_ms >= 30.0 > 10 * point.p50_ms
    # the slow kind is about 1 in 21 statements (but a far larger share of the time)
    assert summary.overall.p50_ms < 30.0 <= summary.overall.p99_ms
