"""The controller process: one gRPC port with RunService, ControlService, health and
server reflection."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from controller.auth import TokenAuth
from controller.orchestrator import RunManager
from controller.registry import WorkerRegistry
from controller.services import ControlServicer, RunServicer
from controller.store import MemoryRunStore, RunStore
from snowload import hdr
from snowload.v1 import control_pb2, control_pb2_grpc, run_pb2, run_pb2_grpc

log = logging.getLogger("snowload.controller")
MAX_MESSAGE_BYTES = 16 << 20
SERVICE_NAMES = (
    run_pb2.DESCRIPTOR.services_by_name["RunService"].full_name,
    control_pb2.DESCRIPTOR.services_by_name["ControlService"].full_name,
)


@dataclass
class ControllerSettings:
    """Everything a controller process is configured with."""

    listen: str = "127.0.0.1:0"
    """HOST:PORT to bind; port 0 picks a free port."""
    loss_timeout_s: float = 3.0
    """A worker silent for longer than this is lost."""
    drain_timeout_s: float = 5.0
    """How long workers may take to finish in-flight queries at the end of a run."""
    grace_s: float = 2.0
    """How long in-flight RPCs get when the server stops."""
    token: str = ""
    """When set, every call (health checks excepted) needs ``authorization: Bearer``."""
    tls_cert: str = ""
    """PEM certificate chain and key files: serve TLS instead of plaintext."""
    tls_key: str = ""
    tls_client_ca: str = ""
    """PEM CA file: require client certificates signed by it (mutual TLS)."""
    saturation_cpu_percent: float = 90.0
    """A worker whose CPU (% of one core) stays at or above this through MEASUREMENT
    flags the run: the numbers may measure the generator rather than the database."""
    max_active_runs: int = 16
    """StartRun answers RESOURCE_EXHAUSTED beyond this many unfinished runs."""
    max_watchers_per_run: int = 256
    """WatchRun answers RESOURCE_EXHAUSTED beyond this many subscribers of one run."""


@dataclass
class Controller:
    settings: ControllerSettings = field(default_factory=ControllerSettings)
    store: RunStore = field(default_factory=MemoryRunStore)

    def __post_init__(self) -> None:
        self.registry = WorkerRegistry(self.settings.loss_timeout_s)
        self.runs = RunManager(self.registry, self.store)
        self.runs.drain_timeout_s = self.settings.drain_timeout_s
        self.runs.saturation_cpu_percent = self.settings.saturation_cpu_percent
        self.run_service = RunServicer(self.registry, self.runs, self.settings)
        self.control_service = ControlServicer(self.registry, self.runs)
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        host = self.settings.listen.rsplit(":", 1)[0]
        if host in ("0.0.0.0", "[::]", ""):
            host = "127.0.0.1"
        return f"{host}:{self.port}"

    async def start(self) -> None:
        hdr.prepare_merge()
        self.runs.recover()
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_permit_without_calls", 1),
            # workers ping every second (keepalive) while the controller has nothing to say
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 500),
            ("grpc.http2.max_ping_strikes", 0),
            ("grpc.http2.bdp_probe", 0),
        ]
        interceptors = [TokenAuth(self.settings.token)] if self.settings.token else []
        server = grpc.aio.server(options=options, interceptors=interceptors)
        run_pb2_grpc.add_RunServiceServicer_to_server(self.run_service, server)
        control_pb2_grpc.add_ControlServiceServicer_to_server(self.control_service, server)
        health_servicer = _health_servicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        if self.settings.tls_cert:
            credentials = _server_credentials(self.settings)
            self.port = server.add_secure_port(self.settings.listen, credentials)
        else:
            self.port = server.add_insecure_port(self.settings.listen)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.settings.listen}")
        await server.start()
        for name in ("", *SERVICE_NAMES):
            await _set_serving(health_servicer, name)
        self.server = server
        self._watchdog = asyncio.get_running_loop().create_task(self.registry.watchdog())
        log.info("controller listening on %s", self.address)

    async def stop(self) -> None:
        """Stop accepting runs, cancel active ones cleanly, then stop the server."""
        self.run_service.accepting = False
        await self.runs.shutdown()
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.server is not None:
            await self.server.stop(self.settings.grace_s)
        self.store.close()

    async def wait(self) -> None:
        if self.server is not None:
            await self.server.wait_for_termination()


def _server_credentials(settings: ControllerSettings) -> grpc.ServerCredentials:
    key = Path(settings.tls_key).read_bytes()
    chain = Path(settings.tls_cert).read_bytes()
    client_ca = Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _health_servicer() -> health_pb2_grpc.HealthServicer:
    servicer: health_pb2_grpc.HealthServicer = health_aio.HealthServicer()
    return servicer


async def _set_serving(servicer: health_pb2_grpc.HealthServicer, name: str) -> None:
    await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)  # type: ignore[attr-defined,unused-ignore]
