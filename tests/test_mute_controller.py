"""A controller whose stream stands but says nothing: its event loop is wedged while gRPC's
own threads still answer HTTP/2 pings, so the keepalive sees a healthy transport. The
worker must still pause its load: no Pong for its clock-sync heartbeat within
CLOCK_SYNC_INTERVAL_S, then the orphan timeout.

The controller runs in the test's event loop, so the test wedges it by blocking that loop
(no hook in the controller is needed).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from controller import lifecycle as lc
from controller.server import Controller
from tests.cluster import WorkerProcs, attached, read_traces, wait_for, worker_env, workload
from tests.test_faults import make
from worker.agent import CLOCK_SYNC_INTERVAL_S

pytestmark = pytest.mark.slow

ORPHAN_TIMEOUT_S = 1.0
RESUME_WITHIN_S = CLOCK_SYNC_INTERVAL_S + 2.0
"""After the wedge, the next Pong (at most one clock-sync interval away) resumes it."""
SLACK_S = 2.0
"""The guard's 0.25 s tick, in-flight queries, a busy machine."""


async def test_a_mute_controller_with_a_live_transport_stops_the_load(
    controller: Controller, tmp_path: Path, traces: Path
) -> None:
    """Fails if the worker's guard against a mute controller (a standing stream with no
    message, pings answered) is removed or loosened: the load would run on for as long as
    the controller stays wedged; or if the load does not resume when it speaks again."""
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home", traces))
    procs.spawn("muted", "--orphan-timeout", f"{ORPHAN_TIMEOUT_S:g}s")
    try:
        await attached(controller, 1)
        run = controller.runs.start(workload(make(workers=1, connections=2, duration="60s")))
        await wait_for(
            lambda: run.state == lc.MEASUREMENT and run.metrics.complete_seconds() >= 3,
            30,
            "the load to flow",
        )
        # (the run must outlive the wedge: the loss timeout is not under test here)
        controller.registry.loss_timeout_s = 120.0
        bound_s = CLOCK_SYNC_INTERVAL_S + ORPHAN_TIMEOUT_S + SLACK_S
        wedged_ns = time.time_ns()
        time.sleep(bound_s + 3)  # noqa: ASYNC251 (on purpose: the controller is wedged)
        woke_ns = time.time_ns()
        issued = [s.time_ns for s in read_traces(traces, run.run_id)]
        during = [t for t in issued if wedged_ns < t < woke_ns]
        assert during, "the load ran before the wedge was noticed"
        stopped_after_s = (max(during) - wedged_ns) / 1e9
        print(f"load paused {stopped_after_s:.2f}s after the controller went mute")
        assert stopped_after_s < bound_s, stopped_after_s
        assert procs.procs["muted"].poll() is None  # paused, not gone
        # the controller speaks again on the same stream: the load resumes
        await wait_for(
            lambda: any(s.time_ns > woke_ns for s in read_traces(traces, run.run_id)),
            RESUME_WITHIN_S,
            "the load to resume",
        )
        assert run.state == lc.MEASUREMENT
        controller.runs.stop(run.run_id)
        # (ended with its worker there: the controller's shutdown need not wait for it)
        assert run.task is not None
        await asyncio.wait_for(asyncio.shield(run.task), 30)
        assert run.state == lc.CANCELLED
    finally:
        procs.stop_all()
