"""The worker's attach client: one long-lived Attach stream, the state machine, the
clock sync, heartbeats and the orphan guard (effects: worker/run_effects.py and
worker/load_effects.py; the clock: worker/clock.py; the plan: worker/boundaries.py).

All state changes happen on the asyncio loop, in the order messages arrive; blocking
work (connecting, setup, draining) runs in threads and comes back as internal events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import psutil

from snowload import __version__
from snowload.channel import ChannelConfig, open_channel
from snowload.v1 import control_pb2, control_pb2_grpc
from worker import clock as wclock
from worker import state_machine as sm
from worker.boundaries import NEVER
from worker.load_effects import REPORT_INTERVAL_S
from worker.run_context import RunContext
from worker.run_effects import RunEffects, seconds_duration

log = logging.getLogger("snowload.worker")
HEARTBEAT_INTERVAL_S = 1.0
OUTBOX_LIMIT = 10_000
ORPHAN_TIMEOUT_S = 3.0
"""Without word from the controller for this long, the load pauses. The promise is 5 s
from the controller's death to the last statement: this, the guard's tick (0.25 s) and a
statement in flight fit in it with room to spare."""
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


SYNC_BURST = 8
"""Heartbeats sent back to back after Welcome, for a clock offset before READY."""
SYNC_MAX = 48
"""... and more, up to this many, while the best is not within SYNC_TARGET_NS."""
REMAP_NS = 100_000
"""An offset estimate that moved by more than this re-maps the plan's instants."""
SYNC_TARGET_NS = 250_000


class Agent(RunEffects):
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
        self.clock = wclock.ClockSync()
        self._pong = asyncio.Event()
        self._synced = asyncio.Event()
        """Set once the first burst of round trips after Welcome is over."""
        self._channel_options = [*KEEPALIVE_OPTIONS, *(channel_options or [])]
        self.attached = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()

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
                    grpc.StatusCode.INVALID_ARGUMENT,
                )
                log.log(
                    logging.WARNING if refused else logging.INFO,
                    "controller %s (%s); retrying in %.1fs (%s)",
                    "refused this worker" if refused else "unavailable",
                    exc.code().name,
                    backoff,
                    exc.details(),
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
                # a mute controller on a standing stream may speak again: resume then
                ctx.resume_connections = (
                    ctx.executor.control.target_connections if silent <= mute else 0
                )
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
        ctx = self.run
        if ctx is not None and ctx.paused and ctx.resume_connections and ctx.executor is not None:
            # paused because the controller went mute on a standing stream: it speaks again
            log.info("the controller speaks again: resuming the load")
            ctx.paused = False
            ctx.executor.set_connections(ctx.resume_connections)
            ctx.resume_connections = 0
        if kind == "welcome":
            self.attached.set()
            self._spawn(self._sync_burst())
            self._after_reattach()
            return
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
        t3 = wclock.now_ns()
        self.clock.add(
            pong.heartbeat_send_time.ToNanoseconds(),
            pong.controller_receive_time.ToNanoseconds(),
            t3,
        )
        self._pong.set()
        self._remap()

    def _remap(self) -> None:
        """A better offset estimate moves the plan's instants that are still ahead."""
        ctx = self.run
        if ctx is None or ctx.executor is None or ctx.plan is None:
            return
        if self.model.state != sm.RUNNING or ctx.executor.ended != NEVER:
            return  # stopping: the end is fixed
        if abs(self.clock.offset_ns - ctx.mapped_offset) < REMAP_NS:
            return
        self._map_plan(ctx, ctx.executor, ctx.plan)

    async def _sync_burst(self) -> None:
        """Round trips right after Welcome, so the offset is known before READY: at least
        SYNC_BURST, more (up to SYNC_MAX) while the best is not within SYNC_TARGET_NS (the
        best is kept; a lone one could have met a busy controller)."""
        try:
            for sent in range(SYNC_MAX):
                if sent >= SYNC_BURST and self.clock.uncertainty_ns <= SYNC_TARGET_NS:
                    break
                self._pong.clear()
                self._send(control_pb2.AttachRequest(heartbeat=self.heartbeat()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._pong.wait(), 0.5)
                await asyncio.sleep(random.uniform(0.002, 0.01))
        finally:
            self._synced.set()

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
                # jittered: workers that started together do not all sync in one second;
                # only ever earlier, so a Pong still comes at least every interval (the
                # orphan guard's mute rule counts on it)
                synced = now - random.uniform(0.1, 0.4) * CLOCK_SYNC_INTERVAL_S
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)

    def heartbeat(self) -> control_pb2.Heartbeat:
        executor = self.run.executor if self.run is not None else None
        phase = self.model.phase
        if executor is not None and self.model.state == sm.RUNNING:
            phase = executor.current_phase()  # type: ignore[assignment]
        hb = control_pb2.Heartbeat(
            state=self.model.state,
            run_id=self.model.run_id,
            phase=phase,
            active_connections=(
                self.run.executor.active_connections
                if self.run is not None and self.run.executor is not None
                else 0
            ),
            cpu_percent=self._proc.cpu_percent(None),
            rss_bytes=self._proc.memory_info().rss,
            last_applied_seq=self.model.last_seq,
        )
        hb.clock_offset.FromNanoseconds(self.clock.offset_ns)
        hb.round_trip.FromNanoseconds(self.clock.rtt_ns)
        hb.clock_uncertainty.FromNanoseconds(self.clock.uncertainty_ns)
        hb.send_time.CopyFrom(wclock.now_ts())
        return hb
