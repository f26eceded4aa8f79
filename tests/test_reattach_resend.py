"""Interval reports really lost in flight reach the controller through the re-attach
resend, and count exactly once.

The worker talks to an in-process controller through tests/blip_proxy.py. For 1.5 s the
proxy swallows everything the worker sends (its writes succeed: the reports are gone
without a trace), then resets the connection. The worker re-attaches at once and sends
its recent reports again; the controller must end with every interval the worker says it
sent, and with the counts SQLite itself executed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from controller import lifecycle as lc
from controller.server import Controller
from tests.blip_proxy import BlipProxy
from tests.cluster import WorkerProcs, attached, read_traces, wait_for, worker_env, workload
from tests.test_faults import make


async def test_reports_lost_in_flight_are_resent_on_reattach_and_count_once(
    controller: Controller, tmp_path: Path, traces: Path
) -> None:
    """Fails if the worker stops resending its recent reports after a re-attach (the
    swallowed intervals would be missing), or if the controller counts a resent report
    twice."""
    host, port = controller.address.rsplit(":", 1)
    proxy = BlipProxy(host, int(port))
    await proxy.start()
    procs = WorkerProcs(proxy.address, worker_env(tmp_path / "home", traces))
    procs.spawn("lossy")
    try:
        await attached(controller, 1)
        run = controller.runs.start(workload(make(workers=1, connections=2, duration="6s")))
        await wait_for(
            lambda: run.state == lc.MEASUREMENT and run.metrics.intervals_from("lossy") >= 2,
            30,
            "MEASUREMENT",
        )
        lost_from = time.time_ns()
        await proxy.lose_in_flight(1.5)  # shorter than the 3 s loss timeout
        cut_at = time.time_ns()
        assert proxy.swallowed > 0
        assert run.task is not None
        await asyncio.wait_for(asyncio.shield(run.task), 40)
        assert run.state == lc.COMPLETED, run.message
        assert proxy.accepted >= 2  # it really re-attached
        # reports made while the proxy swallowed everything: they were sent and lost, so
        # the controller can only have them from the resend
        lost = [s for s, p in run.metrics.series.items() if lost_from < p.end_ns < cut_at]
        assert lost, "no report was made while the link swallowed them"
        fin = run.finished["lossy"]
        assert fin.intervals == run.metrics.intervals_from("lossy")  # none missing
        assert sorted(run.metrics.series) == list(range(1, fin.intervals + 1))
        worker_totals = Counter({(t.phase, t.kind): t.count for t in fin.totals})
        merged = Counter({k: c.count for k, c in run.metrics.cells.items()})
        assert worker_totals == merged  # none counted twice
        traced = Counter((s.phase, s.kind) for s in read_traces(traces, run.run_id))
        assert traced == merged
    finally:
        procs.stop_all()
        await proxy.close()
