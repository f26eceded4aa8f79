"""The dead-man switch keeps its promise: after a SIGKILL of the controller, the load on
the target stops within 5 s, by the target's own clock.

A real daemon (``snowload controller``), two real worker processes with the default
orphan timeout, the throwaway PostgreSQL of tests/pg.py logging every statement with its
time and session tag; the last statement of the run in that log is the oracle.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import grpc

from controller import lifecycle as lc
from snowload.v1 import run_pb2, run_pb2_grpc
from tests.cluster import WorkerProcs, listed, start_daemon, worker_env
from tests.pg import PgCluster, parse_log
from worker.tags import parse_compact

PROMISE_S = 5.0
WORKLOAD = """
name = "dead-man"
[target]
driver = "postgres"
dsn = "{dsn}"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS dms (k BIGINT PRIMARY KEY)",
       "INSERT INTO dms VALUES (1) ON CONFLICT DO NOTHING"]
[load]
workers = 2
connections = 4
warmup = "0s"
duration = "60s"
think_time = "2ms"
[[query]]
name = "get"
sql = "SELECT k FROM dms WHERE k = ?"
params = [{{ int = [1, 1] }}]
"""


def statement_times(pg: PgCluster, run_id: str, since: int) -> list[float]:
    """When the server logged each statement of the run (its own clock, seconds)."""
    out = []
    for stmt in parse_log(pg.log_lines()[since:]):
        head = stmt.sql.split("*/", 1)[0].removeprefix("/*")
        tag = parse_compact(head) if stmt.sql.startswith("/*sl/") else None
        if tag is not None and tag.run_short == run_id[:8]:
            out.append(stmt.time_s)
    return out


async def test_the_load_stops_within_5s_of_the_controllers_death(
    pg: PgCluster, tmp_path: Path
) -> None:
    """Fails if the default orphan timeout, with the guard's tick and a statement in
    flight, lets load reach the server more than 5 s after the controller died."""
    env = dict(os.environ, SNOWLOAD_HOME=str(tmp_path / "home"))
    proc, address = start_daemon(
        ["--listen", "127.0.0.1:0", "--db", str(tmp_path / "results.db")], env
    )
    procs = WorkerProcs(address, worker_env(tmp_path / "home"))
    procs.spawn("d0")
    procs.spawn("d1")
    since = len(pg.log_lines())
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = run_pb2_grpc.RunServiceStub(channel)
            await listed(stub, 2)
            text = WORKLOAD.format(dsn=pg.dsn)
            started = await stub.StartRun(run_pb2.StartRunRequest(workload_toml=text), timeout=10)
            run_id = started.run.run_id
            async for update in stub.WatchRun(run_pb2.WatchRunRequest(run_id=run_id), timeout=60):
                if update.run.state == lc.MEASUREMENT and update.progress.latest.second >= 2:
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        died = time.time()
        # quiet for 1.5 s, and at least the promise past the death: the load has stopped
        deadline = time.monotonic() + 30
        while True:
            now = time.time()
            times = statement_times(pg, run_id, since)
            if times and now - max(times) > 1.5 and now - died > PROMISE_S + 0.5:
                break
            assert time.monotonic() < deadline, (
                f"the load did not stop: {len(times)} statements, "
                f"the last {max(times, default=died) - died:.2f}s after the kill"
            )
            await asyncio.sleep(0.1)
        assert [t for t in times if t < died], "no load before the kill"
        last = max(times)
        print(f"last statement {last - died:.2f}s after the kill")
        assert last - died <= PROMISE_S, f"last statement {last - died:.2f}s after the kill"
        assert all(p.poll() is None for p in procs.procs.values())  # alive, waiting
    finally:
        procs.stop_all()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
