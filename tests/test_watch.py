"""WatchRun: the last message is always the terminal state; slow clients slow no one."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from controller import lifecycle as lc
from controller.server import Controller, ControllerSettings
from controller.watch import Broadcaster
from snowload.v1 import run_pb2, run_pb2_grpc
from tests.cluster import WorkerProcs, attached, read_traces, wait_for, worker_env

WORKLOAD = """
name = "watch"
[target]
database = "watch.db"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY)", "INSERT OR IGNORE INTO t VALUES (1)"]
[load]
workers = 1
connections = 2
warmup = "0s"
duration = "{duration}"
think_time = "1ms"
[[query]]
name = "q"
sql = "SELECT k FROM t WHERE k = ?"
params = [{{ int = [1, 1] }}]
"""
CONNECTIONS = 2


@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await ctl.start()
    yield ctl
    await ctl.stop()


@pytest.fixture
async def stub(controller: Controller) -> AsyncIterator[run_pb2_grpc.RunServiceStub]:
    async with grpc.aio.insecure_channel(controller.address) as channel:
        yield run_pb2_grpc.RunServiceStub(channel)


@pytest.fixture
async def worker(
    controller: Controller, tmp_path: Path, traces: Path
) -> AsyncIterator[WorkerProcs]:
    procs = WorkerProcs(controller.address, worker_env(tmp_path, traces))
    procs.spawn("w")
    await attached(controller, 1)
    yield procs
    procs.stop_all()


async def start(stub: run_pb2_grpc.RunServiceStub, text: str) -> str:
    resp = await stub.StartRun(run_pb2.StartRunRequest(workload_toml=text), timeout=10)
    return str(resp.run.run_id)


async def watch_all(
    stub: run_pb2_grpc.RunServiceStub, run_id: str
) -> list[run_pb2.WatchRunResponse]:
    return [u async for u in stub.WatchRun(run_pb2.WatchRunRequest(run_id=run_id), timeout=60)]


async def test_failed_run_stream_ends_with_failed_and_reason(
    stub: run_pb2_grpc.RunServiceStub, worker: WorkerProcs
) -> None:
    text = WORKLOAD.format(duration="2s").replace("CREATE TABLE", "CREATE TABEL")
    run_id = await start(stub, text)
    updates = await watch_all(stub, run_id)
    assert updates[-1].final
    assert [u.final for u in updates].count(True) == 1
    assert updates[-1].run.state == lc.FAILED
    assert updates[-1].run.reason == "setup_failed"
    got = await stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)
    assert got.run.state == lc.FAILED and got.run.reason == "setup_failed"


async def test_cancelled_run_and_late_subscriber_get_the_terminal_state(
    stub: run_pb2_grpc.RunServiceStub, worker: WorkerProcs, controller: Controller
) -> None:
    run_id = await start(stub, WORKLOAD.format(duration="60s"))
    watcher = asyncio.ensure_future(watch_all(stub, run_id))
    active = controller.runs.active[run_id]
    await wait_for(lambda: active.state == lc.MEASUREMENT, 30, "MEASUREMENT")
    await stub.StopRun(run_pb2.StopRunRequest(run_id=run_id), timeout=5)
    updates = await asyncio.wait_for(watcher, 30)
    assert updates[-1].final
    assert updates[-1].run.state == lc.CANCELLED
    assert updates[-1].run.reason == "user_requested"
    late = await watch_all(stub, run_id)
    assert len(late) == 1 and late[0].final and late[0].run.state == lc.CANCELLED
    # the snapshot on subscribe and the final agree with GetRun
    got = await stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)
    assert got.run.summary == updates[-1].run.summary


async def test_updates_carry_series_rolling_values_and_workers(
    stub: run_pb2_grpc.RunServiceStub, worker: WorkerProcs
) -> None:
    run_id = await start(stub, WORKLOAD.format(duration="4s"))
    updates = await watch_all(stub, run_id)
    live = [u for u in updates if u.run.state == lc.MEASUREMENT and u.progress.latest.second]
    assert len(live) >= 2
    last_live = live[-1]
    assert last_live.progress.qps > 0
    assert last_live.progress.qps_10s > 0
    assert last_live.progress.by_kind["q"].count > 0
    assert last_live.workers[0].worker_id == "w"
    assert last_live.workers[0].rss_bytes > 0
    final = updates[-1]
    # after the load stopped the rolling value did not drift away from the last live one
    assert final.progress.qps_10s == pytest.approx(last_live.progress.qps_10s, rel=0.35)
    series = await stub.GetRunSeries(run_pb2.GetRunSeriesRequest(run_id=run_id), timeout=5)
    assert len(series.points) >= 4
    assert sum(p.overall.count for p in series.points) == sum(
        p.overall.count for p in final.run.summary.phases
    )


async def test_each_second_is_published_as_soon_as_it_is_complete_with_what_ran_in_it(
    stub: run_pb2_grpc.RunServiceStub, worker: WorkerProcs, traces: Path
) -> None:
    """Not on the next tick of a timer: a subscriber sees second k a moment after the
    last worker delivered it (a timer would make it wait half a second on average). And
    each full second's count is what SQLite's own trace says it executed in that second
    (however the host's load made the rate vary), its rate is that count over its length,
    and no second holds more than 2 connections with 1 ms think time can issue."""
    run_id = await start(stub, WORKLOAD.format(duration="6s"))
    first_sight: dict[int, float] = {}
    async for u in stub.WatchRun(run_pb2.WatchRunRequest(run_id=run_id), timeout=60):
        second = u.progress.latest.second
        if u.run.state == lc.MEASUREMENT and second and second not in first_sight:
            first_sight[second] = time.time() - u.progress.latest.end_time.ToNanoseconds() / 1e9
    stale = sorted(first_sight.values())
    print("staleness of each new second (s):", [round(x, 3) for x in stale])
    assert len(stale) >= 4
    assert stale[len(stale) // 2] < 0.3

    series = await stub.GetRunSeries(run_pb2.GetRunSeriesRequest(run_id=run_id), timeout=5)
    traced = sorted(s.time_ns for s in read_traces(traces, run_id))
    full = [p for p in series.points if p.duration.ToNanoseconds() > 900_000_000]
    assert len(full) >= 4
    got = await stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)
    load_start = got.run.plan.load_start_time.ToNanoseconds()
    for p in full:
        begin = load_start + (p.second - 1) * 1_000_000_000  # second 1 begins at the start
        ran = bisect.bisect_left(traced, begin + 1_000_000_000) - bisect.bisect_left(traced, begin)
        # a query counts in the second it was issued in, and is traced just after: at each
        # edge, the one a connection had in flight may fall on the other side
        assert abs(p.overall.count - ran) <= 2 * CONNECTIONS, (p.second, p.overall.count, ran)
        seconds = p.duration.ToNanoseconds() / 1e9
        assert p.overall.qps == pytest.approx(p.overall.count / seconds), p
        # 2 connections x (1 ms think + a tiny query): at most 2,000 a second
        assert p.overall.count <= CONNECTIONS * 1000 + CONNECTIONS, p


async def test_a_stalled_subscriber_slows_neither_the_run_nor_others(
    stub: run_pb2_grpc.RunServiceStub, worker: WorkerProcs, controller: Controller
) -> None:
    run_id = await start(stub, WORKLOAD.format(duration="4s"))
    stalled = stub.WatchRun(run_pb2.WatchRunRequest(run_id=run_id))  # never read until the end
    gaps: list[float] = []
    last = time.monotonic()
    final = None
    async for update in stub.WatchRun(run_pb2.WatchRunRequest(run_id=run_id), timeout=60):
        now = time.monotonic()
        gaps.append(now - last)
        last = now
        final = update
    assert final is not None and final.final and final.run.state == lc.COMPLETED
    meas = next(p for p in final.run.summary.phases if p.phase == lc.MEASUREMENT)
    took = meas.duration.ToTimedelta().total_seconds()
    print(f"reader update gaps max {max(gaps[1:]):.3f}s; measurement took {took:.3f}s")
    assert max(gaps[1:]) < 1.6  # one update per second at least, despite the stalled client
    assert abs(took - 4.0) < 0.3
    # the stalled stream still ends with the terminal state when it is finally read
    messages = [u async for u in stalled]
    assert messages[-1].final and messages[-1].run.state == lc.COMPLETED


async def test_broadcaster_coalesces_for_a_subscriber_that_never_reads() -> None:
    b = Broadcaster()
    snapshot = run_pb2.WatchRunResponse(run=run_pb2.Run(run_id="r", state=lc.PENDING))
    stalled = b.subscribe(snapshot)
    reader = b.subscribe(snapshot)
    got: list[run_pb2.WatchRunResponse] = []

    async def read() -> None:
        async for u in reader.updates():
            got.append(u)

    task = asyncio.ensure_future(read())
    began = time.perf_counter()
    for i in range(20_000):
        b.publish(run_pb2.WatchRunResponse(run=run_pb2.Run(run_id="r", message=str(i))))
        if i % 1000 == 0:
            await asyncio.sleep(0)
    took = time.perf_counter() - began
    b.publish(run_pb2.WatchRunResponse(run=run_pb2.Run(run_id="r", state=lc.COMPLETED), final=True))
    await asyncio.wait_for(task, 5)
    print(f"20,000 publishes with a stalled subscriber: {took * 1000:.1f} ms")
    assert got[-1].final
    assert stalled.skipped >= 19_999  # it holds only the newest update, never a backlog
    late = [u async for u in stalled.updates()]
    assert len(late) == 1 and late[0].final
    after = [u async for u in b.subscribe(snapshot).updates()]
    assert len(after) == 1 and after[0].final
