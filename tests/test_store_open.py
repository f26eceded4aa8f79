"""A daemon (or ``snowload run``) whose results database cannot be written refuses to
start with one sentence and exit code 2, before anything runs: a real tmpfs the test
mounts and remounts read-only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from controller.store_sqlite import SqliteRunStore
from snowload.exit_codes import ExitCode
from tests.small_fs import small_filesystem


def test_a_daemon_on_a_read_only_results_database_refuses_to_start(tmp_path: Path) -> None:
    """Fails if the daemon starts anyway, shows a traceback, or gives no clear reason
    (an existing database, and one it would create)."""
    with small_filesystem(tmp_path / "fs", "16m") as fs:
        SqliteRunStore(fs / "results.db").close()
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        for name in ("results.db", "new.db"):
            args = ["controller", "--listen", "127.0.0.1:0", "--db", str(fs / name)]
            done = subprocess.run(
                [sys.executable, "-m", "snowload.cli", *args],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                env=dict(os.environ, SNOWLOAD_HOME=str(tmp_path / "home")),
            )
            assert done.returncode == ExitCode.BAD_INPUT, done.stderr
            assert "Traceback" not in done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1, lines
            assert str(fs / name) in lines[0] and "read-only" in lines[0], lines[0]
