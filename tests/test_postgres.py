"""PostgreSQL for real: a throwaway cluster, real workers, the server's own statement log."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller import lifecycle as lc
from controller.server import Controller, ControllerSettings
from tests.cluster import WorkerProcs, attached, run_to_end, worker_env, workload
from tests.in_flight import issued_after
from tests.pg import PgCluster, parse_log
from worker.tags import parse_compact

WORKLOAD = """
name = "pg-e2e"
[target]
driver = "postgres"
dsn = "{dsn}"
[setup]
sql = [
  "DROP TABLE IF EXISTS kv",
  "CREATE TABLE kv (k BIGINT PRIMARY KEY, v TEXT)",
  "INSERT INTO kv SELECT g, 'x' FROM generate_series(1, 1000) g",
]
[load]
workers = 2
connections = 4
warmup = "1500ms"
duration = "2s"
think_time = "1ms"
[[query]]
name = "get"
weight = 3
sql = "SELECT v FROM kv WHERE k = ?"
params = [{{ int = [1, 1000] }}]
[[query]]
name = "put"
sql = "INSERT INTO kv (k, v) VALUES (?, ?)"
params = [{{ sequence = 100000 }}, {{ string = 8 }}]
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


async def test_every_statement_carries_its_phase_in_the_server_log(
    pg: PgCluster, controller: Controller, workers: WorkerProcs
) -> None:
    workers.spawn("pg-a")
    workers.spawn("pg-b")
    await attached(controller, 2)
    log_start = len(pg.log_lines())
    run = await run_to_end(controller, workload(WORKLOAD.format(dsn=pg.dsn)))
    assert run.state == lc.COMPLETED, run.message

    short = run.run_id[:8]
    logged_run = parse_log(pg.log_lines()[log_start:])
    # snowload's own statements: the setup SQL under the run's setup tag, as the session's
    # name and as a leading comment, in the workload's order; the pg_stat_statements reads
    # under its telemetry tag
    setup_tag, telemetry_tag = f"sl/{short}/setup", f"sl/{short}/telemetry"
    setup_sql = workload(WORKLOAD.format(dsn=pg.dsn)).setup_sql
    assert [s.sql for s in logged_run if s.app == setup_tag] == [
        f"/*{setup_tag}*/ {sql}" for sql in setup_sql
    ]
    telemetry = [s.sql for s in logged_run if s.app == telemetry_tag]
    assert any("FROM pg_stat_statements" in sql for sql in telemetry), telemetry
    assert all(sql.startswith(f"/*{telemetry_tag}*/ ") for sql in telemetry), telemetry
    for stmt in logged_run:  # and nothing of the load under them
        if stmt.sql.startswith(f"/*sl/{short}/w"):
            assert stmt.app not in (setup_tag, telemetry_tag), stmt

    ours = []
    for stmt in logged_run:
        head = stmt.sql.split("*/", 1)[0].removeprefix("/*")
        tag = parse_compact(head) if stmt.sql.startswith("/*sl/") else None
        if tag is not None and tag.run_short == short:
            ours.append((stmt, tag))
    assert ours, "no tagged statement in the server log"

    # the session tag (application_name) and the statement tag always agree
    for stmt, tag in ours:
        assert stmt.app == f"sl/{short}/w{tag.worker_index}/" + stmt.app.rsplit("/", 1)[1]
        assert stmt.app.endswith("/" + {lc.WARMUP: "W", lc.MEASUREMENT: "M"}[tag.phase])

    # the plan's instant cuts the phases: no MEASUREMENT statement before it (the log
    # stamps a statement when it arrives, after its issue), no WARMUP one issued after it:
    # a loaded host may delay a statement's arrival by milliseconds, so the proof is per
    # connection (at most the one in flight at the instant is logged after it)
    m_start = run.plan.measurement_start_time.ToNanoseconds() / 1e9
    assert m_start == run.phase_ns[lc.MEASUREMENT] / 1e9
    assert [s for s, t in ours if t.phase == lc.MEASUREMENT and s.time_s < m_start - 0.001] == []
    warmup = [(s.time_s, s.pid) for s, t in ours if t.phase == lc.WARMUP]
    assert not issued_after(warmup, m_start + 0.002), m_start

    # per-phase counts agree with the server log within that margin
    logged = Counter((t.phase, t.kind) for _, t in ours)
    measured = Counter({key: cell.count for key, cell in run.metrics.cells.items()})
    for key in set(logged) | set(measured):
        assert abs(logged[key] - measured[key]) <= 4, (key, logged[key], measured[key])
    assert measured[(lc.MEASUREMENT, "put")] > 0
