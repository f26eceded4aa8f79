"""The worker's state machine: pure code, no I/O.

Commands from the controller carry a per-worker sequence number. ``receive`` applies
them strictly in order: a duplicate is acknowledged again and otherwise ignored, a
command that arrives ahead of a gap waits until the gap is filled, and an ``Assign``
with ``resync`` (sent on every re-attach) resets the worker to the controller's full
desired state whatever came before.

Every (state, command) pair has an entry in ``TABLE``; tests walk all of them. There is
no "wait for Start" loop that could swallow a phase change (the predecessor's bug 1): a
SetPhase received while READY updates the phase, and Start then runs in it. Commands that
carry instants (Start's plan, SetPhase, a planned SetLoad) hand them on in their effects:
the worker applies them at those instants on its own clock, not on arrival.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum

from snowload.v1 import common_pb2, control_pb2

WS = control_pb2.WorkerState
IDLE = control_pb2.WORKER_STATE_IDLE
PREPARING = control_pb2.WORKER_STATE_PREPARING
READY = control_pb2.WORKER_STATE_READY
RUNNING = control_pb2.WORKER_STATE_RUNNING
DRAINING = control_pb2.WORKER_STATE_DRAINING
STATES = (IDLE, PREPARING, READY, RUNNING, DRAINING)
MAX_PENDING = 1024


class Command(Enum):
    ASSIGN = "assign"
    SET_PHASE = "set_phase"
    START = "start"
    SET_LOAD = "set_load"
    STOP = "stop"
    SET_POOLS = "set_pools"


# ---------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class Prepare:
    """Open connections (and run setup if assigned) for this assignment."""

    assign: control_pb2.Assign


@dataclass(frozen=True)
class AbortPrepare:
    run_id: str


@dataclass(frozen=True)
class BeginLoad:
    """Start the load at the plan's instants (at once where they have passed)."""

    run_id: str
    phase: int
    plan: common_pb2.PhasePlan | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ApplyPhase:
    """``phase`` begins at ``at_ns`` (controller clock; 0: on arrival)."""

    run_id: str
    phase: int
    at_ns: int = 0


@dataclass(frozen=True)
class ApplyPlan:
    """The run's plan changed (a resync after a re-attach): take its instants."""

    run_id: str
    plan: common_pb2.PhasePlan = field(compare=False)


@dataclass(frozen=True)
class ApplyLoad:
    """New connections or rate from ``at_ns`` (controller clock; 0: on arrival)."""

    run_id: str
    connections: int
    rate: float
    at_ns: int = 0


@dataclass(frozen=True)
class ApplyPools:
    """Take the sampled value pools (each worker walks its own slice)."""

    run_id: str
    pools: tuple[control_pb2.PoolValues, ...] = field(compare=False)


@dataclass(frozen=True)
class Drain:
    """Stop issuing, let in-flight queries finish, ship the last interval, send Finished."""

    run_id: str
    reason: str
    drain_timeout_s: float
    stop: control_pb2.Stop | None = field(default=None, compare=False)
    """The Stop command (enrichment request and measurement window), when there was one."""


@dataclass(frozen=True)
class SendReady:
    run_id: str


@dataclass(frozen=True)
class SendFinished:
    run_id: str


@dataclass(frozen=True)
class SendFailure:
    run_id: str
    reason: str
    message: str


@dataclass(frozen=True)
class Acknowledge:
    seq: int
    instant_ns: int = 0
    """The planned instant the command carried (controller clock), 0 if none: the agent
    reports how late the command arrived for it."""


@dataclass(frozen=True)
class Ignored:
    """A command that has no effect in this state (logged, acknowledged)."""

    why: str


Effect = (
    Prepare
    | AbortPrepare
    | BeginLoad
    | ApplyPhase
    | ApplyPlan
    | ApplyLoad
    | ApplyPools
    | Drain
    | SendReady
    | SendFinished
    | SendFailure
    | Acknowledge
    | Ignored
)


# ---------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Model:
    state: control_pb2.WorkerState = IDLE
    run_id: str = ""
    phase: common_pb2.State = common_pb2.STATE_UNSPECIFIED
    start_requested: bool = False
    connections: int = 0
    last_seq: int = 0
    pending: dict[int, control_pb2.AttachResponse] = field(default_factory=dict)
    plan: common_pb2.PhasePlan | None = None
    """The run's phase boundaries, once Start (or an Assign of a started run) gave them."""


Result = tuple[Model, list[Effect]]
Handler = Callable[[Model, control_pb2.AttachResponse], Result]


def command_of(msg: control_pb2.AttachResponse) -> Command | None:
    try:
        return Command(msg.WhichOneof("command"))
    except ValueError:
        return None  # nothing set, welcome, pong: not sequenced commands


def receive(model: Model, msg: control_pb2.AttachResponse) -> Result:
    """Apply one sequenced command (and any buffered ones that follow it)."""
    cmd = command_of(msg)
    if cmd is None:
        return model, []
    resync = cmd is Command.ASSIGN and msg.assign.resync
    if msg.seq <= model.last_seq and not resync:
        return model, [Acknowledge(msg.seq), Ignored(f"duplicate seq {msg.seq}")]
    if msg.seq > model.last_seq + 1 and not resync:
        if len(model.pending) >= MAX_PENDING:
            return model, [Ignored(f"pending buffer full; dropped seq {msg.seq}")]
        pending = dict(model.pending)
        pending[msg.seq] = msg
        return replace(model, pending=pending), [Ignored(f"seq {msg.seq} waits for a gap")]
    if resync:
        # everything before the snapshot is superseded by it
        pending = {s: m for s, m in model.pending.items() if s > msg.seq}
        model = replace(model, pending=pending)
    model, effects = _apply(model, msg, cmd)
    while model.last_seq + 1 in model.pending:
        pending = dict(model.pending)
        nxt = pending.pop(model.last_seq + 1)
        model = replace(model, pending=pending)
        nxt_cmd = command_of(nxt)
        assert nxt_cmd is not None
        model, out = _apply(model, nxt, nxt_cmd)
        effects += out
    return model, effects


def _apply(model: Model, msg: control_pb2.AttachResponse, cmd: Command) -> Result:
    handler = TABLE[(model.state, cmd)]
    new, effects = handler(model, msg)
    return replace(new, last_seq=msg.seq), [*effects, Acknowledge(msg.seq, instant_of(msg))]


def instant_of(msg: control_pb2.AttachResponse) -> int:
    """The planned instant a command carries (controller clock ns), 0 if none (an unset
    Timestamp reads 0)."""
    which = msg.WhichOneof("command")
    if which == "start":
        return int(msg.start.plan.load_start_time.ToNanoseconds())
    if which == "set_phase":
        return int(msg.set_phase.phase_start_time.ToNanoseconds())
    if which == "set_load":
        return int(msg.set_load.apply_time.ToNanoseconds())
    return 0


def _plan_of(msg: control_pb2.AttachResponse) -> common_pb2.PhasePlan | None:
    which = msg.WhichOneof("command")
    if which == "start" and msg.start.HasField("plan"):
        return msg.start.plan
    if which == "assign" and msg.assign.HasField("plan"):
        return msg.assign.plan
    return None


# ------------------------------------------------------------------- internal events


def prepared(model: Model, run_id: str) -> Result:
    """Connections are open (and setup ran): report READY, start at once if asked to."""
    if model.state != PREPARING or model.run_id != run_id:
        return model, [Ignored("stale prepare result")]
    if model.start_requested:
        # a worker that joins a run already under way starts in the current phase
        return replace(model, state=RUNNING), [
            SendReady(run_id),
            BeginLoad(run_id, model.phase, model.plan),
        ]
    return replace(model, state=READY), [SendReady(run_id)]


def prepare_failed(model: Model, run_id: str, reason: str, message: str) -> Result:
    if model.state != PREPARING or model.run_id != run_id:
        return model, [Ignored("stale prepare failure")]
    return replace(model, state=IDLE, run_id="", start_requested=False, plan=None), [
        SendFailure(run_id, reason, message)
    ]


def drained(model: Model, run_id: str) -> Result:
    if model.state != DRAINING or model.run_id != run_id:
        return model, [Ignored("stale drain result")]
    return replace(model, state=IDLE, run_id="", start_requested=False, plan=None), [
        SendFinished(run_id)
    ]


# ---------------------------------------------------------------------------- handlers


def _other_run(model: Model, run_id: str) -> bool:
    return bool(run_id) and run_id != model.run_id


def _ignore(why: str) -> Handler:
    def handler(model: Model, _msg: control_pb2.AttachResponse) -> Result:
        return model, [Ignored(why)]

    return handler


def _assign_new(model: Model, msg: control_pb2.AttachResponse) -> Result:
    a = msg.assign
    new = replace(
        model,
        state=PREPARING,
        run_id=a.run_id,
        phase=a.phase,
        start_requested=a.started,
        connections=a.connections,
        plan=_plan_of(msg),
    )
    return new, [Prepare(a)]


def _assign_while_busy(model: Model, msg: control_pb2.AttachResponse) -> Result:
    """Assign while a run is prepared or running: converge to it."""
    a = msg.assign
    if a.run_id != model.run_id:
        # a different run: leave the old one (its controller has moved on) and prepare
        effects: list[Effect]
        if model.state == PREPARING:
            effects = [AbortPrepare(model.run_id)]
        else:
            effects = [Drain(model.run_id, "reassigned", 0.0)]
        new, more = _assign_new(model, msg)
        return new, [*effects, *more]
    effects = []
    new = replace(model, start_requested=model.start_requested or a.started)
    plan = _plan_of(msg)
    if plan is not None and plan != model.plan:
        new = replace(new, plan=plan)
        if model.state == RUNNING:
            effects.append(ApplyPlan(a.run_id, plan))
    if a.phase not in (model.phase, common_pb2.STATE_UNSPECIFIED):
        new = replace(new, phase=a.phase)
        effects.append(ApplyPhase(a.run_id, a.phase))
    if a.connections and a.connections != model.connections:
        new = replace(new, connections=a.connections)
        effects.append(ApplyLoad(a.run_id, a.connections, a.rate))
    if model.state == READY and new.start_requested:
        new = replace(new, state=RUNNING)
        effects.append(BeginLoad(a.run_id, new.phase, new.plan))
    return new, effects


def _assign_while_draining(model: Model, msg: control_pb2.AttachResponse) -> Result:
    a = msg.assign
    if a.run_id == model.run_id:
        return model, [Ignored("run is draining; a resync cannot restart it")]
    # the new run is prepared once draining ends; the controller re-sends Assign on Finished
    return model, [Ignored(f"busy draining {model.run_id}; assign {a.run_id} refused")]


def _set_phase(model: Model, msg: control_pb2.AttachResponse) -> Result:
    sp = msg.set_phase
    if _other_run(model, sp.run_id):
        return model, [Ignored(f"set_phase for another run {sp.run_id}")]
    at = sp.phase_start_time.ToNanoseconds()  # 0 when unset: on arrival
    effects: list[Effect] = [ApplyPhase(model.run_id, sp.phase, at)]
    return replace(model, phase=sp.phase), effects


def _start_when_ready(model: Model, msg: control_pb2.AttachResponse) -> Result:
    if _other_run(model, msg.start.run_id):
        return model, [Ignored(f"start for another run {msg.start.run_id}")]
    plan = _plan_of(msg) or model.plan
    return replace(model, state=RUNNING, start_requested=True, plan=plan), [
        BeginLoad(model.run_id, model.phase, plan)
    ]


def _start_while_preparing(model: Model, msg: control_pb2.AttachResponse) -> Result:
    if _other_run(model, msg.start.run_id):
        return model, [Ignored(f"start for another run {msg.start.run_id}")]
    # remembered: load begins as soon as the connections are open
    return replace(model, start_requested=True, plan=_plan_of(msg) or model.plan), []


def _set_load(model: Model, msg: control_pb2.AttachResponse) -> Result:
    sl = msg.set_load
    if _other_run(model, sl.run_id):
        return model, [Ignored(f"set_load for another run {sl.run_id}")]
    at = sl.apply_time.ToNanoseconds()  # 0 when unset: on arrival
    return replace(model, connections=sl.connections or model.connections), [
        ApplyLoad(model.run_id, sl.connections, sl.rate, at)
    ]


def _set_pools(model: Model, msg: control_pb2.AttachResponse) -> Result:
    sp = msg.set_pools
    if _other_run(model, sp.run_id):
        return model, [Ignored(f"set_pools for another run {sp.run_id}")]
    return model, [ApplyPools(model.run_id, tuple(sp.pools))]


def _stop_idle(model: Model, msg: control_pb2.AttachResponse) -> Result:
    # e.g. a lost worker that came back is told to stop a run it no longer has
    if msg.stop.run_id:
        return model, [SendFinished(msg.stop.run_id)]
    return model, [Ignored("stop while idle")]


def _stop_preparing(model: Model, msg: control_pb2.AttachResponse) -> Result:
    if _other_run(model, msg.stop.run_id):
        return model, [Ignored(f"stop for another run {msg.stop.run_id}")]
    run_id = model.run_id
    new = replace(model, state=IDLE, run_id="", start_requested=False, plan=None)
    return new, [AbortPrepare(run_id), SendFinished(run_id)]


def _stop_loaded(model: Model, msg: control_pb2.AttachResponse) -> Result:
    st = msg.stop
    if _other_run(model, st.run_id):
        return model, [Ignored(f"stop for another run {st.run_id}")]
    timeout = (
        st.drain_timeout.ToTimedelta().total_seconds() if st.HasField("drain_timeout") else 5.0
    )
    return replace(model, state=DRAINING), [Drain(model.run_id, st.reason, timeout, st)]


TABLE: dict[tuple[int, Command], Handler] = {
    (IDLE, Command.ASSIGN): _assign_new,
    (IDLE, Command.SET_PHASE): _ignore("no run assigned"),
    (IDLE, Command.START): _ignore("no run assigned"),
    (IDLE, Command.SET_LOAD): _ignore("no run assigned"),
    (IDLE, Command.STOP): _stop_idle,
    (PREPARING, Command.ASSIGN): _assign_while_busy,
    (PREPARING, Command.SET_PHASE): _set_phase,
    (PREPARING, Command.START): _start_while_preparing,
    (PREPARING, Command.SET_LOAD): _set_load,
    (PREPARING, Command.STOP): _stop_preparing,
    (READY, Command.ASSIGN): _assign_while_busy,
    (READY, Command.SET_PHASE): _set_phase,
    (READY, Command.START): _start_when_ready,
    (READY, Command.SET_LOAD): _set_load,
    (READY, Command.STOP): _stop_loaded,
    (RUNNING, Command.ASSIGN): _assign_while_busy,
    (RUNNING, Command.SET_PHASE): _set_phase,
    (RUNNING, Command.START): _ignore("already running"),
    (RUNNING, Command.SET_LOAD): _set_load,
    (RUNNING, Command.STOP): _stop_loaded,
    (DRAINING, Command.ASSIGN): _assign_while_draining,
    (DRAINING, Command.SET_PHASE): _ignore("draining"),
    (DRAINING, Command.START): _ignore("draining"),
    (DRAINING, Command.SET_LOAD): _ignore("draining"),
    (DRAINING, Command.STOP): _ignore("already draining"),
    (IDLE, Command.SET_POOLS): _ignore("no run assigned"),
    (PREPARING, Command.SET_POOLS): _set_pools,
    (READY, Command.SET_POOLS): _set_pools,
    (RUNNING, Command.SET_POOLS): _set_pools,
    (DRAINING, Command.SET_POOLS): _ignore("draining"),
}
