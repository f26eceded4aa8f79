"""Worker clocks: the offset estimate (best round trip of recent Heartbeat/Pong pairs), its
uncertainty, and what the public API shows of them. On one host the truth is known: the
offset is 0, or exactly the skew SNOWLOAD_TEST_CLOCK_SKEW_MS puts on a worker's clock."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from controller.server import Controller, ControllerSettings
from snowload.v1 import run_pb2, run_pb2_grpc
from tests.cluster import WorkerProcs, wait_for, worker_env
from worker.boundaries import AFTER_END, BEFORE_LOAD, NEVER, Boundaries
from worker.clock import ClockSync
from worker.load_effects import report_delay_ns

MAX_ERROR_NS = 500_000


@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await ctl.start()
    yield ctl
    await ctl.stop()


def test_the_estimate_is_the_sample_with_the_best_round_trip() -> None:
    sync = ClockSync(samples=4)
    assert not sync.known and sync.offset_ns == 0
    # controller 1000 ns ahead; the slow round trips are asymmetric (queued one way)
    sync.add(sent_ns=0, controller_ns=1000 + 9000, received_ns=10_000)
    sync.add(sent_ns=20_000, controller_ns=21_000 + 100, received_ns=20_200)
    sync.add(sent_ns=30_000, controller_ns=31_000 + 50, received_ns=35_000)
    assert sync.offset_ns == 1000 and sync.uncertainty_ns == 100 and sync.rtt_ns == 200
    # the best sample ages out after `samples` newer ones
    for i in range(4):
        sync.add(sent_ns=40_000 + i, controller_ns=41_000 + i + 400, received_ns=40_800 + i)
    assert sync.uncertainty_ns == 400 and sync.offset_ns == 1000
    # ... and once it is older than the window
    timed = ClockSync(window_ns=1_000_000)
    timed.add(sent_ns=0, controller_ns=1000 + 50, received_ns=100)
    timed.add(sent_ns=500_000, controller_ns=501_000 + 500, received_ns=501_000)
    assert timed.rtt_ns == 100
    timed.add(sent_ns=1_200_000, controller_ns=1_201_000 + 500, received_ns=1_201_000)
    assert timed.rtt_ns == 1000
    # mapping an instant onto the perf-counter timeline and back is exact
    assert sync.to_controller(sync.to_perf(123_456_789)) == 123_456_789


def test_a_boundary_plan_answers_phase_and_next_edge() -> None:
    b = Boundaries(((100, 3), (200, 4)), end=300)  # WARMUP at 100, MEASUREMENT at 200
    assert [b.phase_at(t) for t in (99, 100, 199, 200, 299, 300)] == [
        BEFORE_LOAD,
        3,
        3,
        4,
        4,
        AFTER_END,
    ]
    assert [b.next_edge(t) for t in (0, 100, 200, 300)] == [100, 200, 300, NEVER]
    assert b.ending_at(150).phase_at(150) == AFTER_END
    assert b.ending_at(500) == b  # an end is never moved later
    assert b.with_phase(4, 200) is b  # a repeated SetPhase changes nothing


def test_reports_are_gathered_away_from_the_boundaries() -> None:
    s = 1_000_000_000
    whole = Boundaries(((0, 3), (s, 4)), end=3 * s)
    assert report_delay_ns(whole) == 100_000_000
    # MEASUREMENT 1.1 s after the load start: 100 ms after a second is too close
    odd = Boundaries(((0, 3), (s + 100_000_000, 4)), end=3 * s + 100_000_000)
    assert report_delay_ns(odd) == 350_000_000


def offsets(controller: Controller) -> dict[str, tuple[int, int]]:
    out = {}
    for info in (rec.info() for rec in controller.registry.workers.values()):
        if info.HasField("clock_uncertainty") and info.clock_uncertainty.ToNanoseconds():
            out[info.worker_id] = (
                info.clock_offset.ToNanoseconds(),
                info.clock_uncertainty.ToNanoseconds(),
            )
    return out


async def test_two_workers_on_this_host_estimate_a_zero_offset(
    controller: Controller, tmp_path: Path
) -> None:
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    try:
        procs.spawn("clock-a")
        procs.spawn("clock-b")
        await wait_for(
            lambda: (
                len(found := offsets(controller)) == 2
                and all(u <= MAX_ERROR_NS for _, u in found.values())
            ),
            20,
            "two clock estimates to within 0.5 ms",
        )
        for worker_id, (offset, uncertainty) in offsets(controller).items():
            # the truth (0) is within the stated uncertainty, itself within 0.5 ms
            assert abs(offset) <= uncertainty <= MAX_ERROR_NS, (worker_id, offset, uncertainty)
        # ListWorkers says so to any client
        async with grpc.aio.insecure_channel(controller.address) as channel:
            listed = await run_pb2_grpc.RunServiceStub(channel).ListWorkers(
                run_pb2.ListWorkersRequest(), timeout=10
            )
        for info in listed.workers:
            assert 0 < info.clock_uncertainty.ToNanoseconds() <= MAX_ERROR_NS
            assert abs(info.clock_offset.ToNanoseconds()) <= info.clock_uncertainty.ToNanoseconds()
    finally:
        procs.stop_all()


async def test_a_skewed_worker_clock_is_absorbed_by_the_estimate(
    controller: Controller, tmp_path: Path
) -> None:
    env = worker_env(tmp_path / "home")
    env["SNOWLOAD_TEST_CLOCK_SKEW_MS"] = "250"
    procs = WorkerProcs(controller.address, env)
    try:
        procs.spawn("skewed")
        await wait_for(
            lambda: any(u <= MAX_ERROR_NS for _, u in offsets(controller).values()),
            20,
            "a clock estimate to within 0.5 ms",
        )
        offset, uncertainty = offsets(controller)["skewed"]
        # the worker's clock is 250 ms ahead: controller - worker = -250 ms
        assert abs(offset + 250_000_000) <= uncertainty <= MAX_ERROR_NS, offset
    finally:
        procs.stop_all()


def test_the_skew_hook_shifts_what_the_worker_clock_reads() -> None:
    code = "import time; from worker import clock; print(clock.now_ns() - time.time_ns())"
    env = dict(os.environ, SNOWLOAD_TEST_CLOCK_SKEW_MS="-40.5")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert abs(int(out.stdout) + 40_500_000) < 1_000_000
