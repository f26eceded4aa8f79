"""Opening connections: bounded parallelism, and READY only once every connection is open.

A real worker process opens its connections to the real PostgreSQL cluster through a
delaying TCP proxy (tests/delay_proxy.py), so that every connect takes a known time and
the proxy can count how many connects are in flight at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from controller import lifecycle as lc
from controller.runs import ActiveRun
from controller.server import Controller, ControllerSettings
from tests.cluster import WorkerProcs, attached, worker_env, workload
from tests.delay_proxy import DelayProxy
from tests.pg import PgCluster

CONNECTIONS = 100

WORKLOAD = """
name = "startup"
[target]
driver = "postgres"
dsn = "host=127.0.0.1 port={port} dbname=postgres user=postgres"
[load]
workers = 1
connections = {connections}
warmup = "0s"
duration = "1s"
{parallel}
[[query]]
name = "one"
sql = "SELECT 1"
"""

OUR_BACKENDS = """
SELECT count(*) FROM pg_stat_activity
WHERE backend_type = 'client backend'
  AND (application_name LIKE 'snowload%' OR application_name LIKE 'sl/%')
"""


@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await ctl.start()
    yield ctl
    await ctl.stop()


@pytest.fixture
def workers(controller: Controller, tmp_path: Path) -> Iterator[WorkerProcs]:
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    yield procs
    procs.stop_all()


async def run_watching_backends(
    controller: Controller, pg: PgCluster, text: str, timeout_s: float = 60.0
) -> tuple[ActiveRun, int]:
    """Run to the end while polling pg_stat_activity; returns the run and the most
    snowload client backends seen at once."""
    run = controller.runs.start(workload(text))
    assert run.task is not None
    most = 0
    async with await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True) as conn:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not run.task.done():
            assert loop.time() < deadline, f"run not finished within {timeout_s}s"
            cur = await conn.execute(OUR_BACKENDS)
            row = await cur.fetchone()
            assert row is not None
            most = max(most, int(row[0]))
            await asyncio.wait({run.task}, timeout=0.05)
    await run.task
    return run, most


async def test_connects_are_bounded_and_ready_waits_for_all(
    pg: PgCluster, controller: Controller, workers: WorkerProcs
) -> None:
    delay_s, parallel = 0.3, 10
    workers.spawn("startup-a")
    await attached(controller, 1)
    with DelayProxy("127.0.0.1", pg.port, delay_s) as proxy:
        text = WORKLOAD.format(
            port=proxy.port,
            connections=CONNECTIONS,
            parallel=f"max_parallel_connects = {parallel}",
        )
        run, backends = await run_watching_backends(controller, pg, text)
        assert run.state == lc.COMPLETED, (run.reason, run.message)

        # bounded, and really parallel
        assert proxy.max_in_flight <= parallel, proxy.max_in_flight
        assert proxy.max_in_flight >= 8, proxy.max_in_flight

        # READY (controller clock) came after all 100 connections were through their delay
        # (connections accepted later, e.g. for server-side enrichment, are not the load's)
        ready_ns = run.ready["startup-a"]
        before = [c for c in proxy.connections() if c.accepted_ns <= ready_ns]
        assert len(before) == CONNECTIONS, len(before)
        assert all(c.connected_ns > 0 for c in before), "a connection never reached upstream"
        last = max(c.connected_ns for c in before)
        assert last <= ready_ns, f"READY {(last - ready_ns) / 1e6:.1f} ms before the last connect"
        # ten waves of 0.3 s cannot take less than 3 s
        prepare_s = (ready_ns - run.phase_ns[lc.PREPARING]) / 1e9
        assert prepare_s >= CONNECTIONS / parallel * delay_s * 0.95, prepare_s

    # the server saw every connection, all tagged as snowload's
    assert backends >= CONNECTIONS, backends
    measurement = run.metrics.phase_summary(lc.MEASUREMENT, 1.0)
    assert measurement is not None
    assert measurement.overall.count > 0
    assert measurement.overall.errors == 0


async def test_default_parallelism_opens_every_connection_at_once(
    pg: PgCluster, controller: Controller, workers: WorkerProcs
) -> None:
    delay_s = 0.5
    workers.spawn("startup-b")
    await attached(controller, 1)
    with DelayProxy("127.0.0.1", pg.port, delay_s) as proxy:
        text = WORKLOAD.format(port=proxy.port, connections=CONNECTIONS, parallel="")
        run, backends = await run_watching_backends(controller, pg, text)
        assert run.state == lc.COMPLETED, (run.reason, run.message)
        ready_ns = run.ready["startup-b"]
        before = [c for c in proxy.connections() if c.accepted_ns <= ready_ns]
        assert len(before) == CONNECTIONS, len(before)
        assert max(c.connected_ns for c in before) <= ready_ns
        # the default (128) lets all 100 wait out their delay together; with 8 at a time
        # it would take 13 waves (6.5 s)
        assert proxy.max_in_flight >= CONNECTIONS // 2, proxy.max_in_flight
        prepare_s = (ready_ns - run.phase_ns[lc.PREPARING]) / 1e9
        # far below 13 waves even on a busy machine (the benchmark measures it precisely)
        assert prepare_s < 8 * delay_s, prepare_s
    assert backends >= CONNECTIONS, backends
