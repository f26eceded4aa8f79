"""Drain time: cancelling N statements in flight when every cancel request is slow.

A throwaway PostgreSQL cluster (tests/pg.py) sits behind the delaying TCP proxy of
tests/delay_proxy.py: every new connection waits ``--delay`` seconds before the proxy
connects it to the server. A PostgreSQL cancel request is a new connection, so each one
takes about that long, the way it would to a far-away or overloaded server. An executor
(worker/executor.py) with N connections runs ``SELECT pg_sleep(60)`` on each; once the
server shows all N active (pg_stat_activity), ``Executor.stop(0)`` is timed: no drain
time, so every statement must be cancelled. Afterwards pg_stat_activity must show none of
them left running.

    python bench/drain_cancels.py                         # N = 8, 32, 128; delay 0.5 s
    python bench/drain_cancels.py --connections 8 --delay 1.0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchenv import print_header

from snowload.v1 import common_pb2
from snowload.workload import parse_toml
from tests.delay_proxy import DelayProxy
from tests.pg import PgCluster, init_cluster, start_cluster, stop_cluster, wait_until
from tests.test_drain_cancels import WORKLOAD, sleeping
from worker.drivers import get_driver
from worker.executor import Executor, RunPlan
from worker.generators import Sequences


def one(pg: PgCluster, connections: int, delay_s: float) -> tuple[float, int]:
    """(seconds Executor.stop took, statements left running)."""
    marker = f"bench-{time.time_ns()}"
    with DelayProxy(pg.host, pg.port, delay_s) as proxy:
        wl = parse_toml(
            WORKLOAD.format(port=proxy.port, connections=connections, marker=marker),
            source="drain.toml",
        )
        plan = RunPlan("r", wl, 0, connections, Sequences(0, 1))
        executor = Executor(plan, get_driver(wl.target.driver), phase=common_pb2.STATE_MEASUREMENT)
        executor.open_connections()
        executor.start()
        wait_until(lambda: sleeping(pg, marker) == connections, 120)
        began = time.monotonic()
        executor.stop(0.0)
        took = time.monotonic() - began
    return took, sleeping(pg, marker)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, nargs="+", default=[8, 32, 128])
    p.add_argument("--delay", type=float, default=0.5, help="seconds per new connection")
    args = p.parse_args()
    print_header("drain: cancelling every statement in flight, slow cancel requests")
    pg = init_cluster()
    try:
        start_cluster(pg)
        for n in args.connections:
            took, left = one(pg, n, args.delay)
            print(
                f"  {n:4d} connections, {args.delay:g} s per cancel request: "
                f"stop took {took:.2f} s; statements left running: {left}",
                flush=True,
            )
    finally:
        stop_cluster(pg)


if __name__ == "__main__":
    main()
