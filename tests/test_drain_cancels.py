"""A drain cancels the statements still in flight all at once: with cancel requests that
each take a while (a slow network, tests/delay_proxy.py in front of a real PostgreSQL),
the stop ends within about one cancel's time, not one per connection; and every
statement is cancelled, as the server's own log and pg_stat_activity say."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from snowload.v1 import common_pb2
from snowload.workload import parse_toml
from tests.delay_proxy import DelayProxy
from tests.pg import PgCluster, parse_failures, wait_until
from worker.cancels import cancel_all
from worker.drivers import get_driver
from worker.executor import Executor, RunPlan
from worker.generators import Sequences

CONNECTIONS = 8
DELAY_S = 0.75
"""How long the proxy holds every new connection, a cancel request's included."""

WORKLOAD = """
name = "drain-cancels"
[target]
driver = "postgres"
dsn = "host=127.0.0.1 port={port} dbname=postgres user=postgres"
[load]
workers = 1
connections = {connections}
[[query]]
name = "held"
sql = "SELECT pg_sleep(60) /* {marker} */"
"""


def sleeping(pg: PgCluster, marker: str) -> int:
    with pg.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s",
            (f"%pg_sleep(60) /* {marker} */%",),
        ).fetchone()
    assert row is not None
    count = row[0]
    assert isinstance(count, int)
    return count


def test_the_drain_cancels_every_connection_at_once(pg: PgCluster, tmp_path: Path) -> None:
    """Fails if the cancels run one after another (the stop would take CONNECTIONS x
    DELAY_S = 6 s), or if a statement is left running on the server."""
    marker = f"drain-{time.time_ns()}"
    with DelayProxy(pg.host, pg.port, DELAY_S) as proxy:
        wl = parse_toml(
            WORKLOAD.format(port=proxy.port, connections=CONNECTIONS, marker=marker),
            source="drain.toml",
        )
        plan = RunPlan("r", wl, 0, CONNECTIONS, Sequences(0, 1))
        executor = Executor(plan, get_driver(wl.target.driver), phase=common_pb2.STATE_MEASUREMENT)
        executor.open_connections()
        opened = len(proxy.connections())
        executor.start()
        wait_until(lambda: sleeping(pg, marker) == CONNECTIONS, 20)
        proxy.reset_max()
        began = time.monotonic()
        executor.stop(0.0)
        took = time.monotonic() - began
        cancel_requests = proxy.connections()[opened:]
        together = proxy.max_in_flight

    # one cancel request per connection, all in flight together
    assert len(cancel_requests) == CONNECTIONS
    accepted = [c.accepted_ns for c in cancel_requests]
    assert (max(accepted) - min(accepted)) / 1e9 < DELAY_S
    assert together == CONNECTIONS
    # about one delay, not CONNECTIONS of them (generous: the bound is the feature)
    assert took < CONNECTIONS * DELAY_S / 2, f"the stop took {took:.2f}s"
    assert not any(t.is_alive() for t in executor.threads)
    # the server cancelled every one of them, and none is left running
    assert sleeping(pg, marker) == 0

    ours = [f for f in parse_failures(pg.log_lines()) if marker in f.sql]
    assert len({f.pid for f in ours}) == CONNECTIONS
    assert all("canceling statement due to user request" in f.error for f in ours), ours


def test_cancel_all_ends_at_its_deadline_when_a_cancel_hangs() -> None:
    """Fails if one cancel that never returns holds the drain past the deadline, or if
    the others are not all called."""
    called: list[int] = []
    forever = threading.Event()

    def quick(i: int) -> None:
        called.append(i)

    def hang() -> None:
        forever.wait()

    began = time.monotonic()
    finished = cancel_all([hang, *(lambda i=i: quick(i) for i in range(20))], deadline_s=0.5)
    took = time.monotonic() - began
    forever.set()
    assert finished == 20 and sorted(called) == list(range(20))
    assert 0.5 <= took < 3.0
