"""Several worker agents in one process, for benchmarks with more workers than a 2-core
host can run as processes (256 worker processes need ~11 GB and starve the cores).

Each agent is a full ``worker.agent.Agent`` with its own gRPC channel and TCP connection
(a local subchannel pool), its own Attach stream, clock sync, heartbeats and connection
threads; they share one process, one asyncio loop and one GIL. The benchmark says so
wherever it reports such a run.

    python bench/agents.py --controller 127.0.0.1:50051 --count 8 --prefix p3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys

from worker.agent import Agent
from worker.cli import GIL_SWITCH_INTERVAL_S

OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


async def serve(controller: str, count: int, prefix: str, parent: int) -> None:
    agents = [
        Agent(controller, worker_id=f"{prefix}-{i}", channel_options=OWN_CONNECTION)
        for i in range(count)
    ]
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def shutdown() -> None:
        if not stopping:
            stopping.extend(loop.create_task(a.shutdown()) for a in agents)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown)

    async def watch_parent() -> None:
        while os.getppid() == parent:
            await asyncio.sleep(0.5)
        shutdown()

    watcher = loop.create_task(watch_parent())
    await asyncio.gather(*(a.serve() for a in agents))
    watcher.cancel()
    await asyncio.gather(*stopping, return_exceptions=True)


class AgentProcesses:
    """``workers`` agents, ``per_process`` to a process (the last may hold fewer); the
    interface of controller.local_workers.LocalWorkers."""

    def __init__(self, controller: str, workers: int, per_process: int) -> None:
        self.controller, self.workers, self.per_process = controller, workers, per_process
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for first in range(0, self.workers, self.per_process):
            count = min(self.per_process, self.workers - first)
            self.procs.append(
                subprocess.Popen(
                    [
                        *(sys.executable, __file__, "--controller", self.controller),
                        *("--count", str(count), "--prefix", f"agents-{os.getpid()}-{first}"),
                        *("--parent", str(os.getpid())),
                    ],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )

    async def stop(self, timeout_s: float = 15.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = asyncio.get_running_loop().time() + timeout_s
        for p in self.procs:
            while p.poll() is None and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            if p.poll() is None:
                p.kill()
                p.wait()
        self.procs.clear()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--controller", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--parent", type=int, default=0)
    args = parser.parse_args()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    asyncio.run(serve(args.controller, args.count, args.prefix, args.parent or os.getppid()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
