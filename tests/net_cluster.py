"""snowload on a multi-host lab (tests/netns.py): a controller host, three worker hosts
whose links to the controller are slowed by a delaying relay (tests/net_relay.py), and a
PostgreSQL host whose statement log is the oracle.

Every process is real and runs inside its host's namespace: ``snowload controller``
(listening on its host's address), one ``snowload worker`` per worker host dialing a
relay on its own loopback that forwards to the controller with a one-way delay (1, 10
and 40 ms); the workers reach PostgreSQL directly over the switch. The test process
reaches the controller's API through a relay listening on a Unix socket (filesystem
sockets cross namespaces; the test process itself joins none of them).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from snowload.v1 import run_pb2, run_pb2_grpc
from tests.netns import LineTap, Netlab
from tests.pg import PgCluster, init_cluster, parse_log, start_cluster, stop_cluster
from worker.tags import Tag, parse_compact

PG_PORT = 5432
"""Inside the PostgreSQL host's own namespace nothing else listens: no collision."""
WORKER_DELAYS_MS = {"w1": 1.0, "w2": 10.0, "w3": 40.0}
"""One-way delay of each worker host's link to the controller."""
_OCTETS = {"ctl": 10, "pg": 20, "w1": 31, "w2": 32, "w3": 33}


@dataclass
class Lab:
    """The hosts and the PostgreSQL server (shared by a module's tests)."""

    net: Netlab
    pg: PgCluster

    @property
    def controller_ip(self) -> str:
        return self.net.hosts["ctl"].ip


@contextmanager
def lab() -> Iterator[Lab]:
    with Netlab() as net:
        for name, octet in _OCTETS.items():
            net.add_host(name, octet)
        cluster = init_cluster(net.hosts["pg"].ip, PG_PORT, "10.200.0.0/24")
        try:
            start_cluster(cluster, net.hosts["pg"].exec_prefix())
            yield Lab(net, cluster)
        finally:
            stop_cluster(cluster)


@dataclass(frozen=True)
class Statement:
    time_s: float
    """When PostgreSQL logged it (its own clock: the machine's)."""
    tag: Tag
    host: str
    """The worker host it came from (w1, w2, w3), from the worker index."""
    pid: int = 0
    """The server backend that ran it: one per connection."""


def statements(pg: PgCluster, run_id: str, hosts_by_index: dict[int, str]) -> list[Statement]:
    """The run's tagged statements, as PostgreSQL logged them."""
    short = run_id.replace("-", "")[:8]
    out = []
    for stmt in parse_log(pg.log_lines()):
        if not stmt.sql.startswith("/*sl/"):
            continue
        tag = parse_compact(stmt.sql.split("*/", 1)[0].removeprefix("/*"))
        if tag is not None and tag.run_short == short:
            out.append(Statement(stmt.time_s, tag, hosts_by_index[tag.worker_index], stmt.pid))
    return out


@dataclass
class Deployment:
    """One controller and its three workers, on a lab; stopped by close()."""

    lab: Lab
    tmp: Path
    controller_args: list[str] = field(default_factory=list)
    worker_args: list[str] = field(default_factory=list)
    worker_env: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = dict(os.environ, SNOWLOAD_HOME=str(self.tmp / "home"))
        self.controller_log: LineTap | None = None
        self.worker_logs: dict[str, LineTap] = {}
        self.address = ""
        self.api_socket = self.tmp / "api.sock"

    def start(self) -> None:
        net = self.lab.net
        parent = str(os.getpid())
        ctl = net.popen(
            "ctl",
            [
                sys.executable,
                "-m",
                "snowload.cli",
                "controller",
                "--listen",
                f"{self.lab.controller_ip}:0",
                "--insecure",
                "--db",
                str(self.tmp / "results.db"),
                "--parent-pid",
                parent,
                "--log-level",
                "INFO",
                *self.controller_args,
            ],
            self.env,
            stdout=None,
            stderr=-1,
        )
        self.controller_log = LineTap(ctl.stderr)
        self.address = self.controller_log.wait_for("listening on", 30).rsplit(" ", 1)[1]
        self._relay("ctl", f"unix:{self.api_socket}", 0.0)
        for host, delay in WORKER_DELAYS_MS.items():
            relay = self._relay(host, "127.0.0.1:0", delay)
            proc = net.popen(
                host,
                [
                    sys.executable,
                    "-m",
                    "worker",
                    "--controller",
                    relay,
                    "--id",
                    host,
                    "--parent-pid",
                    parent,
                    "--log-level",
                    "INFO",
                    *self.worker_args,
                ],
                {**self.env, **self.worker_env.get(host, {})},
                stdout=None,
                stderr=-1,
            )
            self.worker_logs[host] = LineTap(proc.stderr)

    def _relay(self, host: str, listen: str, delay_ms: float) -> str:
        proc = self.lab.net.popen(
            host,
            [
                sys.executable,
                "-m",
                "tests.net_relay",
                "--listen",
                listen,
                "--upstream",
                self.address,
                "--delay-ms",
                str(delay_ms),
                "--parent-pid",
                str(os.getpid()),
            ],
            self.env,
        )
        return LineTap(proc.stdout).wait_for("listening on", 15).rsplit(" ", 1)[1]

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(f"unix:{self.api_socket}")

    async def attached(self, stub: run_pb2_grpc.RunServiceStub, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            got = await stub.ListWorkers(run_pb2.ListWorkersRequest(), timeout=5)
            if sum(1 for w in got.workers if w.connected and not w.run_id) >= len(WORKER_DELAYS_MS):
                return
            assert time.monotonic() < deadline, "the workers did not attach"
            await asyncio.sleep(0.1)

    def close(self) -> None:
        """Stop what this deployment started (the lab's hosts stay). The processes' logs
        are printed (pytest shows them when the test failed)."""
        self.lab.net.heal_all()
        self.lab.net.stop_processes()
        logs = {"controller": self.controller_log, **self.worker_logs}
        for name, tap in logs.items():
            if tap is not None:
                print(f"----- {name} -----\n{tap.text()[-20000:]}")
