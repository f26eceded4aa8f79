"""A thin async client of the controller's public gRPC API (RunService).

Create a :class:`RunClient` only inside the running event loop (in a worker): grpc.aio
binds a channel to the loop that exists when it is made. It dials like every snowload
client (``snowload.channel``): a bearer token (``$SNOWLOAD_TOKEN``), TLS, mutual TLS.
Every failure surfaces as :class:`ControllerError`, whose text names the controller.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from snowload.channel import ChannelConfig, open_channel
from snowload.v1 import common_pb2, run_pb2, run_pb2_grpc


@dataclass(frozen=True)
class ConnectionSettings:
    """How the TUI talks to one controller."""

    address: str
    """HOST:PORT of the controller."""
    token: str | None = None
    """Bearer token; None means ``$SNOWLOAD_TOKEN`` (if set)."""
    tls: bool = False
    """TLS with the system trust store."""
    tls_ca: str | None = None
    """PEM CA of the controller's certificate (enables TLS)."""
    tls_cert: str | None = None
    """PEM client certificate and key, for mutual TLS."""
    tls_key: str | None = None
    rpc_timeout_s: float = 10.0
    """Deadline of every unary call."""
    backoff_initial_s: float = 0.2
    """First wait before reconnecting a dropped live stream; doubles on every failure..."""
    backoff_max_s: float = 5.0
    """...up to this."""
    stall_timeout_s: float = 10.0
    """A live stream silent this long is treated as dropped (the controller sends an update
    every second)."""
    list_page_size: int = 200

    def channel_config(self) -> ChannelConfig:
        return ChannelConfig.from_env(
            self.address,
            token=self.token,
            tls_ca=self.tls_ca,
            tls_cert=self.tls_cert,
            tls_key=self.tls_key,
            tls=self.tls,
        )

    def channel_options(self) -> list[tuple[str, int]]:
        ms = int(self.backoff_initial_s * 1000)
        return [
            # gRPC's own reconnect backoff follows ours, so a controller that comes back
            # is found within one backoff step (the default waits up to two minutes)
            ("grpc.initial_reconnect_backoff_ms", ms),
            ("grpc.min_reconnect_backoff_ms", ms),
            ("grpc.max_reconnect_backoff_ms", int(self.backoff_max_s * 1000)),
            ("grpc.max_receive_message_length", 16 << 20),
            # notice a silently dead connection (no RST) while a stream is open
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
        ]


class ControllerError(Exception):
    """A call to the controller failed. ``str()`` is a complete, user-facing sentence."""

    def __init__(self, address: str, code: grpc.StatusCode | None, details: str) -> None:
        self.address = address
        self.code = code
        self.details = details
        super().__init__(self._text())

    def _text(self) -> str:
        if self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return f"cannot reach the controller at {self.address}: {self.details}"
        if self.code is grpc.StatusCode.INVALID_ARGUMENT:
            return self.details
        if self.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return (
                f"the controller at {self.address} refused the call: {self.details} "
                "(give its token with --token or SNOWLOAD_TOKEN)"
            )
        if self.code is None:
            return f"controller {self.address}: {self.details}"
        return f"controller {self.address}: {self.code.name}: {self.details}"

    @property
    def unreachable(self) -> bool:
        return self.code in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.CANCELLED,
            None,
        )

    @property
    def not_found(self) -> bool:
        return self.code is grpc.StatusCode.NOT_FOUND

    @property
    def final(self) -> bool:
        """Retrying cannot help (unknown run, refused credentials, a bad request)."""
        return self.code in (
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.UNAUTHENTICATED,
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.UNIMPLEMENTED,
        )


def _short(details: str | None) -> str:
    text = (details or "").strip()
    return text if len(text) <= 300 else text[:299] + "…"


class RunClient:
    """RunService over one channel; recreates the channel if it was closed under it."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._channel = self._open()
        self._stub = run_pb2_grpc.RunServiceStub(self._channel)

    @property
    def address(self) -> str:
        return self.settings.address

    def _open(self) -> grpc.aio.Channel:
        # the same dialing as workers and ``snowload run``: token, TLS, mutual TLS
        return open_channel(self.settings.channel_config(), self.settings.channel_options())

    @property
    def channel(self) -> grpc.aio.Channel:
        return self._channel

    def _reopen(self) -> None:
        self._channel = self._open()
        self._stub = run_pb2_grpc.RunServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close(None)

    def _error(self, exc: BaseException) -> ControllerError:
        if isinstance(exc, grpc.aio.AioRpcError):
            return ControllerError(self.address, exc.code(), _short(exc.details()))
        return ControllerError(self.address, None, _short(str(exc)) or type(exc).__name__)

    async def _unary(self, method: str, request: Any) -> Any:
        for attempt in range(2):
            call = getattr(self._stub, method)
            try:
                return await call(request, timeout=self.settings.rpc_timeout_s)
            except grpc.aio.UsageError as exc:  # the channel was closed: open a new one
                if attempt:
                    raise self._error(exc) from exc
                self._reopen()
            except grpc.aio.AioRpcError as exc:
                raise self._error(exc) from exc
            except asyncio.CancelledError as exc:
                # the call was cancelled under us (its channel closed), not this task
                if _cancelling():
                    raise
                raise ControllerError(
                    self.address, grpc.StatusCode.CANCELLED, "the call was cancelled"
                ) from exc
        raise AssertionError("unreachable")

    # -- RunService --------------------------------------------------------------------

    async def start_run(self, request: run_pb2.StartRunRequest) -> run_pb2.Run:
        resp: run_pb2.StartRunResponse = await self._unary("StartRun", request)
        return resp.run

    async def stop_run(self, run_id: str) -> run_pb2.Run:
        resp: run_pb2.StopRunResponse = await self._unary(
            "StopRun", run_pb2.StopRunRequest(run_id=run_id)
        )
        return resp.run

    async def get_run(self, run_id: str) -> run_pb2.Run:
        resp: run_pb2.GetRunResponse = await self._unary(
            "GetRun", run_pb2.GetRunRequest(run_id=run_id)
        )
        return resp.run

    async def get_histograms(self, run_id: str) -> run_pb2.GetRunHistogramsResponse:
        resp: run_pb2.GetRunHistogramsResponse = await self._unary(
            "GetRunHistograms", run_pb2.GetRunHistogramsRequest(run_id=run_id)
        )
        return resp

    async def get_series(self, run_id: str) -> list[common_pb2.SeriesPoint]:
        resp: run_pb2.GetRunSeriesResponse = await self._unary(
            "GetRunSeries", run_pb2.GetRunSeriesRequest(run_id=run_id)
        )
        return list(resp.points)

    async def get_queries(self, run_id: str, limit: int = 5000) -> list[common_pb2.QueryEntry]:
        """The run's query log, following pages up to ``limit`` entries."""
        out: list[common_pb2.QueryEntry] = []
        token = ""
        while len(out) < limit:
            resp: run_pb2.GetRunQueriesResponse = await self._unary(
                "GetRunQueries",
                run_pb2.GetRunQueriesRequest(run_id=run_id, page_size=1000, page_token=token),
            )
            out.extend(resp.entries)
            token = resp.next_page_token
            if not token:
                break
        return out[:limit]

    async def list_runs(self, limit: int = 500) -> list[run_pb2.Run]:
        """Runs, newest first, following pages up to ``limit``."""
        out: list[run_pb2.Run] = []
        token = ""
        while len(out) < limit:
            size = min(self.settings.list_page_size, limit - len(out))
            resp: run_pb2.ListRunsResponse = await self._unary(
                "ListRuns", run_pb2.ListRunsRequest(page_size=size, page_token=token)
            )
            out.extend(resp.runs)
            token = resp.next_page_token
            if not token:
                break
        return out

    async def list_workers(self) -> list[run_pb2.WorkerInfo]:
        resp: run_pb2.ListWorkersResponse = await self._unary(
            "ListWorkers", run_pb2.ListWorkersRequest()
        )
        return list(resp.workers)

    async def watch(self, run_id: str) -> AsyncIterator[run_pb2.WatchRunResponse]:
        """WatchRun's messages. A stream silent for ``stall_timeout_s`` raises
        ControllerError (UNAVAILABLE), as does a dropped connection."""
        request = run_pb2.WatchRunRequest(run_id=run_id)
        try:
            call = self._stub.WatchRun(request)
        except grpc.aio.UsageError:
            self._reopen()
            call = self._stub.WatchRun(request)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.settings.stall_timeout_s):
                        msg = await call.read()
                except TimeoutError as exc:
                    raise ControllerError(
                        self.address,
                        grpc.StatusCode.UNAVAILABLE,
                        f"no update for {self.settings.stall_timeout_s:g}s",
                    ) from exc
                except grpc.aio.AioRpcError as exc:
                    raise self._error(exc) from exc
                except grpc.aio.UsageError as exc:
                    raise self._error(exc) from exc
                except asyncio.CancelledError as exc:
                    if _cancelling():
                        raise
                    raise ControllerError(
                        self.address, grpc.StatusCode.CANCELLED, "the stream was cancelled"
                    ) from exc
                if msg is _EOF:
                    return
                update: run_pb2.WatchRunResponse = msg
                yield update
        finally:
            call.cancel()


_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]


def _cancelling() -> bool:
    """Is the current task itself being cancelled (as opposed to a call under it)?"""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
