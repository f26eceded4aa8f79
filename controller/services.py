"""gRPC servicers: ControlService (workers) and RunService (the public API)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import grpc

from controller import lifecycle as lc
from controller.orchestrator import RunManager, RunNotFound
from controller.query_service import get_run_queries
from controller.registry import WorkerRecord, WorkerRegistry
from controller.report_check import InvalidReport
from controller.run_tags import tag_problem
from controller.runs import seconds
from snowload import __version__
from snowload.durations import parse_duration
from snowload.v1 import control_pb2, control_pb2_grpc, run_pb2, run_pb2_grpc
from snowload.workload import Overrides, WorkloadError, parse_toml

log = logging.getLogger("snowload.controller")


class Limits(Protocol):
    max_active_runs: int
    max_watchers_per_run: int


MAX_WORKLOAD_BYTES = 1 << 20
MAX_PAGE_SIZE = 1000


class ControlServicer(control_pb2_grpc.ControlServiceServicer):
    def __init__(self, registry: WorkerRegistry, runs: RunManager) -> None:
        self.registry = registry
        self.runs = runs
        self._handlers: dict[str, Callable[[WorkerRecord, control_pb2.AttachRequest], None]] = {
            "ack": self._on_ack,
            "ready": lambda rec, m: self.runs.worker_ready(rec, m.ready),
            "heartbeat": self._on_heartbeat,
            "metrics": self._on_metrics,
            "finished": lambda rec, m: self.runs.worker_finished(rec, m.finished),
            "failure": lambda rec, m: self.runs.worker_failed(rec, m.failure),
            "pools": lambda rec, m: self.runs.worker_pools(rec, m.pools),
        }

    async def Attach(
        self,
        request_iterator: AsyncIterator[control_pb2.AttachRequest],
        context: grpc.aio.ServicerContext[control_pb2.AttachRequest, control_pb2.AttachResponse],
    ) -> AsyncIterator[control_pb2.AttachResponse]:
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            return
        if first.WhichOneof("message") != "hello" or not first.hello.worker_id:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a Hello with worker_id"
            )
        rec = self.registry.attach(first.hello)
        outbox = rec.outbox
        assert outbox is not None
        log.info("worker %s attached from %s", rec.worker_id, first.hello.host)
        reader = asyncio.get_running_loop().create_task(self._read(rec, request_iterator, outbox))
        try:
            welcome = control_pb2.Welcome(
                controller_version=__version__,
                heartbeat_interval=seconds(1.0),
            )
            welcome.controller_time.FromNanoseconds(time.time_ns())
            yield control_pb2.AttachResponse(welcome=welcome)
            self.runs.worker_attached(rec, first.hello)
            while True:
                msg = await outbox.get()
                if msg is None:
                    break
                yield msg
            refusal = reader.result() if reader.done() and not reader.cancelled() else None
            if refusal:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, refusal)
        finally:
            reader.cancel()
            self.registry.detach(rec, outbox)

    async def _read(
        self,
        rec: WorkerRecord,
        requests: AsyncIterator[control_pb2.AttachRequest],
        outbox: asyncio.Queue[control_pb2.AttachResponse | None],
    ) -> str | None:
        """Apply the worker's messages; when one is invalid, stop there and return what
        was wrong (the stream ends with INVALID_ARGUMENT saying it)."""
        try:
            async for msg in requests:
                if rec.outbox is not outbox:
                    return None  # superseded by a newer stream of the same worker
                kind = msg.WhichOneof("message") or ""
                self.registry.seen(rec)
                claimed = _claimed_run(msg, kind)
                if claimed and claimed != rec.run_id:
                    # working for a run it is no longer part of (dropped, or the run ended)
                    self.runs.worker_revived(rec, claimed)
                handler = self._handlers.get(kind)
                if handler is not None:
                    handler(rec, msg)
        except InvalidReport as bad:
            return f"worker {rec.worker_id}: invalid {kind} message: {bad}"
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        finally:
            if rec.outbox is outbox:
                outbox.put_nowait(None)
        return None

    def _on_ack(self, rec: WorkerRecord, msg: control_pb2.AttachRequest) -> None:
        self.registry.acked(rec, msg.ack)
        self.runs.worker_ack(rec, msg.ack)

    def _on_metrics(self, rec: WorkerRecord, msg: control_pb2.AttachRequest) -> None:
        report = msg.metrics
        if report.HasField("status"):
            status = report.status
            # a report resent after a re-attach carries an old status: keep the newest
            if rec.heartbeat is None or (
                status.send_time.ToNanoseconds() >= rec.heartbeat.send_time.ToNanoseconds()
            ):
                self._status(rec, status)
        self.runs.worker_metrics(rec, report)

    def _status(self, rec: WorkerRecord, hb: control_pb2.Heartbeat) -> None:
        """A heartbeat, standalone or carried by an interval report."""
        rec.heartbeat = hb
        self.registry.set_state(rec, hb.state)
        self.runs.worker_heartbeat(rec, hb)

    def _on_heartbeat(self, rec: WorkerRecord, msg: control_pb2.AttachRequest) -> None:
        hb = msg.heartbeat
        self._status(rec, hb)
        pong = control_pb2.Pong(heartbeat_send_time=hb.send_time)
        pong.controller_receive_time.FromNanoseconds(time.time_ns())
        self.registry.send_unsequenced(rec, control_pb2.AttachResponse(pong=pong))


def _claimed_run(msg: control_pb2.AttachRequest, kind: str) -> str:
    """The run a worker message says it belongs to (empty if it says nothing)."""
    if kind in ("heartbeat", "metrics", "ready", "finished", "failure"):
        return str(getattr(msg, kind).run_id)
    return ""


class RunServicer(run_pb2_grpc.RunServiceServicer):
    def __init__(self, registry: WorkerRegistry, runs: RunManager, limits: Limits) -> None:
        self.registry = registry
        self.runs = runs
        self.limits = limits
        self.accepting = True

    async def StartRun(
        self, request: run_pb2.StartRunRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> run_pb2.StartRunResponse:
        if not self.accepting:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "controller is shutting down")
        if len(request.workload_toml.encode()) > MAX_WORKLOAD_BYTES:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"workload_toml is larger than {MAX_WORKLOAD_BYTES} bytes",
            )
        if not request.workload_toml.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "workload_toml is empty")
        if len(self.runs.active) >= self.limits.max_active_runs:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{len(self.runs.active)} runs are already active "
                f"(the limit is {self.limits.max_active_runs}); try again when one ends",
            )
        durations: dict[str, float | None] = {}
        for name in ("warmup", "duration"):
            text = getattr(request, name)
            try:
                durations[name] = parse_duration(text) if text else None
            except ValueError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"override {name}: {exc}")
        overrides = Overrides(
            workers=request.workers or None,
            connections=request.connections or None,
            warmup_s=durations["warmup"],
            duration_s=durations["duration"],
        )
        try:
            workload = parse_toml(
                request.workload_toml,
                source=request.source_name or "workload_toml",
                overrides=overrides,
            )
        except WorkloadError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        run = self.runs.start(workload)
        return run_pb2.StartRunResponse(run=run.to_proto())

    async def StopRun(
        self, request: run_pb2.StopRunRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> run_pb2.StopRunResponse:
        try:
            return run_pb2.StopRunResponse(run=self.runs.stop(request.run_id))
        except RunNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
        except lc.IllegalTransition as exc:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"run {request.run_id} cannot stop: {exc}"
            )
        raise AssertionError("unreachable")

    async def GetRun(
        self, request: run_pb2.GetRunRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> run_pb2.GetRunResponse:
        run_id = request.run_id
        if not run_id and request.tag:
            run_id = self.runs.store.tagged(request.tag) or ""
            if not run_id:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no run named {request.tag!r}")
        try:
            return run_pb2.GetRunResponse(run=self.runs.get(run_id))
        except RunNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {run_id!r}")
        raise AssertionError("unreachable")

    async def GetRunSeries(
        self,
        request: run_pb2.GetRunSeriesRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> run_pb2.GetRunSeriesResponse:
        try:
            return run_pb2.GetRunSeriesResponse(points=self.runs.series(request.run_id))
        except RunNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
        raise AssertionError("unreachable")

    async def GetRunHistograms(
        self,
        request: run_pb2.GetRunHistogramsRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> run_pb2.GetRunHistogramsResponse:
        if request.run_id in self.runs.active:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"run {request.run_id!r} is still active: its histograms are stored when it ends",
            )
        store = self.runs.store
        if store.get(request.run_id) is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
        out = run_pb2.GetRunHistogramsResponse()
        for (phase, kind), data in sorted(store.histograms(request.run_id).items()):
            out.phases.add(phase=phase, kind=kind, histogram=data)
        for interval in store.intervals(request.run_id):
            item = out.intervals.add(
                second=interval.second,
                phase=interval.phase,
                histogram=interval.histogram,
            )
            item.start_time.FromNanoseconds(interval.start_ns)
            item.end_time.FromNanoseconds(interval.end_ns)
        for interval in store.kind_intervals(request.run_id):
            item = out.kind_intervals.add(
                second=interval.second,
                phase=interval.phase,
                histogram=interval.histogram,
                kind=interval.kind,
            )
            item.start_time.FromNanoseconds(interval.start_ns)
            item.end_time.FromNanoseconds(interval.end_ns)
        return out

    async def ListRuns(
        self, request: run_pb2.ListRunsRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> run_pb2.ListRunsResponse:
        size = min(request.page_size or 50, MAX_PAGE_SIZE)
        try:
            offset = int(request.page_token or 0)
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid page_token")
        runs = self.runs.store.list_runs(size + 1, offset)
        out = run_pb2.ListRunsResponse()
        for stored in runs[:size]:
            active = self.runs.active.get(stored.run_id) or self.runs.unsaved.get(stored.run_id)
            out.runs.append(active.to_proto(with_details=False) if active else stored)
        if len(runs) > size:
            out.next_page_token = str(offset + size)
        return out

    async def WatchRun(
        self, request: run_pb2.WatchRunRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[run_pb2.WatchRunResponse]:
        active = self.runs.active.get(request.run_id)
        if active is None:
            # (a run the store refused at its end is only in memory)
            kept = self.runs.unsaved.get(request.run_id)
            stored = kept.to_proto() if kept else self.runs.store.get(request.run_id)
            if stored is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
                return
            # ended before the client subscribed: its terminal state is the whole stream
            yield run_pb2.WatchRunResponse(run=stored, final=True)
            return
        if active.broadcaster.subscribers >= self.limits.max_watchers_per_run:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"run {request.run_id} already has {active.broadcaster.subscribers} watchers",
            )
        sub = active.broadcaster.subscribe(active.update())
        try:
            async for update in sub.updates():
                yield update
        finally:
            active.broadcaster.unsubscribe(sub)

    async def ListWorkers(
        self, request: run_pb2.ListWorkersRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> run_pb2.ListWorkersResponse:
        now = time.monotonic()
        return run_pb2.ListWorkersResponse(
            workers=[rec.info(now) for rec in self.registry.workers.values()]
        )

    async def GetRunQueries(
        self,
        request: run_pb2.GetRunQueriesRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> run_pb2.GetRunQueriesResponse:
        active = request.run_id in self.runs.active
        return await get_run_queries(self.runs.store, active, request, context)

    async def TagRun(
        self, request: run_pb2.TagRunRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> run_pb2.TagRunResponse:
        problem = tag_problem(request.tag)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"tag: {problem}")
        if request.run_id in self.runs.active:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"run {request.run_id!r} is still active: name it once it has ended",
            )
        run = self.runs.store.get(request.run_id)
        if run is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
        self.runs.store.tag(request.tag, request.run_id)
        return run_pb2.TagRunResponse(run=run)
