"""Shared pieces for the gRPC tests: a real in-process controller with real local worker
processes, condition waits with deadlines, and a tiny SQLite workload."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc

from controller.local_workers import LocalWorkers
from controller.server import Controller, ControllerSettings
from snowload.v1 import common_pb2, run_pb2, run_pb2_grpc

RPC_TIMEOUT_S = 10.0
"""Deadline of every unary call."""
ATTACH_TIMEOUT_S = 30.0
"""How long local worker processes may take to start and attach."""
WATCH_TIMEOUT_S = 90.0
"""Deadline of a WatchRun stream (a short run lasts a few seconds)."""

LIFECYCLE = (
    common_pb2.STATE_PENDING,
    common_pb2.STATE_PREPARING,
    common_pb2.STATE_WARMUP,
    common_pb2.STATE_MEASUREMENT,
    common_pb2.STATE_PROCESSING,
    common_pb2.STATE_COMPLETED,
)
"""The successful lifecycle, in order."""

SEED_ROWS = 1000


def tiny_workload(
    *,
    name: str = "grpc-api-test",
    database: str = "grpc_api.db",
    workers: int = 2,
    connections: int = 4,
    warmup: str = "1s",
    duration: str = "2s",
    ready_timeout: str = "60s",
) -> str:
    """A small SQLite workload: setup creates and fills a table; two query kinds."""
    return f"""\
name = "{name}"

[target]
driver = "sqlite"
database = "{database}"

[setup]
sql = [
  "DROP TABLE IF EXISTS items",
  "CREATE TABLE items (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)",
  '''INSERT INTO items (id, value)
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {SEED_ROWS})
     SELECT i, i * 7 FROM n''',
]

[load]
mode = "closed"
workers = {workers}
connections = {connections}
warmup = "{warmup}"
duration = "{duration}"
ready_timeout = "{ready_timeout}"

[[query]]
name = "lookup"
weight = 3
sql = "SELECT value FROM items WHERE id = ?"
params = [{{ int = [1, {SEED_ROWS}] }}]

[[query]]
name = "insert"
weight = 1
sql = "INSERT INTO items (id, value) VALUES (?, ?)"
params = [{{ sequence = 1000001 }}, {{ int = [1, 100] }}]
"""


@dataclass
class Cluster:
    controller: Controller
    channel: grpc.aio.Channel
    runs: run_pb2_grpc.RunServiceStub
    workers: LocalWorkers


@asynccontextmanager
async def running_cluster(workers: int = 0) -> AsyncIterator[Cluster]:
    """A real controller on a free loopback port plus ``workers`` real worker processes
    (waited for until attached). Set SNOWLOAD_HOME before entering."""
    controller = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await controller.start()
    local = LocalWorkers(controller.address, workers)
    try:
        local.start()
        async with grpc.aio.insecure_channel(controller.address) as channel:
            cluster = Cluster(controller, channel, run_pb2_grpc.RunServiceStub(channel), local)
            if workers:
                await wait_for_workers(cluster.runs, workers)
            yield cluster
    finally:
        try:
            await controller.stop()
        finally:
            await local.stop()


async def wait_for_workers(
    stub: run_pb2_grpc.RunServiceStub, count: int, timeout_s: float = ATTACH_TIMEOUT_S
) -> list[run_pb2.WorkerInfo]:
    """Poll ListWorkers until ``count`` workers are connected; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = await stub.ListWorkers(run_pb2.ListWorkersRequest(), timeout=RPC_TIMEOUT_S)
        connected = [w for w in got.workers if w.connected]
        if len(connected) >= count:
            return connected
        if time.monotonic() > deadline:
            raise AssertionError(
                f"only {len(connected)} of {count} workers attached within {timeout_s:g}s: "
                f"{got.workers}"
            )
        await asyncio.sleep(0.05)


async def watch_to_end(
    stub: run_pb2_grpc.RunServiceStub, run_id: str
) -> list[run_pb2.WatchRunResponse]:
    """Every message of a WatchRun stream, until the server ends it."""
    call = stub.WatchRun(run_pb2.WatchRunRequest(run_id=run_id), timeout=WATCH_TIMEOUT_S)
    return [msg async for msg in call]


def state_name(state: int) -> str:
    return common_pb2.State.Name(state)  # type: ignore[arg-type]


def phase(summary: common_pb2.RunSummary, state: int) -> common_pb2.PhaseSummary | None:
    for ps in summary.phases:
        if ps.phase == state:
            return ps
    return None
