"""Sealed seconds reach the results database while the run goes on, and a full disk
mid-run neither stops the run nor damages what was stored.

An in-process controller on a real SQLite results file, real worker processes, and the
statements SQLite executed (tests/cluster.py read_traces) as the independent count.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller import lifecycle as lc
from controller.server import Controller, ControllerSettings
from controller.store_sqlite import SqliteRunStore
from snowload import hdr
from tests.cluster import WorkerProcs, attached, read_traces, wait_for, worker_env, workload
from tests.small_fs import small_filesystem

WORKLOAD = """
name = "persist"
[target]
database = "persist.db"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v INTEGER)",
       "INSERT OR IGNORE INTO t VALUES (1, 0)"]
[load]
workers = 2
connections = 4
warmup = "1s"
duration = "{duration}"
think_time = "3ms"
[[query]]
name = "read"
weight = 3
sql = "SELECT v FROM t WHERE k = ?"
params = [{{ int = [1, 1] }}]
[[query]]
name = "write"
weight = 1
sql = "UPDATE t SET v = v + 1 WHERE k = ?"
params = [{{ int = [1, 1] }}]
"""
STORED_WITHIN_S = 2.5
"""A sealed second is in the database within the flush interval (1 s) and a write."""


def stored_upto(db_path: Path, run_id: str) -> int:
    """The newest second the results file holds for the run (read with its own
    connection, as another process would)."""
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        row = db.execute("SELECT max(second) FROM series WHERE run_id = ?", (run_id,)).fetchone()
    return int(row[0] or 0)


def kind_counts(store: SqliteRunStore, run_id: str) -> Counter[tuple[int, str]]:
    """Queries per (phase, kind) merged from the stored seconds' cells."""
    counts: Counter[tuple[int, str]] = Counter()
    for second in store.stored_seconds(run_id):
        for key, cell in second.cells.items():
            counts[key] += hdr.decode(cell.histogram).get_total_count() + sum(cell.errors.values())
    return counts


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[Controller]:
    ctl = Controller(
        ControllerSettings(listen="127.0.0.1:0"), SqliteRunStore(tmp_path / "results.db")
    )
    await ctl.start()
    yield ctl
    await ctl.stop()


async def test_sealed_seconds_are_stored_while_the_run_goes_on(
    controller: Controller, workers: WorkerProcs, tmp_path: Path, traces: Path
) -> None:
    """Fails if seconds wait for the end of the run to be written, or if what is written
    per second and kind does not add up to the statements SQLite executed."""
    workers.spawn("a")
    workers.spawn("b")
    await attached(controller, 2)
    run = controller.runs.start(workload(WORKLOAD.format(duration="6s")))
    db_path = tmp_path / "results.db"
    await wait_for(
        lambda: run.state == lc.MEASUREMENT and run.metrics.sealed_upto >= 3, 30, "3 seconds"
    )
    sealed = run.metrics.sealed_upto
    sealed_at = time.monotonic()
    await wait_for(lambda: stored_upto(db_path, run.run_id) >= sealed, 10, "the seconds stored")
    assert time.monotonic() - sealed_at <= STORED_WITHIN_S
    assert not run.terminal  # (stored while it goes on, not at its end)
    assert run.task is not None
    await run.task
    assert run.state == lc.COMPLETED, run.message
    store = SqliteRunStore(db_path)  # a fresh reader of the file
    seconds = store.stored_seconds(run.run_id)
    assert [s.second for s in seconds] == sorted(run.metrics.series)
    traced = Counter((s.phase, s.kind) for s in read_traces(traces, run.run_id))
    assert kind_counts(store, run.run_id) == traced
    assert {k for _, k in traced} == {"read", "write"}
    # the overall interval histograms agree with the per-kind cells, second by second
    for s in seconds:
        per_kind = sum(hdr.decode(c.histogram).get_total_count() for c in s.cells.values())
        assert hdr.decode(s.overall).get_total_count() == per_kind
        assert s.point.overall.count == per_kind + sum(
            sum(c.errors.values()) for c in s.cells.values()
        )


def fill(directory: Path) -> Path:
    """Write a file until the filesystem is full."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        block = b"\1" * 4096
        try:
            while True:
                f.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


async def test_a_full_disk_mid_run_is_reported_and_damages_nothing(
    tmp_path: Path, traces: Path
) -> None:
    """Fails if a full results filesystem stops the run, goes unreported, loses the
    seconds refused meanwhile once space is back, or damages what was stored before."""
    with small_filesystem(tmp_path / "small", "16m") as small:
        db_path = small / "results.db"
        ctl = Controller(ControllerSettings(listen="127.0.0.1:0"), SqliteRunStore(db_path))
        await ctl.start()
        procs = WorkerProcs(ctl.address, worker_env(tmp_path / "home", traces))
        procs.spawn("a")
        procs.spawn("b")
        try:
            await attached(ctl, 2)
            run = ctl.runs.start(workload(WORKLOAD.format(duration="8s")))
            await wait_for(
                lambda: run.state == lc.MEASUREMENT and stored_upto(db_path, run.run_id) >= 2,
                30,
                "2 seconds stored",
            )
            with contextlib.closing(sqlite3.connect(db_path)) as db:
                before = db.execute(
                    "SELECT second, point FROM series WHERE run_id = ? ORDER BY second",
                    (run.run_id,),
                ).fetchall()
            filler = fill(small)
            await wait_for(
                lambda: any("could not be written" in w for w in run.warnings),
                10,
                "the refusal reported in the run",
            )
            assert run.state == lc.MEASUREMENT  # the run goes on
            assert run.journal.unwritten > 0
            os.unlink(filler)
            assert run.task is not None
            await run.task
            assert run.state == lc.COMPLETED, run.message
        finally:
            procs.stop_all()
            await ctl.stop()
        with contextlib.closing(sqlite3.connect(db_path)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            after = db.execute(
                "SELECT second, point FROM series WHERE run_id = ? ORDER BY second",
                (run.run_id,),
            ).fetchall()
        assert after[: len(before)] == before  # what was stored stays as it was
        store = SqliteRunStore(db_path)
        # the refused seconds were written once the space came back: nothing is missing
        assert [s.second for s in store.stored_seconds(run.run_id)] == sorted(run.metrics.series)
        traced = Counter((s.phase, s.kind) for s in read_traces(traces, run.run_id))
        assert kind_counts(store, run.run_id) == traced
        stored = store.get(run.run_id)
        assert stored is not None and stored.state == lc.COMPLETED
        assert any("could not be written" in w for w in stored.warnings)
        store.close()
