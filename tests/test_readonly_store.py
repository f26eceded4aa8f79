"""A results database whose filesystem turns read-only mid-run: the run goes on and says
so, nothing stored is damaged, and what was refused is written once the filesystem takes
writes again (or, if it never does before the run ends, the run keeps its numbers in the
controller, says they could not be stored, and stores them once it can).

The kernel refuses ``mount -o remount,ro`` while a file is open for writing, and the
results database always is: the test mounts a filesystem of its own that it can turn
read-only and back under open files (tests/toggle_fs.py, FUSE: writes fail with EROFS,
as on a read-only filesystem). Real worker processes on a SQLite target; the statements
SQLite executed (tests/cluster.py read_traces) as the independent count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from controller import lifecycle as lc
from controller.server import Controller, ControllerSettings
from controller.store_sqlite import SqliteRunStore
from snowload.v1 import run_pb2, run_pb2_grpc
from tests.cluster import WorkerProcs, attached, read_traces, wait_for, worker_env, workload
from tests.test_persist_seconds import WORKLOAD, kind_counts, stored_upto

TABLES = ("series", "interval_histograms", "second_cells")
REFUSED = "could not be written"


@contextlib.contextmanager
def own_filesystem(path: Path) -> Iterator[Path]:
    """A filesystem at ``path`` that remount() turns read-only and back."""
    source = path.with_name(path.name + "-source")
    source.mkdir()
    path.mkdir()
    if not Path("/dev/fuse").exists():
        pytest.skip("cannot mount a filesystem to turn read-only: no /dev/fuse")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.toggle_fs", str(source), str(path)],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not os.path.ismount(path):
        if proc.poll() is not None:
            pytest.skip(f"cannot mount a filesystem to turn read-only: {proc.stderr.read()}")
        assert time.monotonic() < deadline, "the filesystem was not mounted in time"
        time.sleep(0.05)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def remount(path: Path, mode: str) -> None:
    """Read-only ("ro") or writable ("rw") again, whatever is open on it."""
    flag = path.with_name(path.name + "-source.ro")
    if mode == "ro":
        flag.touch()
    else:
        flag.unlink(missing_ok=True)


def rows(db_path: Path, run_id: str) -> dict[str, list[tuple[object, ...]]]:
    """Every stored row of the run's seconds, as bytes (read with a connection of its
    own, as another process would)."""
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        return {
            table: db.execute(
                f"SELECT * FROM {table} WHERE run_id = ? ORDER BY 1, 2, 3, 4", (run_id,)
            ).fetchall()
            for table in TABLES
        }


@pytest.fixture
async def setup(tmp_path: Path, traces: Path) -> AsyncIterator[tuple[Controller, Path]]:
    with own_filesystem(tmp_path / "fs") as fs:
        ctl = Controller(
            ControllerSettings(listen="127.0.0.1:0"), SqliteRunStore(fs / "results.db")
        )
        await ctl.start()
        procs = WorkerProcs(ctl.address, worker_env(tmp_path / "home", traces))
        procs.spawn("a")
        procs.spawn("b")
        try:
            await attached(ctl, 2)
            yield ctl, fs
        finally:
            procs.stop_all()
            remount(fs, "rw")
            await ctl.stop()


def check_store(db_path: Path, run_id: str, before: dict[str, list[tuple[object, ...]]]) -> None:
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    after = rows(db_path, run_id)
    for table in TABLES:  # what was stored before stays byte for byte
        assert set(before[table]) <= set(after[table]), table


async def test_a_results_filesystem_read_only_mid_run_and_back(
    setup: tuple[Controller, Path], traces: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Fails if a read-only results database stops the run, goes unreported (run, watch,
    log), damages what was stored, or if the writer does not recover once the filesystem
    takes writes again (the refused seconds must all be stored, each query once)."""
    ctl, fs = setup
    db_path = fs / "results.db"
    caplog.set_level(logging.WARNING, logger="snowload.controller")
    run = ctl.runs.start(workload(WORKLOAD.format(duration="6s")))
    await wait_for(
        lambda: run.state == lc.MEASUREMENT and stored_upto(db_path, run.run_id) >= 2,
        30,
        "2 seconds stored",
    )
    async with grpc.aio.insecure_channel(ctl.address) as channel:
        stub = run_pb2_grpc.RunServiceStub(channel)
        watch = stub.WatchRun(run_pb2.WatchRunRequest(run_id=run.run_id), timeout=60)
        before = rows(db_path, run.run_id)
        remount(fs, "ro")
        try:
            await wait_for(
                lambda: any(REFUSED in w for w in run.warnings), 10, "the refusal in the run"
            )
            assert run.state == lc.MEASUREMENT  # the run goes on
            async for update in watch:  # the watchers see it
                if any(REFUSED in w for w in update.run.warnings):
                    break
            refused_upto = run.metrics.sealed_upto
        finally:
            remount(fs, "rw")
        # the writer recovers while the run goes on: the refused seconds are stored
        await wait_for(
            lambda: stored_upto(db_path, run.run_id) >= refused_upto, 10, "the refused seconds"
        )
        watch.cancel()
    assert run.task is not None
    await run.task
    assert run.state == lc.COMPLETED, run.message
    assert any(REFUSED in r.getMessage() for r in caplog.records)  # and the log
    check_store(db_path, run.run_id, before)
    store = SqliteRunStore(db_path)
    assert [s.second for s in store.stored_seconds(run.run_id)] == sorted(run.metrics.series)
    traced = Counter((s.phase, s.kind) for s in read_traces(traces, run.run_id))
    assert kind_counts(store, run.run_id) == traced
    stored = store.get(run.run_id)
    assert stored is not None and stored.state == lc.COMPLETED
    assert any(REFUSED in w for w in stored.warnings)
    store.close()
    shown = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "snowload.cli", "runs", "show", run.run_id],
        env=dict(os.environ, SNOWLOAD_DB=str(db_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert REFUSED in shown.stdout


async def test_a_results_filesystem_read_only_until_the_run_ends(
    setup: tuple[Controller, Path], traces: Path
) -> None:
    """Fails if a run whose results cannot be stored loses its numbers (GetRun must give
    them, each query once), does not say they were not stored, or if they are not
    stored once the filesystem takes writes again (a connection SQLite opened on a
    read-only filesystem stays read-only: the writer must open another)."""
    ctl, fs = setup
    db_path = fs / "results.db"
    run = ctl.runs.start(workload(WORKLOAD.format(duration="3s")))
    remount(fs, "ro")  # before its first second: the writer's connection opens read-only
    assert run.task is not None
    await run.task
    async with grpc.aio.insecure_channel(ctl.address) as channel:
        stub = run_pb2_grpc.RunServiceStub(channel)
        got = (await stub.GetRun(run_pb2.GetRunRequest(run_id=run.run_id), timeout=5)).run
        listed = (await stub.ListRuns(run_pb2.ListRunsRequest(), timeout=5)).runs
        series = await stub.GetRunSeries(run_pb2.GetRunSeriesRequest(run_id=run.run_id), timeout=5)
    assert got.state == lc.COMPLETED, got.message
    assert any("not stored" in w for w in got.warnings), got.warnings
    assert [r.state for r in listed if r.run_id == run.run_id] == [lc.COMPLETED]
    assert [p.second for p in series.points] == sorted(run.metrics.series)
    traced = Counter((s.phase, s.kind) for s in read_traces(traces, run.run_id))
    summarized = Counter(
        {(p.phase, kind): s.count for p in got.summary.phases for kind, s in p.by_kind.items()}
    )
    assert summarized == traced
    remount(fs, "rw")
    # once the filesystem takes writes again, the run and its refused seconds are stored
    await wait_for(
        lambda: (r := ctl.runs.store.get(run.run_id)) is not None and r.state == lc.COMPLETED,
        10,
        "the run stored",
    )
    check_store(db_path, run.run_id, {t: [] for t in TABLES})
    store = SqliteRunStore(db_path)
    assert kind_counts(store, run.run_id) == traced
    stored = store.get(run.run_id)
    assert stored is not None
    assert any("could not be stored when it ended" in w for w in stored.warnings)
    store.close()
