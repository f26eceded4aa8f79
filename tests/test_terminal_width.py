"""``snowload run`` and ``snowload runs show|list`` in real terminals (tmux) 80 and 200
columns wide: every figure is printed whole (never ``154,9…``), checked against the
run's JSON summary; a narrow terminal gets fewer columns and k/M figures, not cut ones."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (scripts/test.sh)"),
]
REPO = Path(__file__).resolve().parent.parent
DONE = "__snowload_test_exit__"
WORKLOAD = """
name = "wide-and-narrow"
[target]
database = "width.db"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v INTEGER)",
       "INSERT OR IGNORE INTO t VALUES (1, 1), (2, 2), (3, 3)"]
[load]
workers = 2
connections = 4
warmup = "1s"
duration = "2s"
[[query]]
name = "point_lookup"
sql = "SELECT v FROM t WHERE k = ?"
params = [{ int = [1, 3] }]
[[query]]
name = "count_all"
weight = 0.5
sql = "SELECT count(*) FROM t"
[slo]
p95_ms = 500
"""


class Terminal:
    """A tmux server of its own: commands run in windows of a given width."""

    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"snowload-test-{uuid.uuid4().hex[:8]}"
        self.env = env
        self.workload = ""
        # a session that outlives the others: the server never exits between commands
        self._tmux("new-session", "-d", "-s", "keep", "sleep 3600")

    def run(self, args: list[str], width: int, timeout_s: float = 120.0) -> str:
        """Run ``snowload ARGS`` in a ``width`` x 200 terminal; its screen as text."""
        name = uuid.uuid4().hex[:8]
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        command = (
            f"env -u COLUMNS -u LINES {exports} {shlex.quote(sys.executable)} -m snowload.cli "
            + " ".join(shlex.quote(a) for a in args)
            + f"; echo {DONE}$?; sleep 600"
        )
        self._tmux("new-session", "-d", "-s", name, "-x", str(width), "-y", "200", command)
        deadline = time.monotonic() + timeout_s
        while True:
            screen = self._tmux("capture-pane", "-p", "-t", name, "-S", "-", "-E", "-")
            if DONE in screen:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"no end of {args} within {timeout_s}s:\n{screen}")
            time.sleep(0.1)
        self._tmux("kill-session", "-t", name)
        text, _, code = screen.partition(DONE)
        assert code.split()[0] in ("0", "4"), text
        return text

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert done.returncode == 0, f"tmux {args[0]}: {done.stderr}"
        return done.stdout

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


@pytest.fixture(scope="module")
def terminal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
    tmp = tmp_path_factory.mktemp("terminal")
    env = {
        "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO)),
        "SNOWLOAD_HOME": str(tmp / "home"),
        "SNOWLOAD_DB": str(tmp / "results.db"),
        "TERM": "xterm-256color",
    }
    (tmp / "w.toml").write_text(WORKLOAD)
    term = Terminal(env)
    term.workload = str(tmp / "w.toml")
    yield term
    term.close()


def figure(token: str) -> float | None:
    """A printed figure as a number: ``12,345``, ``0.270``, ``24.1k``, ``1.23M``."""
    m = re.fullmatch(r"([+-]?[\d,]*\.?\d+)([kMG]?)", token)
    if m is None:
        return None
    scale = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]
    return float(m.group(1).replace(",", "")) * scale


def shows(tokens: list[str], value: float, *, full: str) -> bool:
    """``value`` printed in full, or abbreviated to k/M with 3 significant digits."""
    if full in tokens:
        return True
    for token in tokens:
        parsed = figure(token)
        if parsed is not None and token[-1] in "kMG" and abs(parsed - value) <= 0.006 * value:
            return True
    return False


def row_of(screen: str, kind: str, latencies: list[str]) -> list[str]:
    """The tokens of the line that shows ``kind`` with these latency figures."""
    for line in screen.splitlines():
        tokens = re.findall(r"[^\s│┃:,]+(?:,\d{3})*(?:\.\d+)?[kMG]?", line.replace(", ", " "))
        if kind in tokens and all(v in tokens for v in latencies):
            return tokens
    raise AssertionError(f"no line shows {kind} with {latencies}:\n{screen}")


def check_summary(screen: str, summary: dict[str, Any], width: int) -> None:
    assert "…" not in screen, screen
    assert max(len(line) for line in screen.splitlines()) <= width
    meas = summary["phases"]["MEASUREMENT"]
    for kind, stats in [("all", meas), *meas["by_kind"].items()]:
        latencies = [f"{stats[k]:.3f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")]
        tokens = row_of(screen, kind, latencies)
        assert shows(tokens, stats["count"], full=f"{stats['count']:,}"), (kind, tokens)
        assert shows(tokens, stats["qps"], full=f"{stats['qps']:,.1f}"), (kind, tokens)


def test_run_summary_and_runs_show_whole_figures_at_80_and_200_columns(
    terminal: Terminal,
) -> None:
    ran = terminal.run(["run", terminal.workload], width=80)
    run_id = re.search(r"run ([0-9a-f]{12})", ran)
    assert run_id is not None, ran
    shown = subprocess.run(
        [sys.executable, "-m", "snowload.cli", "runs", "show", run_id.group(1), "--json"],
        env=dict(os.environ, **terminal.env),
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads(shown.stdout)
    check_summary(ran, summary, 80)

    for width in (80, 200):
        screen = terminal.run(["runs", "show", run_id.group(1)], width=width)
        check_summary(screen, summary, width)
        if width == 200:  # room for every figure in full, the phase in its own column
            assert f"{summary['phases']['MEASUREMENT']['count']:,}" in screen
            assert re.search(r"│ MEASUREMENT +│ all", screen), screen

        listed = terminal.run(["runs", "list"], width=width)
        assert "…" not in listed, listed
        meas = summary["phases"]["MEASUREMENT"]
        line = next(line for line in listed.splitlines() if run_id.group(1) in line)
        tokens = line.replace("│", " ").split()
        assert f"{meas['p95_ms']:.3f}" in tokens and "pass" in tokens, line
        assert shows(tokens, meas["qps"], full=f"{meas['qps']:,.0f}"), line
        if width == 200:
            assert f"{meas['qps']:,.0f}" in tokens and "COMPLETED" in tokens, line
