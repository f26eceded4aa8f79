"""A StopRun mid-MEASUREMENT, against PostgreSQL's log: every statement counts once.

MEASUREMENT ends at the instant the stop was decided (docs/phases.md). A worker whose
Stop takes 25 ms to arrive goes on issuing meanwhile, with the tag it has: the server logs
those statements as MEASUREMENT, the run records them as PROCESSING. The rule the oracle
follows: the server's MEASUREMENT statements are the run's MEASUREMENT plus PROCESSING
statements, exactly; the PROCESSING ones are those the server logged after the decision
(to within the clock error, a busy host's delay between issuing a statement and the
server logging it, and the log's millisecond stamps).
"""

from __future__ import annotations

from collections import Counter

import pytest

from controller import lifecycle as lc
from controller.server import Controller
from tests.cluster import WorkerProcs, attached, wait_for, workload
from tests.latency_proxy import LatencyProxy
from tests.pg import PgCluster, parse_log
from worker.tags import parse_compact

pytestmark = pytest.mark.slow

SPLIT_S = 0.01
"""How far from the decision instant, by the server's log, a statement's side is sure."""
WORKLOAD = """
name = "stopped"
[target]
driver = "postgres"
dsn = "{dsn}"
[load]
workers = 1
connections = 2
warmup = "300ms"
duration = "30s"
think_time = "0s"
[[query]]
name = "one"
sql = "SELECT 1"
"""


async def test_a_stop_mid_measurement_counts_each_statement_once(
    pg: PgCluster, controller: Controller, workers: WorkerProcs
) -> None:
    host, port = controller.address.rsplit(":", 1)
    # symmetric, so the clock offset stays right: only the Stop's arrival is late
    with LatencyProxy(host, int(port), up_s=0.025, down_s=0.025) as proxy:
        procs = WorkerProcs(f"127.0.0.1:{proxy.port}", workers.env)
        try:
            procs.spawn("late-news")
            await attached(controller, 1)
            since = len(pg.log_lines())
            run = controller.runs.start(workload(WORKLOAD.format(dsn=pg.dsn)))
            await wait_for(lambda: run.state == lc.MEASUREMENT, 20, "MEASUREMENT")
            await wait_for(run.metrics.complete_point, 10, "a complete second")
            controller.runs.stop(run.run_id)
            assert run.task is not None
            await run.task
        finally:
            procs.stop_all()
    assert run.state == lc.CANCELLED
    logged: Counter[int] = Counter()
    end_s = run.measurement_end_ns / 1e9
    times = []
    for stmt in parse_log(pg.log_lines()[since:]):
        if not stmt.sql.startswith("/*sl/"):
            continue
        tag = parse_compact(stmt.sql.split("*/", 1)[0].removeprefix("/*"))
        if tag is not None and tag.run_short == run.run_id[:8]:
            logged[tag.phase] += 1
            if tag.phase == lc.MEASUREMENT:
                times.append(stmt.time_s - end_s)
    counted = Counter({phase: cell.count for (phase, _), cell in run.metrics.cells.items()})
    own = Counter({int(t.phase): t.count for t in run.finished["late-news"].totals})
    assert own == counted, (own, counted)
    after = [sum(1 for t in times if t >= margin) for margin in (SPLIT_S, 0.001, -SPLIT_S)]
    print(f"server {dict(logged)}, run {dict(counted)}, logged after the decision {after}")
    # nothing lost, nothing counted twice: what the server ran as MEASUREMENT is the run's
    # MEASUREMENT and PROCESSING together; WARMUP is WARMUP
    assert logged[lc.WARMUP] == counted[lc.WARMUP]
    assert logged[lc.MEASUREMENT] == counted[lc.MEASUREMENT] + counted[lc.PROCESSING]
    assert set(logged) <= {lc.WARMUP, lc.MEASUREMENT}
    # the Stop took 25 ms or more to arrive: the worker issued statements meanwhile, and
    # those are the ones the server logged after the decision (by its clock, to within
    # the worker's clock error and a busy host's delay between issuing and logging)
    assert counted[lc.PROCESSING] > 10
    assert after[0] <= counted[lc.PROCESSING] <= after[2], after
