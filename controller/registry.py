"""Attached workers: their sessions, command sequence numbers, acks and heartbeats."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from snowload.v1 import control_pb2, run_pb2

log = logging.getLogger("snowload.controller")
OUTBOX_LIMIT = 4096


@dataclass(eq=False)  # identity: `rec in run.workers` runs per message
class WorkerRecord:
    worker_id: str
    hello: control_pb2.Hello
    attach_time_ns: int
    state: control_pb2.WorkerState = control_pb2.WORKER_STATE_IDLE
    connected: bool = True
    lost: bool = False
    outbox: asyncio.Queue[control_pb2.AttachResponse | None] | None = None
    next_seq: int = 1
    acked_seq: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    heartbeat: control_pb2.Heartbeat | None = None
    run_id: str = ""
    assignment: control_pb2.Assign | None = None
    """Desired state for the run this worker is in; re-sent (resync) on re-attach."""
    unacked: dict[int, str] = field(default_factory=dict)
    told_to_stop: set[str] = field(default_factory=set)
    sent_ns: dict[int, int] = field(default_factory=dict)
    """Unacked commands: when each was queued (this clock, ns since the epoch)."""
    delivery_ns: dict[str, int] = field(default_factory=dict)
    """Per command kind, the last one's delivery: from queueing here to the worker
    applying it (its Ack's applied_time, mapped with its clock offset), so a fan-out of
    that command to this worker really took this long."""
    _hello_info: run_pb2.WorkerInfo | None = field(default=None, repr=False)

    @property
    def idle(self) -> bool:
        """Attached, in no run, and done with any previous one (not still draining it)."""
        return (
            self.connected
            and not self.lost
            and not self.run_id
            and self.state == control_pb2.WORKER_STATE_IDLE
        )

    def info(self, now: float | None = None) -> run_pb2.WorkerInfo:
        now = time.monotonic() if now is None else now
        if self._hello_info is None:  # what the Hello said stays put: built once
            self._hello_info = run_pb2.WorkerInfo(
                worker_id=self.worker_id,
                host=self.hello.host,
                pid=self.hello.pid,
                version=self.hello.version,
                capacity=self.hello.capacity,
                labels=dict(self.hello.labels),
            )
            self._hello_info.attach_time.FromNanoseconds(self.attach_time_ns)
        info = run_pb2.WorkerInfo()
        info.CopyFrom(self._hello_info)
        info.state = self.state
        info.run_id = self.run_id
        info.connected = self.connected and not self.lost
        info.heartbeat_age.FromNanoseconds(int((now - self.last_seen) * 1e9))
        hb = self.heartbeat
        if hb is not None:
            info.active_connections = hb.active_connections
            info.cpu_percent = hb.cpu_percent
            info.rss_bytes = hb.rss_bytes
            info.clock_offset.CopyFrom(hb.clock_offset)
            info.clock_uncertainty.CopyFrom(hb.clock_uncertainty)
        return info


class WorkerRegistry:
    """Workers by id. Sequence numbers survive re-attach, so a worker never sees one twice."""

    def __init__(self, loss_timeout_s: float = 3.0) -> None:
        self.workers: dict[str, WorkerRecord] = {}
        self.loss_timeout_s = loss_timeout_s
        self.on_lost: Callable[[WorkerRecord], None] | None = None
        self.on_change: Callable[[], None] | None = None
        self._changed = asyncio.Event()

    def attach(self, hello: control_pb2.Hello) -> WorkerRecord:
        rec = self.workers.get(hello.worker_id)
        if rec is None:
            rec = WorkerRecord(hello.worker_id, hello, time.time_ns())
            self.workers[hello.worker_id] = rec
        elif rec.outbox is not None:
            rec.outbox.put_nowait(None)  # close the previous stream of this worker
        rec.hello = hello
        rec._hello_info = None
        # a worker that outlived a previous controller has applied commands numbered by
        # it: continue after them, or its next commands would look like duplicates
        rec.next_seq = max(rec.next_seq, hello.last_applied_seq + 1)
        rec.attach_time_ns = time.time_ns()
        rec.connected = True
        rec.lost = False
        rec.state = hello.state or control_pb2.WORKER_STATE_IDLE
        rec.last_seen = time.monotonic()
        rec.outbox = asyncio.Queue(OUTBOX_LIMIT)
        self._notify()
        return rec

    def detach(self, rec: WorkerRecord, outbox: object) -> None:
        if rec.outbox is outbox:
            rec.connected = False
            rec.outbox = None
            self._notify()

    def send(self, rec: WorkerRecord, command: control_pb2.AttachResponse) -> int:
        """Give the command the worker's next sequence number and queue it."""
        command.seq = rec.next_seq
        rec.next_seq += 1
        rec.unacked[command.seq] = command.WhichOneof("command") or ""
        rec.sent_ns[command.seq] = time.time_ns()
        if rec.outbox is not None:
            try:
                rec.outbox.put_nowait(command)
            except asyncio.QueueFull:
                log.warning("worker %s outbox full; it will resync on re-attach", rec.worker_id)
        return command.seq

    def send_unsequenced(self, rec: WorkerRecord, msg: control_pb2.AttachResponse) -> None:
        if rec.outbox is not None and not rec.outbox.full():
            rec.outbox.put_nowait(msg)

    def acked(self, rec: WorkerRecord, ack: control_pb2.Ack) -> str:
        rec.acked_seq = max(rec.acked_seq, ack.seq)
        self.set_state(rec, ack.state)
        kind = rec.unacked.pop(ack.seq, "")
        sent = rec.sent_ns.pop(ack.seq, 0)
        if kind and sent and ack.HasField("applied_time"):
            offset = rec.heartbeat.clock_offset.ToNanoseconds() if rec.heartbeat else 0
            applied = ack.applied_time.ToNanoseconds() + offset
            rec.delivery_ns[kind] = max(0, applied - sent)
        return kind

    def set_state(self, rec: WorkerRecord, state: control_pb2.WorkerState) -> None:
        """The worker's own state, from its acks and heartbeats; a worker becoming idle
        wakes whoever waits for one."""
        if state and state != rec.state:
            rec.state = state
            if rec.idle:
                self._notify()

    def seen(self, rec: WorkerRecord) -> bool:
        """Note a sign of life; True if the worker had been marked lost."""
        rec.last_seen = time.monotonic()
        if rec.lost and rec.connected:
            rec.lost = False
            self._notify()
            return True
        return False

    def idle(self) -> list[WorkerRecord]:
        return sorted((w for w in self.workers.values() if w.idle), key=lambda w: w.attach_time_ns)

    def _notify(self) -> None:
        # a fresh event per change: a waiter that took the event before checking the
        # registry cannot miss a change that happens in between
        self._changed.set()
        self._changed = asyncio.Event()
        if self.on_change is not None:
            self.on_change()

    @property
    def changed(self) -> asyncio.Event:
        """Set on the next change of the registry (take it before checking)."""
        return self._changed

    async def watchdog(self) -> None:
        """Mark workers silent for longer than the loss timeout as lost."""
        while True:
            await asyncio.sleep(min(0.25, self.loss_timeout_s / 4))
            now = time.monotonic()
            for rec in list(self.workers.values()):
                if rec.lost or now - rec.last_seen <= self.loss_timeout_s:
                    continue
                if not rec.connected and not rec.run_id:
                    continue  # detached idle workers are simply gone
                rec.lost = True
                log.warning("worker %s lost (silent %.1fs)", rec.worker_id, now - rec.last_seen)
                if self.on_lost is not None:
                    self.on_lost(rec)
                self._notify()

    def forget_disconnected(self, older_than_s: float = 60.0) -> None:
        now = time.monotonic()
        for wid, rec in list(self.workers.items()):
            if not rec.connected and not rec.run_id and now - rec.last_seen > older_than_s:
                del self.workers[wid]
