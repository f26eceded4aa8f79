"""Test helpers: an in-process controller on port 0 and real worker processes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controller.runs import ActiveRun
from controller.server import Controller, ControllerSettings
from snowload.v1 import run_pb2, run_pb2_grpc
from snowload.workload import Workload, parse_toml
from worker.tags import parse_compact

TAG_RE = re.compile(r"/\*(sl/[^*]+)\*/")


async def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll a condition until it holds; fail with ``what`` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class WorkerProcs:
    address: str
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, worker_id: str, *extra: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker",
                "--controller",
                self.address,
                "--id",
                worker_id,
                *extra,
            ],
            env=self.env,
            stdin=subprocess.DEVNULL,
        )
        self.procs[worker_id] = proc
        return proc

    def kill(self, worker_id: str) -> None:
        self.procs[worker_id].send_signal(signal.SIGKILL)
        self.procs[worker_id].wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def attached(controller: Controller, n: int, timeout_s: float = 20.0) -> None:
    await wait_for(
        lambda: sum(1 for w in controller.registry.workers.values() if w.idle) >= n,
        timeout_s,
        f"{n} idle workers to attach",
    )


async def listed(stub: run_pb2_grpc.RunServiceStub, n: int, timeout_s: float = 30.0) -> None:
    """Wait until a daemon's ListWorkers names at least ``n`` workers (over the API: the
    daemon runs in a process of its own)."""
    deadline = time.monotonic() + timeout_s
    while len((await stub.ListWorkers(run_pb2.ListWorkersRequest())).workers) < n:
        assert time.monotonic() < deadline, "the workers did not attach"
        await asyncio.sleep(0.1)


async def run_to_end(
    controller: Controller, workload: Workload, timeout_s: float = 60
) -> ActiveRun:
    run = controller.runs.start(workload)
    assert run.task is not None
    await asyncio.wait_for(asyncio.shield(run.task), timeout_s)
    return run


def workload(text: str) -> Workload:
    return parse_toml(text, source="test.toml")


@dataclass(frozen=True)
class TracedStatement:
    time_ns: int
    worker_index: int
    phase: int
    kind: str
    file: str


def read_traces(trace_dir: Path, run_id: str) -> list[TracedStatement]:
    """Statements as SQLite executed them, with the tag each one carried."""
    out: list[TracedStatement] = []
    short = run_id[:8]
    for path in sorted(trace_dir.glob("trace-*.log")):
        for line in path.read_text(encoding="utf-8").splitlines():
            ts, _, stmt = line.partition(" ")
            m = TAG_RE.search(stmt)
            if not m:
                continue
            tag = parse_compact(m.group(1))
            if tag is None or tag.run_short != short:
                continue
            out.append(TracedStatement(int(ts), tag.worker_index, tag.phase, tag.kind, path.name))
    return out


@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    """An in-process controller on a free loopback port (modules may override it)."""
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await ctl.start()
    yield ctl
    await ctl.stop()


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    """Where the SQLite driver writes the statements it executes (see read_traces)."""
    path = tmp_path / "traces"
    path.mkdir()
    return path


@pytest.fixture
def workers(controller: Controller, tmp_path: Path, traces: Path) -> Iterator[WorkerProcs]:
    """Real worker processes for ``controller``, stopped after the test."""
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home", traces))
    yield procs
    procs.stop_all()


def worker_env(home: Path, trace_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["SNOWLOAD_HOME"] = str(home)
    if trace_dir is not None:
        env["SNOWLOAD_SQLITE_TRACE_DIR"] = str(trace_dir)
    return env


def start_daemon(
    args: Sequence[str], env: Mapping[str, str], timeout_s: float = 30.0
) -> tuple[subprocess.Popen[str], str]:
    """``snowload controller ARGS`` in its own process; returns it and the address it says
    it listens on (killed, and the test failed, if it does not say so in time)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "snowload.cli", "controller", *args],
        env=dict(env),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "listening on" in line:
            return proc, line.rsplit(" ", 1)[1].strip()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the controller did not start: snowload controller {' '.join(args)}")
