"""The worker's attach client: one long-lived Attach stream, the state machine, effects.

All state changes happen on the asyncio loop, in the order messages arrive; blocking
work (connecting, setup, draining) runs in threads and comes back as internal events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import psutil
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from snowload import __version__
from snowload.channel import ChannelConfig, open_channel
from snowload.v1 import common_pb2, control_pb2, control_pb2_grpc
from snowload.workload import parse_json
from worker import state_machine as sm
from worker.drivers import DriverError, get_driver
from worker.enrichment import Enricher, SnowflakeEnricher, Window, enricher_for
from worker.executor import Executor, RunPlan
from worker.generators import Sequences
from worker.preparation import SetupError, run_setup, sample_pools
from worker.reports import interval_report
from worker.warehouse import POLL_INTERVAL_S, WarehouseWatcher

log = logging.getLogger("snowload.worker")
HEARTBEAT_INTERVAL_S = 1.0
REPORT_INTERVAL_S = 1.0
OUTBOX_LIMIT = 10_000
RESEND_REPORTS = 16
ORPHAN_TIMEOUT_S = 5.0
CLOCK_SYNC_INTERVAL_S = 10.0
"""While interval reports flow (each carries the worker's status), a standalone
Heartbeat, and so a Pong for the clock offset, only this often."""
KEEPALIVE_OPTIONS: list[tuple[str, int]] = [
    # the transport proves the controller reachable while no message needs to flow: an
    # unanswered HTTP/2 ping closes the stream within ~2 s (cost: none on the Python side)
    ("grpc.keepalive_time_ms", 1000),
    ("grpc.keepalive_timeout_ms", 1000),
    # gRPC core closes the transport on the ping timeout (default one minute), not on the
    # keepalive timeout: both are needed
    ("grpc.http2.ping_timeout_ms", 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
KEEPALIVE_PROOF_S = 2.0
"""When the transport's ping times out, the last ping it saw answered went out one ping
interval (1 s) before the one that failed, which had the timeout (1 s) to come back: the
controller was last known reachable this long before the stream failed, not when."""


def now_ts() -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(time.time_ns())
    return ts


def seconds_duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


@dataclass
class RunContext:
    """What the agent holds for the run it is in."""

    assign: control_pb2.Assign
    executor: Executor | None = None
    aborted: bool = False
    interval_id: int = 0
    load_started: float | None = None
    last_report_ns: int = 0
    reporter: asyncio.Task[None] | None = None
    prepare_s: float = 0.0
    enricher: Enricher | None = None
    enrichment: common_pb2.Enrichment | None = None
    recent_reports: deque[control_pb2.AttachRequest] = field(
        default_factory=lambda: deque(maxlen=RESEND_REPORTS)
    )
    """Sent again after a re-attach (the controller deduplicates on interval id)."""
    paused: bool = False
    pools_ready: asyncio.Event = field(default_factory=asyncio.Event)
    warehouse: WarehouseWatcher | None = None
    warehouse_sample: common_pb2.WarehouseSample | None = None
    warehouse_task: asyncio.Task[None] | None = None
    totals: dict[tuple[int, int], list[int]] = field(default_factory=dict)


class Agent:
    def __init__(
        self,
        controller: str,
        *,
        capacity: int = 1024,
        labels: dict[str, str] | None = None,
        worker_id: str | None = None,
        channel_options: list[tuple[str, int]] | None = None,
        connect_delay_s: float = 0.0,
        orphan_timeout_s: float = ORPHAN_TIMEOUT_S,
        channel: ChannelConfig | None = None,
    ) -> None:
        self.orphan_timeout_s = orphan_timeout_s
        """Without word from the controller for this long, stop issuing queries."""
        self._last_contact = time.monotonic()
        """When the controller was last known reachable: its last message, or now while
        the stream stands (keepalive pings keep proving the transport)."""
        self._last_message = time.monotonic()
        self._last_report_sent = 0.0
        self.channel = channel or ChannelConfig(controller)
        self.connect_delay_s = connect_delay_s
        """Fault injection for tests and benchmarks: extra time per connection open."""
        self.controller = controller
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.capacity = capacity
        self.labels = labels or {}
        self.model = sm.Model()
        self.run: RunContext | None = None
        self._outbox: asyncio.Queue[control_pb2.AttachRequest] = asyncio.Queue(OUTBOX_LIMIT)
        self._stopping = asyncio.Event()
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)
        self._clock_offset_ns = 0
        self._rtt_ns = 0
        self._channel_options = [*KEEPALIVE_OPTIONS, *(channel_options or [])]
        self.attached = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------

    async def serve(self) -> None:
        """Attach, and re-attach with backoff, until shutdown."""
        backoff = 0.2
        guard = asyncio.get_running_loop().create_task(self._orphan_guard())
        try:
            await self._serve(backoff)
        finally:
            guard.cancel()

    async def _serve(self, backoff: float) -> None:
        while not self._stopping.is_set():
            try:
                await self._session()
                backoff = 0.2
            except grpc.aio.AioRpcError as exc:
                if "ping timeout" in (exc.details() or "") or "keepalive" in (exc.details() or ""):
                    # the orphan timeout counts from the last proof of the controller,
                    # not from the moment the keepalive noticed it was gone
                    proof = max(self._last_message, time.monotonic() - KEEPALIVE_PROOF_S)
                    self._last_contact = min(self._last_contact, proof)
                refused = exc.code() in (
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.PERMISSION_DENIED,
                )
                log.log(
                    logging.WARNING if refused else logging.INFO,
                    "controller unavailable (%s: %s); retrying in %.1fs",
                    exc.code().name,
                    exc.details(),
                    backoff,
                )
            self.attached.clear()
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, 5.0)

    async def shutdown(self, drain_timeout_s: float = 5.0) -> None:
        """SIGTERM: drain the current run (if any), report it, then detach."""
        if self.run is not None and self.model.state in (sm.RUNNING, sm.READY, sm.PREPARING):
            stop = control_pb2.AttachResponse(
                seq=self.model.last_seq + 1,
                stop=control_pb2.Stop(
                    run_id=self.model.run_id,
                    reason="worker_shutdown",
                    drain_timeout=seconds_duration(drain_timeout_s),
                ),
            )
            self._handle(stop)
            deadline = time.monotonic() + drain_timeout_s + 5
            while self.run is not None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await self._flush_outbox(2.0)
        self._stopping.set()

    async def _flush_outbox(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._outbox.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def _orphan_guard(self) -> None:
        """No orphaned load: a worker that lost its controller stops issuing queries."""
        while True:
            await asyncio.sleep(0.25)
            ctx = self.run
            if ctx is None or ctx.executor is None or ctx.paused:
                continue
            now = time.monotonic()
            if self.attached.is_set():
                self._last_contact = now
            silent = now - self._last_contact
            # a stream that stands but carries no Pong for long: the controller is wedged
            mute = now - self._last_message - CLOCK_SYNC_INTERVAL_S
            if max(silent, mute) > self.orphan_timeout_s and self.model.state == sm.RUNNING:
                log.warning(
                    "no word from the controller for %.1fs: pausing the load",
                    now - min(self._last_contact, self._last_message),
                )
                ctx.paused = True
                ctx.executor.set_connections(0)

    async def _session(self) -> None:
        async with open_channel(self.channel, options=self._channel_options) as ch:
            stub = control_pb2_grpc.ControlServiceStub(ch)
            call = stub.Attach(self._outgoing())
            heartbeat = asyncio.create_task(self._heartbeats())
            stopper = asyncio.create_task(self._stopping.wait())
            try:
                reader = asyncio.create_task(self._read(call))
                done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    reader.result()
                else:
                    reader.cancel()
                    call.cancel()
            finally:
                heartbeat.cancel()
                stopper.cancel()

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:  # type: ignore[type-arg]
        async for msg in call:
            self._on_message(msg)

    async def _outgoing(self) -> AsyncIterator[control_pb2.AttachRequest]:
        yield control_pb2.AttachRequest(
            hello=control_pb2.Hello(
                worker_id=self.worker_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                version=__version__,
                capacity=self.capacity,
                labels=self.labels,
                run_id=self.model.run_id,
                last_applied_seq=self.model.last_seq,
                state=self.model.state,
                cpu_count=len(os.sched_getaffinity(0)),
            )
        )
        while True:
            yield await self._outbox.get()

    def _send(self, msg: control_pb2.AttachRequest) -> None:
        try:
            self._outbox.put_nowait(msg)
        except asyncio.QueueFull:
            log.warning("outbox full; dropping %s", msg.WhichOneof("message"))

    # -- incoming ----------------------------------------------------------------------

    def _on_message(self, msg: control_pb2.AttachResponse) -> None:
        self._last_contact = self._last_message = time.monotonic()
        kind = msg.WhichOneof("command")
        if kind == "welcome":
            self.attached.set()
            self._after_reattach()
            return
        ctx = self.run
        if (
            kind == "assign"
            and msg.assign.resync
            and ctx is not None
            and ctx.paused
            and msg.assign.run_id == ctx.assign.run_id
            and ctx.executor is not None
        ):
            # the controller still counts on this worker: resume where the run is now
            log.info("re-attached to run %s: resuming the load", ctx.assign.run_id)
            ctx.paused = False
            ctx.executor.set_connections(msg.assign.connections or ctx.assign.connections)
        if kind == "pong":
            self._on_pong(msg.pong)
            return
        self._handle(msg)

    def _after_reattach(self) -> None:
        """Whatever the previous stream may have lost: READY and recent intervals."""
        ctx = self.run
        if ctx is None:
            return
        if self.model.state in (sm.READY, sm.RUNNING):
            self._send_ready(ctx.assign.run_id)
        if ctx.recent_reports:
            log.info(
                "re-attached: sending the last %d interval reports again", len(ctx.recent_reports)
            )
        for report in ctx.recent_reports:
            again = control_pb2.AttachRequest()
            again.CopyFrom(report)
            again.metrics.resent = True
            self._send(again)

    def _on_pong(self, pong: control_pb2.Pong) -> None:
        t3 = time.time_ns()
        t0 = pong.heartbeat_send_time.ToNanoseconds()
        t1 = pong.controller_receive_time.ToNanoseconds()
        self._rtt_ns = max(0, t3 - t0)
        self._clock_offset_ns = t1 - (t0 + self._rtt_ns // 2)

    def _handle(self, msg: control_pb2.AttachResponse) -> None:
        # taken before the effects run: a query tagged with a new phase is always issued
        # after the applied_time its Ack reports
        applied = now_ts()
        self.model, effects = sm.receive(self.model, msg)
        self._run_effects(effects, applied)

    def _event(self, result: sm.Result) -> None:
        self.model, effects = result
        self._run_effects(effects, now_ts())

    def _run_effects(self, effects: list[sm.Effect], applied: Timestamp) -> None:
        for eff in effects:
            if isinstance(eff, sm.Acknowledge):
                ack = control_pb2.Ack(seq=eff.seq, applied_time=applied, state=self.model.state)
                self._send(control_pb2.AttachRequest(ack=ack))
            elif isinstance(eff, sm.Ignored):
                log.debug("ignored: %s", eff.why)
            elif isinstance(eff, sm.Prepare):
                self._prepare(eff.assign)
            elif isinstance(eff, sm.AbortPrepare):
                if self.run is not None:
                    self.run.aborted = True
                    if self.run.executor is not None:
                        self.run.executor.control.stopping = True
                        self.run.executor.control.go.set()
                    self.run = None
            elif isinstance(eff, sm.BeginLoad):
                self._begin_load(eff.phase)
            elif isinstance(eff, sm.ApplyPhase):
                if self.run is not None and self.run.executor is not None:
                    self.run.executor.set_phase(eff.phase)
                    self._phase_hooks(eff.phase)
            elif isinstance(eff, sm.ApplyLoad):
                executor = self.run.executor if self.run is not None else None
                if executor is not None and executor.schedule is not None:
                    # open mode: the rate is the level; connections (in flight) if given
                    executor.set_rate(eff.rate)
                    if eff.connections:
                        executor.set_connections(eff.connections)
                elif executor is not None:
                    executor.set_connections(eff.connections)
            elif isinstance(eff, sm.ApplyPools):
                self._apply_pools(eff.run_id, eff.pools)
            elif isinstance(eff, sm.Drain):
                self._drain(eff)
            elif isinstance(eff, sm.SendReady):
                self._send_ready(eff.run_id)
            elif isinstance(eff, sm.SendFinished):
                self._send_finished(eff.run_id)
            elif isinstance(eff, sm.SendFailure):
                self._send(
                    control_pb2.AttachRequest(
                        failure=control_pb2.Failure(
                            run_id=eff.run_id, reason=eff.reason, message=eff.message
                        )
                    )
                )

    # -- effects -------------------------------------------------------------------------

    def _prepare(self, assign: control_pb2.Assign) -> None:
        ctx = RunContext(assign=assign)
        self.run = ctx
        asyncio.get_running_loop().create_task(self._prepare_async(ctx))

    async def _prepare_async(self, ctx: RunContext) -> None:
        a = ctx.assign
        began = time.monotonic()
        try:
            workload = parse_json(a.workload_json)
            driver = get_driver(workload.target.driver)
            slots = max(1, a.sequence_slots or a.worker_count)
            plan = RunPlan(
                rate=a.rate,
                run_id=a.run_id,
                workload=workload,
                worker_index=a.worker_index,
                connections=a.connections,
                sequences=Sequences(a.sequence_slot if a.sequence_slots else a.worker_index, slots),
            )
            if a.run_setup and workload.load.enrich:
                ctx.enricher = enricher_for(workload)
            executor = Executor(
                plan,
                driver,
                phase=a.phase or common_pb2.STATE_PREPARING,
                connect_delay_s=self.connect_delay_s,
            )
            ctx.executor = executor
            if a.run_setup and workload.setup_sql:
                await asyncio.to_thread(run_setup, driver, workload)
            if a.run_setup and workload.pool_params():
                pools = await asyncio.to_thread(sample_pools, driver, workload)
                self._send(
                    control_pb2.AttachRequest(
                        pools=control_pb2.PoolSample(run_id=a.run_id, pools=pools)
                    )
                )
            await asyncio.to_thread(executor.open_connections)
            if workload.pool_params():
                # every worker walks its slice of the pools the setup worker sampled
                await asyncio.wait_for(ctx.pools_ready.wait(), workload.load.ready_timeout_s)
            if a.run_setup and WarehouseWatcher.applies(workload):
                ctx.warehouse = WarehouseWatcher(workload)
                ctx.warehouse_task = asyncio.get_running_loop().create_task(
                    self._poll_warehouse(ctx, ctx.warehouse)
                )
        except SetupError as exc:
            self._after_prepare_failure(ctx, "setup_failed", str(exc))
            return
        except TimeoutError:
            self._after_prepare_failure(ctx, "setup_failed", "no value pools before the timeout")
            return
        except DriverError as exc:
            self._after_prepare_failure(ctx, "target_unreachable", str(exc))
            return
        except Exception as exc:
            self._after_prepare_failure(ctx, "worker_error", f"{type(exc).__name__}: {exc}")
            return
        ctx.prepare_s = time.monotonic() - began
        if ctx.aborted or self.run is not ctx:
            await asyncio.to_thread(executor.stop, 0.0)
            return
        self._event(sm.prepared(self.model, a.run_id))

    def _after_prepare_failure(self, ctx: RunContext, reason: str, message: str) -> None:
        if ctx.executor is not None:
            ctx.executor.control.stopping = True
            ctx.executor.control.go.set()
        if self.run is ctx:
            self.run = None
        self._event(sm.prepare_failed(self.model, ctx.assign.run_id, reason, message))

    async def _poll_warehouse(self, ctx: RunContext, watcher: WarehouseWatcher) -> None:
        """SHOW WAREHOUSES every few seconds for the run's series (failures only logged)."""
        try:
            while True:
                try:
                    ctx.warehouse_sample = await asyncio.to_thread(watcher.sample)
                except Exception as exc:
                    log.info("warehouse poll failed: %s", str(exc).splitlines()[0])
                await asyncio.sleep(POLL_INTERVAL_S)
        finally:
            await asyncio.to_thread(watcher.close)

    def _apply_pools(self, run_id: str, pools: tuple[control_pb2.PoolValues, ...]) -> None:
        ctx = self.run
        if ctx is None or ctx.assign.run_id != run_id or ctx.executor is None:
            return
        ctx.executor.plan.sequences.set_pools(
            {(p.query_index, p.param_index): json.loads(p.values_json) for p in pools}
        )
        ctx.pools_ready.set()

    def _send_ready(self, run_id: str) -> None:
        ctx = self.run
        prep = ctx.prepare_s if ctx else 0.0
        self._send(
            control_pb2.AttachRequest(
                ready=control_pb2.Ready(
                    run_id=run_id,
                    connections=ctx.assign.connections if ctx else 0,
                    prepare_duration=seconds_duration(prep),
                    ready_time=now_ts(),
                )
            )
        )

    def _phase_hooks(self, phase: int) -> None:
        ctx = self.run
        if ctx is not None and ctx.enricher is not None and phase == common_pb2.STATE_MEASUREMENT:
            task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(ctx.enricher.on_measurement_start)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _begin_load(self, phase: int) -> None:
        ctx = self.run
        if ctx is None or ctx.executor is None:
            return
        ctx.executor.set_phase(phase)
        self._phase_hooks(phase)
        ctx.executor.start()
        ctx.load_started = time.monotonic()
        ctx.last_report_ns = time.time_ns()
        ctx.reporter = asyncio.get_running_loop().create_task(self._report_loop(ctx))

    async def _report_loop(self, ctx: RunContext) -> None:
        assert ctx.load_started is not None
        k = 1
        while True:
            due = ctx.load_started + k * REPORT_INTERVAL_S
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            self._report(ctx, last=False)
            k += 1

    def _report(self, ctx: RunContext, *, last: bool) -> None:
        executor = ctx.executor
        if executor is None:
            return
        end = time.time_ns()
        cells = executor.collect()
        ctx.interval_id += 1
        report = interval_report(
            executor,
            cells,
            run_id=ctx.assign.run_id,
            interval_id=ctx.interval_id,
            start_ns=ctx.last_report_ns or end - int(REPORT_INTERVAL_S * 1e9),
            end_ns=end,
            last=last,
            warehouse=ctx.warehouse_sample,
            totals=ctx.totals,
        )
        ctx.last_report_ns = end
        report.status.CopyFrom(self.heartbeat())
        report.send_time.CopyFrom(report.status.send_time)
        message = control_pb2.AttachRequest(metrics=report)
        ctx.recent_reports.append(message)
        self._last_report_sent = time.monotonic()
        self._send(message)

    def _drain(self, eff: sm.Drain) -> None:
        ctx = self.run
        if ctx is None:
            self._event(sm.drained(self.model, eff.run_id))
            return
        asyncio.get_running_loop().create_task(self._drain_async(ctx, eff))

    async def _drain_async(self, ctx: RunContext, eff: sm.Drain) -> None:
        if ctx.reporter is not None:
            ctx.reporter.cancel()
        if ctx.warehouse_task is not None:
            ctx.warehouse_task.cancel()
        if ctx.executor is not None:
            await asyncio.to_thread(ctx.executor.stop, eff.drain_timeout_s)
            if ctx.load_started is not None:
                self._report(ctx, last=True)
        if ctx.enricher is not None:
            stop = eff.stop
            if stop is not None and stop.enrich:
                ctx.enrichment = await self._enrich(ctx, ctx.enricher, stop)
            await asyncio.to_thread(ctx.enricher.close)
        self._event(sm.drained(self.model, eff.run_id))

    async def _enrich(
        self, ctx: RunContext, enricher: Enricher, stop: control_pb2.Stop
    ) -> common_pb2.Enrichment:
        if isinstance(enricher, SnowflakeEnricher) and ctx.executor is not None:
            for thread in ctx.executor.threads:
                enricher.client_samples.update(getattr(thread.conn, "query_samples", ()))
        window = Window(
            run_id=ctx.assign.run_id,
            start_ns=stop.measurement_start_time.ToNanoseconds(),
            end_ns=stop.measurement_end_time.ToNanoseconds(),
            expected_queries=stop.expected_queries,
        )
        timeout = stop.enrich_timeout.ToTimedelta().total_seconds() or 60.0
        deadline = time.monotonic() + timeout
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(enricher.collect, window, deadline), timeout + 5
            )
        except TimeoutError:
            return common_pb2.Enrichment(
                status=common_pb2.ENRICHMENT_STATUS_FAILED,
                message=f"enrichment did not finish within {timeout:g}s",
            )

    def _send_finished(self, run_id: str) -> None:
        ctx = self.run
        finished = control_pb2.Finished(run_id=run_id)
        if ctx is not None and ctx.assign.run_id == run_id:
            finished.intervals = ctx.interval_id
            if ctx.enrichment is not None:
                finished.enrichment.CopyFrom(ctx.enrichment)
            queries = ctx.executor.plan.workload.queries if ctx.executor else ()
            for (phase, kind), (count, errors) in sorted(ctx.totals.items()):
                finished.totals.append(
                    control_pb2.KindInterval(
                        kind=queries[kind].name,
                        phase=phase,  # type: ignore[arg-type]
                        count=count,
                        errors=[control_pb2.ErrorCount(category="all", count=errors)]
                        if errors
                        else [],
                    )
                )
            self.run = None
        self._send(control_pb2.AttachRequest(finished=finished))

    # -- heartbeats ------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        """One a second; while reports flow (they carry the status and prove the worker
        alive) one every CLOCK_SYNC_INTERVAL_S, for the clock offset. If the reports stop,
        heartbeats resume at the next tick."""
        synced = 0.0
        while True:
            now = time.monotonic()
            reporting = now - self._last_report_sent < 1.5 * REPORT_INTERVAL_S
            if not reporting or now - synced >= CLOCK_SYNC_INTERVAL_S:
                self._send(control_pb2.AttachRequest(heartbeat=self.heartbeat()))
                # jittered: workers that started together do not all sync in one second
                synced = now + random.uniform(-0.3, 0.3) * CLOCK_SYNC_INTERVAL_S
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)

    def heartbeat(self) -> control_pb2.Heartbeat:
        hb = control_pb2.Heartbeat(
            state=self.model.state,
            run_id=self.model.run_id,
            phase=self.model.phase,
            active_connections=(
                self.run.executor.active_connections
                if self.run is not None and self.run.executor is not None
                else 0
            ),
            cpu_percent=self._proc.cpu_percent(None),
            rss_bytes=self._proc.memory_info().rss,
            last_applied_seq=self.model.last_seq,
        )
        hb.clock_offset.FromNanoseconds(self._clock_offset_ns)
        hb.round_trip.FromNanoseconds(self._rtt_ns)
        hb.send_time.CopyFrom(now_ts())
        return hb
