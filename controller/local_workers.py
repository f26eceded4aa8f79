"""Local worker processes for ``snowload run`` and ``snowload controller --local-workers``.

Several processes, not threads: one Python process is bound by its GIL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys


class LocalWorkers:
    def __init__(
        self,
        controller: str,
        count: int,
        *,
        log_level: str = "WARNING",
        token: str = "",
        tls_ca: str = "",
    ) -> None:
        self.controller = controller
        self.count = count
        self.log_level = log_level
        self.token = token
        self.tls_ca = tls_ca
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.token:
            env["SNOWLOAD_TOKEN"] = self.token  # in the environment, not on the command line
        extra = ["--tls-ca", self.tls_ca] if self.tls_ca else []
        for i in range(self.count):
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "worker",
                        "--controller",
                        self.controller,
                        "--id",
                        f"local-{os.getpid()}-{i}",
                        "--label",
                        "local=true",
                        "--log-level",
                        self.log_level,
                        "--parent-pid",
                        str(os.getpid()),
                        *extra,
                    ],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    # own process group: a terminal's Ctrl-C reaches only the parent, which
                    # cancels the run cleanly and then stops its workers
                    start_new_session=True,
                )
            )

    async def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (workers drain and detach), then SIGKILL whatever is left."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        for p in self.procs:
            while p.poll() is None and loop.time() < deadline:
                await asyncio.sleep(0.05)
            if p.poll() is None:
                p.kill()
                p.wait()
        self.procs.clear()
