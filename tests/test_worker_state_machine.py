"""The worker's state table: every command in every state, sequencing, re-attach.

The expected table below is written out by hand, independently of the implementation's
TABLE, so a change of behaviour in any cell fails a test.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from snowload.v1 import common_pb2, control_pb2
from worker import state_machine as sm
from worker.state_machine import Command

RUN = "run-1"
WARMUP = common_pb2.STATE_WARMUP
MEASUREMENT = common_pb2.STATE_MEASUREMENT
PREPARING_PHASE = common_pb2.STATE_PREPARING


def cmd(
    seq: int, command: Command, run_id: str = RUN, **fields: object
) -> control_pb2.AttachResponse:
    if command is Command.ASSIGN:
        fields.setdefault("phase", PREPARING_PHASE)
        body = control_pb2.Assign(run_id=run_id, connections=4, **fields)  # type: ignore[arg-type]
        return control_pb2.AttachResponse(seq=seq, assign=body)
    if command is Command.SET_PHASE:
        phase = fields.get("phase", MEASUREMENT)
        return control_pb2.AttachResponse(
            seq=seq,
            set_phase=control_pb2.SetPhase(run_id=run_id, phase=phase),  # type: ignore[arg-type]
        )
    if command is Command.START:
        return control_pb2.AttachResponse(seq=seq, start=control_pb2.Start(run_id=run_id))
    if command is Command.SET_POOLS:
        return control_pb2.AttachResponse(
            seq=seq, set_pools=control_pb2.SetPools(run_id=run_id, pools=[control_pb2.PoolValues()])
        )
    if command is Command.SET_LOAD:
        return control_pb2.AttachResponse(
            seq=seq, set_load=control_pb2.SetLoad(run_id=run_id, connections=2)
        )
    return control_pb2.AttachResponse(seq=seq, stop=control_pb2.Stop(run_id=run_id, reason="r"))


def model_in(state: control_pb2.WorkerState) -> sm.Model:
    if state == sm.IDLE:
        return sm.Model(last_seq=5)
    return sm.Model(state=state, run_id=RUN, phase=PREPARING_PHASE, connections=4, last_seq=5)


def kinds(effects: list[sm.Effect]) -> list[str]:
    return [type(e).__name__ for e in effects]


# state -> command -> (next state, effect kinds in order)
EXPECTED: dict[int, dict[Command, tuple[int, list[str]]]] = {
    sm.IDLE: {
        Command.ASSIGN: (sm.PREPARING, ["Prepare", "Acknowledge"]),
        Command.SET_PHASE: (sm.IDLE, ["Ignored", "Acknowledge"]),
        Command.START: (sm.IDLE, ["Ignored", "Acknowledge"]),
        Command.SET_LOAD: (sm.IDLE, ["Ignored", "Acknowledge"]),
        Command.STOP: (sm.IDLE, ["SendFinished", "Acknowledge"]),
        Command.SET_POOLS: (sm.IDLE, ["Ignored", "Acknowledge"]),
    },
    sm.PREPARING: {
        Command.ASSIGN: (sm.PREPARING, ["Acknowledge"]),
        Command.SET_PHASE: (sm.PREPARING, ["ApplyPhase", "Acknowledge"]),
        Command.START: (sm.PREPARING, ["Acknowledge"]),
        Command.SET_LOAD: (sm.PREPARING, ["ApplyLoad", "Acknowledge"]),
        Command.STOP: (sm.IDLE, ["AbortPrepare", "SendFinished", "Acknowledge"]),
        Command.SET_POOLS: (sm.PREPARING, ["ApplyPools", "Acknowledge"]),
    },
    sm.READY: {
        Command.ASSIGN: (sm.READY, ["Acknowledge"]),
        Command.SET_PHASE: (sm.READY, ["ApplyPhase", "Acknowledge"]),
        Command.START: (sm.RUNNING, ["BeginLoad", "Acknowledge"]),
        Command.SET_LOAD: (sm.READY, ["ApplyLoad", "Acknowledge"]),
        Command.STOP: (sm.DRAINING, ["Drain", "Acknowledge"]),
        Command.SET_POOLS: (sm.READY, ["ApplyPools", "Acknowledge"]),
    },
    sm.RUNNING: {
        Command.ASSIGN: (sm.RUNNING, ["Acknowledge"]),
        Command.SET_PHASE: (sm.RUNNING, ["ApplyPhase", "Acknowledge"]),
        Command.START: (sm.RUNNING, ["Ignored", "Acknowledge"]),
        Command.SET_LOAD: (sm.RUNNING, ["ApplyLoad", "Acknowledge"]),
        Command.STOP: (sm.DRAINING, ["Drain", "Acknowledge"]),
        Command.SET_POOLS: (sm.RUNNING, ["ApplyPools", "Acknowledge"]),
    },
    sm.DRAINING: {c: (sm.DRAINING, ["Ignored", "Acknowledge"]) for c in Command},
}


def test_table_has_an_entry_for_every_state_and_command() -> None:
    assert set(sm.TABLE) == {(s, c) for s in sm.STATES for c in Command}
    assert set(EXPECTED) == set(sm.STATES)


@pytest.mark.parametrize("state", sm.STATES, ids=control_pb2.WorkerState.Name)
@pytest.mark.parametrize("command", list(Command), ids=lambda c: c.value)
def test_every_command_in_every_state(state: control_pb2.WorkerState, command: Command) -> None:
    model = model_in(state)
    new, effects = sm.receive(model, cmd(6, command))
    want_state, want_effects = EXPECTED[state][command]
    assert new.state == want_state
    assert kinds(effects) == want_effects
    assert new.last_seq == 6
    assert effects[-1] == sm.Acknowledge(6)


def test_phase_change_while_waiting_for_start_takes_effect() -> None:
    """The predecessor's bug 1: a SetPhase that arrived before Start was swallowed."""
    model = model_in(sm.READY)
    model, effects = sm.receive(model, cmd(6, Command.SET_PHASE, phase=WARMUP))
    assert model.phase == WARMUP
    assert sm.ApplyPhase(RUN, WARMUP) in effects
    model, effects = sm.receive(model, cmd(7, Command.SET_PHASE, phase=MEASUREMENT))
    model, effects = sm.receive(model, cmd(8, Command.START))
    assert model.state == sm.RUNNING
    assert sm.BeginLoad(RUN, MEASUREMENT) in effects


def test_phase_change_and_start_while_preparing_apply_once_connected() -> None:
    model = model_in(sm.PREPARING)
    model, _ = sm.receive(model, cmd(6, Command.SET_PHASE, phase=MEASUREMENT))
    model, effects = sm.receive(model, cmd(7, Command.START))
    assert model.state == sm.PREPARING and model.start_requested
    model, effects = sm.prepared(model, RUN)
    assert model.state == sm.RUNNING
    assert kinds(effects) == ["SendReady", "BeginLoad"]
    assert effects[1] == sm.BeginLoad(RUN, MEASUREMENT)


def test_stop_before_start_releases_without_load() -> None:
    model = model_in(sm.READY)
    model, effects = sm.receive(model, cmd(6, Command.STOP))
    assert model.state == sm.DRAINING
    assert not any(isinstance(e, sm.BeginLoad) for e in effects)
    model, effects = sm.drained(model, RUN)
    assert model.state == sm.IDLE and model.run_id == ""
    assert effects == [sm.SendFinished(RUN)]
    # a Start that was already on the wire changes nothing now
    model, effects = sm.receive(model, cmd(7, Command.START))
    assert model.state == sm.IDLE
    assert not any(isinstance(e, sm.BeginLoad) for e in effects)


def test_duplicate_sequence_is_acknowledged_and_ignored() -> None:
    model = model_in(sm.RUNNING)
    model, _ = sm.receive(model, cmd(6, Command.SET_PHASE, phase=WARMUP))
    again, effects = sm.receive(model, cmd(6, Command.SET_PHASE, phase=MEASUREMENT))
    assert again == model  # nothing changed
    assert kinds(effects) == ["Acknowledge", "Ignored"]
    older, effects = sm.receive(model, cmd(3, Command.STOP))
    assert older.state == sm.RUNNING
    assert not any(isinstance(e, sm.Drain) for e in effects)


def test_out_of_order_commands_wait_for_the_gap_then_apply_in_order() -> None:
    model = model_in(sm.READY)
    # 8 (Start) and 7 (SetPhase MEASUREMENT) arrive before 6 (SetPhase WARMUP)
    model, effects = sm.receive(model, cmd(8, Command.START))
    assert model.state == sm.READY and model.last_seq == 5
    assert kinds(effects) == ["Ignored"]
    model, effects = sm.receive(model, cmd(7, Command.SET_PHASE, phase=MEASUREMENT))
    assert model.last_seq == 5 and model.phase == PREPARING_PHASE
    model, effects = sm.receive(model, cmd(6, Command.SET_PHASE, phase=WARMUP))
    assert model.last_seq == 8
    assert model.state == sm.RUNNING
    assert model.phase == MEASUREMENT
    assert model.pending == {}
    assert [e for e in effects if isinstance(e, sm.Acknowledge)] == [
        sm.Acknowledge(6),
        sm.Acknowledge(7),
        sm.Acknowledge(8),
    ]
    # applied strictly in order: WARMUP, then MEASUREMENT, then the load begins in MEASUREMENT
    applied = [e for e in effects if isinstance(e, sm.ApplyPhase | sm.BeginLoad)]
    assert applied == [
        sm.ApplyPhase(RUN, WARMUP),
        sm.ApplyPhase(RUN, MEASUREMENT),
        sm.BeginLoad(RUN, MEASUREMENT),
    ]


def test_resync_assign_on_reattach_converges_regardless_of_gaps() -> None:
    """A worker that missed commands gets the full desired state and converges."""
    model = model_in(sm.RUNNING)
    model = replace(model, phase=WARMUP)
    snapshot = cmd(42, Command.ASSIGN, phase=MEASUREMENT, started=True, resync=True)
    model, effects = sm.receive(model, snapshot)
    assert model.last_seq == 42
    assert model.state == sm.RUNNING
    assert model.phase == MEASUREMENT
    assert sm.ApplyPhase(RUN, MEASUREMENT) in effects
    # stale commands from before the snapshot are ignored
    model2, effects = sm.receive(model, cmd(41, Command.STOP))
    assert model2.state == sm.RUNNING


def test_resync_while_ready_with_started_begins_load_in_current_phase() -> None:
    model = model_in(sm.READY)
    snap = cmd(20, Command.ASSIGN, phase=MEASUREMENT, started=True, resync=True)
    model, effects = sm.receive(model, snap)
    assert model.state == sm.RUNNING
    assert effects[-2] == sm.BeginLoad(RUN, MEASUREMENT)


def test_worker_joining_a_run_under_way_starts_directly_in_its_phase() -> None:
    """Assign with started=True (scale-up, or re-attach after a restart): no warmup of its own."""
    model = sm.Model()
    model, effects = sm.receive(model, cmd(1, Command.ASSIGN, phase=MEASUREMENT, started=True))
    assert model.state == sm.PREPARING
    model, effects = sm.prepared(model, RUN)
    assert model.state == sm.RUNNING
    assert sm.BeginLoad(RUN, MEASUREMENT) in effects


def test_commands_for_another_run_are_ignored() -> None:
    for state in (sm.PREPARING, sm.READY, sm.RUNNING):
        model = model_in(state)
        for command in (
            Command.SET_PHASE,
            Command.START,
            Command.SET_LOAD,
            Command.STOP,
            Command.SET_POOLS,
        ):
            new, effects = sm.receive(model, cmd(6, command, run_id="other"))
            assert new.state == model.state
            assert new.phase == model.phase
            assert kinds(effects) == ["Ignored", "Acknowledge"]


def test_assign_for_a_different_run_while_running_drains_old_and_prepares_new() -> None:
    model = model_in(sm.RUNNING)
    new, effects = sm.receive(model, cmd(6, Command.ASSIGN, run_id="run-2"))
    assert new.state == sm.PREPARING and new.run_id == "run-2"
    assert kinds(effects) == ["Drain", "Prepare", "Acknowledge"]


def test_stale_internal_events_are_ignored() -> None:
    model = model_in(sm.IDLE)
    assert sm.prepared(model, RUN)[0] == model
    assert sm.drained(model, RUN)[0] == model
    assert sm.prepare_failed(model, RUN, "x", "y")[0] == model
    preparing = model_in(sm.PREPARING)
    failed, effects = sm.prepare_failed(preparing, RUN, "target_unreachable", "refused")
    assert failed.state == sm.IDLE
    assert effects == [sm.SendFailure(RUN, "target_unreachable", "refused")]


def test_unsequenced_messages_do_not_touch_the_sequence() -> None:
    model = model_in(sm.RUNNING)
    for msg in (
        control_pb2.AttachResponse(welcome=control_pb2.Welcome()),
        control_pb2.AttachResponse(pong=control_pb2.Pong()),
    ):
        new, effects = sm.receive(model, msg)
        assert new == model and effects == []


def test_pending_buffer_is_bounded() -> None:
    model = model_in(sm.RUNNING)
    for seq in range(100, 100 + sm.MAX_PENDING + 10):
        model, _ = sm.receive(model, cmd(seq, Command.SET_LOAD))
    assert len(model.pending) == sm.MAX_PENDING


def _plan(load_start_ns: int) -> common_pb2.PhasePlan:
    plan = common_pb2.PhasePlan()
    plan.load_start_time.FromNanoseconds(load_start_ns)
    plan.measurement_start_time.FromNanoseconds(load_start_ns + 1_000_000_000)
    plan.measurement_end_time.FromNanoseconds(load_start_ns + 3_000_000_000)
    return plan


def test_start_hands_its_plan_to_the_load_and_its_instant_to_the_ack() -> None:
    plan = _plan(10_000_000_000)
    start = control_pb2.AttachResponse(seq=6, start=control_pb2.Start(run_id=RUN, plan=plan))
    model, effects = sm.receive(model_in(sm.READY), start)
    (begin,) = [e for e in effects if isinstance(e, sm.BeginLoad)]
    assert begin.plan == plan and model.plan == plan
    (ack,) = [e for e in effects if isinstance(e, sm.Acknowledge)]
    assert ack.instant_ns == 10_000_000_000  # the agent reports how late it arrived


def test_a_start_remembered_while_preparing_keeps_its_plan() -> None:
    plan = _plan(20_000_000_000)
    start = control_pb2.AttachResponse(seq=6, start=control_pb2.Start(run_id=RUN, plan=plan))
    model, _ = sm.receive(model_in(sm.PREPARING), start)
    model, effects = sm.prepared(model, RUN)
    (begin,) = [e for e in effects if isinstance(e, sm.BeginLoad)]
    assert begin.plan == plan and model.state == sm.RUNNING


def test_a_resync_with_a_changed_plan_moves_the_instants_of_a_running_worker() -> None:
    running = replace(model_in(sm.RUNNING), plan=_plan(1_000))
    ended = _plan(1_000)
    ended.measurement_end_time.FromNanoseconds(1_500_000_000)  # an unplanned end
    assign = control_pb2.Assign(
        run_id=RUN, connections=4, phase=MEASUREMENT, started=True, resync=True, plan=ended
    )
    model, effects = sm.receive(running, control_pb2.AttachResponse(seq=9, assign=assign))
    assert [e.plan for e in effects if isinstance(e, sm.ApplyPlan)] == [ended]
    assert model.plan == ended


def test_planned_set_load_and_set_phase_carry_their_instants() -> None:
    set_load = control_pb2.SetLoad(run_id=RUN, connections=3)
    set_load.apply_time.FromNanoseconds(7_000)
    _, effects = sm.receive(
        model_in(sm.RUNNING), control_pb2.AttachResponse(seq=6, set_load=set_load)
    )
    assert sm.ApplyLoad(RUN, 3, 0.0, 7_000) in effects
    assert sm.Acknowledge(6, 7_000) in effects
    unplanned = control_pb2.SetLoad(run_id=RUN, connections=3)
    unplanned.decide_time.FromNanoseconds(8_000)
    _, effects = sm.receive(
        model_in(sm.RUNNING), control_pb2.AttachResponse(seq=6, set_load=unplanned)
    )
    assert sm.ApplyLoad(RUN, 3, 0.0, 0) in effects and sm.Acknowledge(6, 0) in effects
