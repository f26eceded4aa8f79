"""A controller process of our own, for ``snowload tui`` without ``--controller``.

It runs ``python -m snowload.cli controller --listen 127.0.0.1:0 --local-workers N`` and
reads the address from its stderr line ``snowload controller listening on HOST:PORT``
within a deadline. Its stderr is drained for its whole life (a full pipe would block it)
into a short tail kept for error messages. ``stop()`` sends SIGTERM, waits, then kills.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque

ADDRESS_RE = re.compile(r"snowload controller listening on (\S+)")


class LocalControllerError(Exception):
    """The local controller could not be started. ``str()`` says why, with its output."""


class LocalController:
    def __init__(
        self,
        workers: int = 2,
        *,
        db: str | None = None,
        startup_timeout_s: float = 30.0,
        python: str = sys.executable,
        log_level: str = "WARNING",
        token: str | None = None,
    ) -> None:
        """``token``: the bearer token it requires (default: ``$SNOWLOAD_TOKEN``, as the
        controller itself does); its local workers get it too."""
        self.workers = workers
        self.db = db
        self.token = token
        self.startup_timeout_s = startup_timeout_s
        self.python = python
        self.log_level = log_level
        self.proc: subprocess.Popen[str] | None = None
        self.address: str | None = None
        self.output: deque[str] = deque(maxlen=50)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._found = threading.Event()

    def command(self) -> list[str]:
        cmd = [
            self.python,
            "-m",
            "snowload.cli",
            "controller",
            "--listen",
            "127.0.0.1:0",
            "--local-workers",
            str(self.workers),
            "--log-level",
            self.log_level,
            # it shuts down with the TUI, even if the TUI is killed
            "--parent-pid",
            str(os.getpid()),
        ]
        if self.db:
            cmd += ["--db", self.db]
        return cmd

    def start(self) -> str:
        """Start the process and return its address (blocking, up to the deadline)."""
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.token is not None:
            env["SNOWLOAD_TOKEN"] = self.token  # not on the command line: ps shows that
        try:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                # its own session: the terminal's signals are ours to handle
                start_new_session=True,
            )
        except OSError as exc:
            raise LocalControllerError(f"cannot start a local controller: {exc}") from exc
        threading.Thread(target=self._drain, name="local-controller-stderr", daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise LocalControllerError(
                    f"the local controller did not report its address within "
                    f"{self.startup_timeout_s:g}s{self._tail()}"
                )
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait()
                raise LocalControllerError(
                    f"the local controller exited with code {code} before listening{self._tail()}"
                )
            found = ADDRESS_RE.search(line)
            if found:
                self.address = found.group(1)
                self._found.set()
                return self.address

    def _drain(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stderr is not None
        for raw in proc.stderr:
            line = raw.rstrip("\n")
            self.output.append(line)
            if not self._found.is_set():
                self._lines.put(line)
        self._lines.put(None)

    def _tail(self) -> str:
        lines = [line for line in list(self.output)[-8:] if line.strip()]
        return (":\n" + "\n".join(lines)) if lines else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM (it cancels active runs and stops its workers), wait, then SIGKILL."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode
