"""A long run keeps a window of recent seconds in memory, and its totals stay exact:
older seconds live in the store only (and the series of an active run is read from both).

Synthetic interval reports with known latencies (the oracle: the raw samples, and an
HdrHistogram recorded from them by HdrHistogram itself) go through the real merge, the
journal and the writer thread into a real SQLite results file.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from controller import lifecycle as lc
from controller.metrics import RunMetrics
from controller.orchestrator import RunManager
from controller.registry import WorkerRegistry
from controller.runs import ActiveRun
from controller.store_sqlite import SqliteRunStore
from snowload import hdr
from snowload.workload import parse_toml
from tests.test_metrics import report

SECONDS = 90
KEEP = 20
WORKLOAD = """
name = "long"
[target]
database = "long.db"
[load]
workers = 1
connections = 2
duration = "1h"
[[query]]
name = "q"
sql = "SELECT 1"
"""


async def test_only_a_window_of_seconds_stays_in_memory_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    """Fails if stored seconds are not dropped from memory, if dropping them changes the
    totals, the counts or percentiles, or if GetRunSeries of an active run misses the
    seconds that left memory."""
    store = SqliteRunStore(tmp_path / "results.db")
    manager = RunManager(WorkerRegistry(), store)
    run = ActiveRun(run_id="long1", workload=parse_toml(WORKLOAD, source="long.toml"))
    run.journal.keep = KEEP
    manager.active[run.run_id] = run
    store.put(run.to_proto())
    rng = random.Random(7)
    oracle = hdr.new_histogram()
    total = 0
    largest = 0
    for second in range(1, SECONDS + 1):
        values = [rng.randint(100, 90_000) for _ in range(rng.randint(1, 40))]
        for v in values:
            oracle.record_value(v)
        total += len(values)
        run.metrics.add("w", report(second, {"q": values}))
        if second % 5 == 0:  # the flush task's work, at a faster pace
            manager._hand_over()
            await manager.writer.drain()
            manager._hand_over()
            largest = max(largest, len(run.metrics.series))
    assert largest <= KEEP + 6  # a window, not the run
    assert len(run.metrics.series) < SECONDS
    # the totals and counts still cover every second
    assert run.metrics.received_count() == total
    totals = run.metrics.phase_totals[lc.MEASUREMENT]
    assert totals.histogram.get_total_count() == total
    for pct in (50.0, 99.0, 99.9):
        assert totals.histogram.get_value_at_percentile(pct) == oracle.get_value_at_percentile(pct)
    summary = run.metrics.phase_summary(lc.MEASUREMENT, float(SECONDS))
    assert summary is not None and summary.overall.count == total
    # the series of the active run: the old seconds from the store, the recent from memory
    points = manager.series(run.run_id)
    assert [p.second for p in points] == list(range(1, SECONDS + 1))
    assert sum(p.overall.count for p in points) == total
    await asyncio.to_thread(manager.writer.close)
    # what a restarted controller merges again from the stored seconds alone
    again = RunMetrics()
    for stored in store.stored_seconds(run.run_id):
        again.restore(stored.second, stored.cells)
    restored = again.phase_totals[lc.MEASUREMENT].histogram
    assert restored.get_total_count() == total
    for pct in (50.0, 99.0, 99.9):
        assert restored.get_value_at_percentile(pct) == oracle.get_value_at_percentile(pct)
    assert again.sealed_upto == SECONDS
    store.close()
