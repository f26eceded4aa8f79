"""A worker at the protocol level, for tests: it attaches over a real gRPC Attach stream,
acknowledges commands, reports READY when assigned, sends heartbeats, and sends whatever
interval reports the test hands it (crafted bytes included)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import grpc

from snowload.v1 import control_pb2, control_pb2_grpc


class CraftedWorker:
    def __init__(self, address: str, worker_id: str) -> None:
        self.address = address
        self.worker_id = worker_id
        self.run_id = ""
        self.assigned = asyncio.Event()
        self.started = asyncio.Event()
        self.start: control_pb2.Start | None = None
        self.error: grpc.aio.AioRpcError | None = None
        """How the stream ended, if the controller ended it with an error."""
        self.ended = asyncio.Event()
        self._out: asyncio.Queue[control_pb2.AttachRequest | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CraftedWorker:
        self._task = asyncio.get_running_loop().create_task(self._attach())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._out.put_nowait(None)
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def send(self, msg: control_pb2.AttachRequest) -> None:
        self._out.put_nowait(msg)

    def report(self, report: control_pb2.MetricsReport) -> None:
        report.run_id = self.run_id
        self.send(control_pb2.AttachRequest(metrics=report))

    async def _requests(self) -> AsyncIterator[control_pb2.AttachRequest]:
        yield control_pb2.AttachRequest(
            hello=control_pb2.Hello(worker_id=self.worker_id, host="crafted", capacity=64)
        )
        while True:
            msg = await self._out.get()
            if msg is None:
                return
            yield msg

    async def _heartbeats(self) -> None:
        while True:
            hb = control_pb2.Heartbeat(
                run_id=self.run_id,
                state=control_pb2.WORKER_STATE_RUNNING
                if self.started.is_set()
                else control_pb2.WORKER_STATE_IDLE,
            )
            hb.send_time.FromNanoseconds(time.time_ns())
            self.send(control_pb2.AttachRequest(heartbeat=hb))
            await asyncio.sleep(0.3)

    async def _attach(self) -> None:
        beats = asyncio.get_running_loop().create_task(self._heartbeats())
        try:
            async with grpc.aio.insecure_channel(self.address) as channel:
                call = control_pb2_grpc.ControlServiceStub(channel).Attach(self._requests())
                async for msg in call:
                    self._on(msg)
        except grpc.aio.AioRpcError as exc:
            self.error = exc
        finally:
            beats.cancel()
            self.ended.set()

    def _on(self, msg: control_pb2.AttachResponse) -> None:
        if msg.seq:
            self.send(control_pb2.AttachRequest(ack=control_pb2.Ack(seq=msg.seq)))
        which = msg.WhichOneof("command")
        if which == "assign":
            self.run_id = msg.assign.run_id
            self.assigned.set()
            self.send(
                control_pb2.AttachRequest(
                    ready=control_pb2.Ready(run_id=self.run_id, connections=msg.assign.connections)
                )
            )
        elif which == "start":
            self.start = msg.start
            self.started.set()
