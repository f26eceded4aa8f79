"""End to end with real worker processes on SQLite: READY barrier, counts, phase tags.

The SQLite driver can trace every statement SQLite executes (with the tag comment the
query carried) to files; these tests compare that database-side record with what the
controller merged and with the moments each worker applied each phase.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from controller import lifecycle as lc
from controller.registry import WorkerRecord
from controller.server import Controller
from tests.cluster import (
    WorkerProcs,
    attached,
    read_traces,
    run_to_end,
    wait_for,
    workload,
)
from tests.in_flight import issued_after

WORKLOAD = """
name = "e2e"
[target]
driver = "sqlite"
database = "e2e.db"
[setup]
sql = [
  "DROP TABLE IF EXISTS kv",
  "CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)",
  '''INSERT INTO kv WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 1000)
     SELECT i, 'x' FROM n''',
]
[load]
workers = 2
connections = 4
warmup = "{warmup}"
duration = "{duration}"
think_time = "2ms"
ready_timeout = "{ready_timeout}"
[[query]]
name = "get"
weight = 3
sql = "SELECT v FROM kv WHERE k = ?"
params = [{{ int = [1, 1000] }}]
[[query]]
name = "put"
weight = 1
sql = "INSERT INTO kv (k, v) VALUES (?, ?)"
params = [{{ sequence = 100000 }}, {{ string = 8 }}]
"""


def make(warmup: str = "1s", duration: str = "2s", ready_timeout: str = "30s") -> str:
    return WORKLOAD.format(warmup=warmup, duration=duration, ready_timeout=ready_timeout)


async def test_ready_barrier_waits_for_a_slow_worker(
    controller: Controller, workers: WorkerProcs, traces: Path
) -> None:
    workers.spawn("fast")
    workers.spawn("slow", "--connect-delay", "2s")
    await attached(controller, 2)
    run = await run_to_end(controller, workload(make(warmup="0s", duration="1s")))
    assert run.state == lc.COMPLETED, run.message

    by_id = {w.worker_id: w for w in run.workers}
    assert set(by_id) == {"fast", "slow"}
    assert set(run.ready) == {"fast", "slow"}
    # the slow worker really was slow, and the start waited for it
    assert run.ready["slow"] - run.create_ns >= 2_000_000_000
    assert run.start_ns >= max(run.ready.values())
    assert run.ready["fast"] < run.ready["slow"]

    statements = read_traces(traces, run.run_id)
    assert statements, "no tagged statement was traced"
    first = min(s.time_ns for s in statements)
    assert first >= run.start_ns, "a query was issued before the start time"
    # both workers did issue queries once started
    assert {s.worker_index for s in statements} == {0, 1}
    # warmup was 0 s: no WARMUP phase, nothing tagged WARMUP, PREPARING never measured
    assert lc.WARMUP not in run.phase_ns
    assert {s.phase for s in statements} == {lc.MEASUREMENT}
    phases = {p.phase for p in run.summary().phases}
    assert phases == {lc.MEASUREMENT}


async def test_counts_add_up_and_every_query_carries_its_phase(
    controller: Controller, workers: WorkerProcs, traces: Path
) -> None:
    workers.spawn("w-a")
    workers.spawn("w-b")
    await attached(controller, 2)
    run = await run_to_end(controller, workload(make(warmup="1500ms", duration="2s")))
    assert run.state == lc.COMPLETED, run.message
    assert run.reason == "duration_elapsed"

    # 1. sum over workers (their own Finished totals) == controller totals, per phase and kind
    assert set(run.finished) == {"w-a", "w-b"}
    worker_totals: Counter[tuple[int, str]] = Counter()
    for worker_id, fin in run.finished.items():
        # no interval report was lost or counted twice
        assert fin.intervals == run.metrics.intervals_from(worker_id) > 0
        for t in fin.totals:
            worker_totals[(t.phase, t.kind)] += t.count + sum(e.count for e in t.errors)
    controller_totals = Counter(
        {key: cell.successes + cell.error_count for key, cell in run.metrics.cells.items()}
    )
    assert worker_totals == controller_totals
    assert controller_totals[(lc.MEASUREMENT, "get")] > 0
    assert controller_totals[(lc.MEASUREMENT, "put")] > 0

    # 2. what SQLite executed agrees with the controller, phase by phase
    statements = read_traces(traces, run.run_id)
    traced = Counter((s.phase, s.kind) for s in statements)
    assert traced == controller_totals

    # 3. every statement carries the phase of its issue time on the run's plan: the
    #    planned instants, not the arrival of any command, cut the phases
    plan = run.plan
    assert plan is not None
    load_start = plan.load_start_time.ToNanoseconds()
    m_start = plan.measurement_start_time.ToNanoseconds()
    m_end = plan.measurement_end_time.ToNanoseconds()
    assert load_start == run.start_ns == run.phase_ns[lc.WARMUP]
    assert m_start == run.phase_ns[lc.MEASUREMENT] == load_start + 1_500_000_000
    assert m_end == run.measurement_end_ns == m_start + 2_000_000_000
    slack = 2_000_000  # the clock estimate on one host
    # none was issued before its phase began (SQLite traces a statement after its issue)
    for s in statements:
        if s.phase == lc.MEASUREMENT:
            assert m_start - slack <= s.time_ns, (s, m_start)
        else:
            assert s.phase == lc.WARMUP
            assert load_start - slack <= s.time_ns, (s, load_start)
    # ... and none after it ended: a loaded host may delay the trace after the issue by
    # milliseconds, so the proof is per connection (one trace file each): at most the one
    # statement in flight at the edge is traced after it
    warm = [(s.time_ns, s.file) for s in statements if s.phase == lc.WARMUP]
    meas = [(s.time_ns, s.file) for s in statements if s.phase == lc.MEASUREMENT]
    assert not issued_after(warm, m_start + slack), m_start
    assert not issued_after(meas, m_end + slack), m_end

    # 4. the measurement window excludes warmup, and both are reported
    summary = {p.phase: p for p in run.summary().phases}
    assert set(summary) == {lc.WARMUP, lc.MEASUREMENT}
    meas = summary[lc.MEASUREMENT]
    warm = summary[lc.WARMUP]
    assert meas.overall.count == traced[(lc.MEASUREMENT, "get")] + traced[(lc.MEASUREMENT, "put")]
    assert warm.overall.count == traced[(lc.WARMUP, "get")] + traced[(lc.WARMUP, "put")]
    assert meas.duration.ToNanoseconds() == 2_000_000_000  # exactly the plan
    assert warm.duration.ToNanoseconds() == 1_500_000_000
    assert meas.overall.p50_ms <= meas.overall.p95_ms <= meas.overall.p99_ms <= meas.overall.max_ms


async def test_lost_worker_fails_the_run_within_five_seconds(
    controller: Controller, workers: WorkerProcs
) -> None:
    workers.spawn("stays")
    workers.spawn("dies")
    await attached(controller, 2)
    # when the controller declares a worker lost (its own callback still runs)
    lost_at: dict[str, float] = {}
    on_lost = controller.registry.on_lost
    assert on_lost is not None

    def noted(rec: WorkerRecord) -> None:
        lost_at[rec.worker_id] = time.monotonic()
        on_lost(rec)

    controller.registry.on_lost = noted
    run = controller.runs.start(workload(make(warmup="0s", duration="60s")))
    await wait_for(lambda: run.state == lc.MEASUREMENT, 30, "MEASUREMENT")
    killed_at = time.monotonic()
    workers.kill("dies")
    await wait_for(run.abort.done, 10, "the loss to be detected")
    assert list(lost_at) == ["dies"]
    # not before it was silent for the loss timeout (3 s), counted from the last message
    # that arrived from it (a loaded host may have delayed that one, never advanced it):
    # a worker whose stream broke may still re-attach within it
    last_seen = controller.registry.workers["dies"].last_seen
    assert lost_at["dies"] - last_seen >= controller.registry.loss_timeout_s
    # and within 5 s of the kill (3 s, checked 4x per timeout, and a loaded host's delays)
    assert lost_at["dies"] - killed_at < 5.0, lost_at["dies"] - killed_at
    assert run.task is not None
    await wait_for(run.task.done, 15, "the run to end")
    assert run.state == lc.FAILED
    assert run.reason == "worker_lost"
    assert "dies" in run.message
    # the lost worker is flagged; the survivor was released and is idle again
    by_id = controller.registry.workers
    assert by_id["dies"].lost
    await wait_for(lambda: by_id["stays"].idle, 10, "the surviving worker to be idle")


async def test_setup_failure_fails_the_run_with_reason(
    controller: Controller, workers: WorkerProcs
) -> None:
    workers.spawn("one")
    await attached(controller, 1)
    text = make(warmup="0s", duration="1s").replace(
        '"DROP TABLE IF EXISTS kv",', '"DROP TABLE IF EXISTS kv", "CREATE TABLEX nonsense",'
    )
    text = text.replace("workers = 2", "workers = 1")
    run = await run_to_end(controller, workload(text))
    assert run.state == lc.FAILED
    assert run.reason == "setup_failed"
    assert "syntax" in run.message.lower()
    assert run.start_ns == 0  # never started


async def test_ready_timeout_fails_the_run(controller: Controller, workers: WorkerProcs) -> None:
    workers.spawn("slowest", "--connect-delay", "5s")
    await attached(controller, 1)
    text = make(warmup="0s", duration="1s", ready_timeout="1s").replace(
        "workers = 2", "workers = 1"
    )
    run = await run_to_end(controller, workload(text))
    assert run.state == lc.FAILED
    assert run.reason == "ready_timeout"
    assert "slowest" in run.message
    assert run.start_ns == 0


async def test_a_worker_is_free_for_the_next_run_as_soon_as_it_finished(
    controller: Controller, workers: WorkerProcs
) -> None:
    """Its Finished is followed at once by its state (idle): its heartbeats resume only
    1.5 s after its last report, and the controller gives a worker a new run only once it
    knows it idle, so without that a run right after another waited ~2 s in PENDING."""
    workers.spawn("again")
    await attached(controller, 1)
    text = make(warmup="0s", duration="1s").replace("workers = 2", "workers = 1")
    first = await run_to_end(controller, workload(text))
    assert first.state == lc.COMPLETED, first.message
    ended = time.monotonic()
    rec = controller.registry.workers["again"]
    await wait_for(lambda: rec.idle, 10, "the worker to be idle")
    assert time.monotonic() - ended < 1.0  # (the next heartbeat: 1.5 s after the report)
    second = await run_to_end(controller, workload(text))
    assert second.state == lc.COMPLETED, second.message
