"""The worker's state table cell by cell, with the exact model and effects each command
leaves: written out by hand from the documented behaviour (worker/state_machine.py's
docstrings, docs/ARCHITECTURE.md), never computed by the code under test.
tests/test_worker_state_machine.py checks the shape of every cell; this checks contents."""

from __future__ import annotations

from dataclasses import replace

import pytest

from snowload.v1 import common_pb2, control_pb2
from worker import state_machine as sm
from worker.state_machine import Command

RUN = "run-1"
OTHER = "run-2"
PREP = common_pb2.STATE_PREPARING
WARMUP = common_pb2.STATE_WARMUP
MEASUREMENT = common_pb2.STATE_MEASUREMENT


def plan(load_start_ns: int) -> common_pb2.PhasePlan:
    p = common_pb2.PhasePlan()
    p.load_start_time.FromNanoseconds(load_start_ns)
    p.measurement_start_time.FromNanoseconds(load_start_ns + 1_000)
    p.measurement_end_time.FromNanoseconds(load_start_ns + 2_000)
    return p


PLAN = plan(10_000)
POOLS = [control_pb2.PoolValues(query_index=1, param_index=2, values_json="[1]", rows=1)]
ASSIGN = control_pb2.Assign(run_id=RUN, connections=8, rate=2.5, phase=WARMUP)
SET_PHASE = control_pb2.SetPhase(run_id=RUN, phase=MEASUREMENT)
SET_PHASE.phase_start_time.FromNanoseconds(30_000)
START = control_pb2.Start(run_id=RUN, plan=PLAN)
SET_LOAD = control_pb2.SetLoad(run_id=RUN, connections=3, rate=7.5)
SET_LOAD.apply_time.FromNanoseconds(40_000)
STOP = control_pb2.Stop(run_id=RUN, reason="r")
STOP.drain_timeout.FromMilliseconds(2_500)
SET_POOLS = control_pb2.SetPools(run_id=RUN, pools=POOLS)


def msg(seq: int, command: Command) -> control_pb2.AttachResponse:
    body = {
        Command.ASSIGN: ASSIGN,
        Command.SET_PHASE: SET_PHASE,
        Command.START: START,
        Command.SET_LOAD: SET_LOAD,
        Command.STOP: STOP,
        Command.SET_POOLS: SET_POOLS,
    }[command]
    return control_pb2.AttachResponse(seq=seq, **{command.value: body})  # type: ignore[arg-type]


# the planned instant each command above carries, as the Acknowledge reports it
INSTANT = {Command.SET_PHASE: 30_000, Command.START: 10_000, Command.SET_LOAD: 40_000}

IDLE_MODEL = sm.Model(last_seq=5)


def busy(state: control_pb2.WorkerState) -> sm.Model:
    return sm.Model(state=state, run_id=RUN, phase=PREP, connections=4, last_seq=5)


def after(model: sm.Model, **changes: object) -> sm.Model:
    return replace(model, last_seq=6, **changes)  # type: ignore[arg-type]


def loaded_cells(state: control_pb2.WorkerState) -> dict[Command, tuple[sm.Model, list[object]]]:
    """READY and RUNNING answer alike except to Start."""
    m = busy(state)
    return {
        Command.ASSIGN: (
            after(m, phase=WARMUP, connections=8),
            [sm.ApplyPhase(RUN, WARMUP, 0), sm.ApplyLoad(RUN, 8, 2.5, 0)],
        ),
        Command.SET_PHASE: (
            after(m, phase=MEASUREMENT),
            [sm.ApplyPhase(RUN, MEASUREMENT, 30_000)],
        ),
        Command.SET_LOAD: (after(m, connections=3), [sm.ApplyLoad(RUN, 3, 7.5, 40_000)]),
        Command.STOP: (after(m, state=sm.DRAINING), [sm.Drain(RUN, "r", 2.5, STOP)]),
        Command.SET_POOLS: (after(m), [sm.ApplyPools(RUN, tuple(POOLS))]),
    }


EXACT: dict[int, dict[Command, tuple[sm.Model, list[object]]]] = {
    sm.IDLE: {
        Command.ASSIGN: (
            after(IDLE_MODEL, state=sm.PREPARING, run_id=RUN, phase=WARMUP, connections=8),
            [sm.Prepare(ASSIGN)],
        ),
        Command.SET_PHASE: (after(IDLE_MODEL), [sm.Ignored("no run assigned")]),
        Command.START: (after(IDLE_MODEL), [sm.Ignored("no run assigned")]),
        Command.SET_LOAD: (after(IDLE_MODEL), [sm.Ignored("no run assigned")]),
        Command.STOP: (after(IDLE_MODEL), [sm.SendFinished(RUN)]),
        Command.SET_POOLS: (after(IDLE_MODEL), [sm.Ignored("no run assigned")]),
    },
    sm.PREPARING: {
        Command.ASSIGN: (
            after(busy(sm.PREPARING), phase=WARMUP, connections=8),
            [sm.ApplyPhase(RUN, WARMUP, 0), sm.ApplyLoad(RUN, 8, 2.5, 0)],
        ),
        Command.SET_PHASE: (
            after(busy(sm.PREPARING), phase=MEASUREMENT),
            [sm.ApplyPhase(RUN, MEASUREMENT, 30_000)],
        ),
        Command.START: (after(busy(sm.PREPARING), start_requested=True, plan=PLAN), []),
        Command.SET_LOAD: (
            after(busy(sm.PREPARING), connections=3),
            [sm.ApplyLoad(RUN, 3, 7.5, 40_000)],
        ),
        Command.STOP: (
            sm.Model(state=sm.IDLE, phase=PREP, connections=4, last_seq=6),
            [sm.AbortPrepare(RUN), sm.SendFinished(RUN)],
        ),
        Command.SET_POOLS: (after(busy(sm.PREPARING)), [sm.ApplyPools(RUN, tuple(POOLS))]),
    },
    sm.READY: {
        **loaded_cells(sm.READY),
        Command.START: (
            after(busy(sm.READY), state=sm.RUNNING, start_requested=True, plan=PLAN),
            [sm.BeginLoad(RUN, PREP, PLAN)],
        ),
    },
    sm.RUNNING: {
        **loaded_cells(sm.RUNNING),
        Command.START: (after(busy(sm.RUNNING)), [sm.Ignored("already running")]),
    },
    sm.DRAINING: {
        Command.ASSIGN: (
            after(busy(sm.DRAINING)),
            [sm.Ignored("run is draining; a resync cannot restart it")],
        ),
        Command.SET_PHASE: (after(busy(sm.DRAINING)), [sm.Ignored("draining")]),
        Command.START: (after(busy(sm.DRAINING)), [sm.Ignored("draining")]),
        Command.SET_LOAD: (after(busy(sm.DRAINING)), [sm.Ignored("draining")]),
        Command.STOP: (after(busy(sm.DRAINING)), [sm.Ignored("already draining")]),
        Command.SET_POOLS: (after(busy(sm.DRAINING)), [sm.Ignored("draining")]),
    },
}


def same_payloads(got: list[sm.Effect], want: list[object]) -> None:
    """Fields marked compare=False (plans, pools, the Stop) are compared here."""
    for g, w in zip(got, want, strict=True):
        for name in ("plan", "pools", "stop", "assign"):
            if hasattr(w, name):
                assert getattr(g, name) == getattr(w, name), (g, name)


@pytest.mark.parametrize("state", sm.STATES, ids=control_pb2.WorkerState.Name)
@pytest.mark.parametrize("command", list(Command), ids=lambda c: c.value)
def test_each_cell_leaves_the_written_out_model_and_effects(
    state: control_pb2.WorkerState, command: Command
) -> None:
    model = IDLE_MODEL if state == sm.IDLE else busy(state)
    got_model, got = sm.receive(model, msg(6, command))
    want_model, want = EXACT[state][command]
    want = [*want, sm.Acknowledge(6, INSTANT.get(command, 0))]
    assert got_model == want_model
    assert got == want
    same_payloads(got, want)


FOREIGN = {
    Command.SET_PHASE: control_pb2.SetPhase(run_id=OTHER, phase=MEASUREMENT),
    Command.START: control_pb2.Start(run_id=OTHER),
    Command.SET_LOAD: control_pb2.SetLoad(run_id=OTHER, connections=9),
    Command.STOP: control_pb2.Stop(run_id=OTHER),
    Command.SET_POOLS: control_pb2.SetPools(run_id=OTHER),
}


@pytest.mark.parametrize(
    ("state", "command"),
    # a running worker ignores every Start (its cell in EXACT)
    [
        (s, c)
        for s in (sm.PREPARING, sm.READY, sm.RUNNING)
        for c in FOREIGN
        if (s, c) != (sm.RUNNING, Command.START)
    ],
)
def test_a_command_for_another_run_names_it_and_changes_nothing(
    state: control_pb2.WorkerState, command: Command
) -> None:
    body = FOREIGN[command]
    model = busy(state)
    m = control_pb2.AttachResponse(seq=6, **{command.value: body})  # type: ignore[arg-type]
    new, effects = sm.receive(model, m)
    assert new == after(model)
    assert effects == [sm.Ignored(f"{command.value} for another run {OTHER}"), sm.Acknowledge(6)]


def test_an_empty_run_id_means_the_current_run() -> None:
    body = control_pb2.SetLoad(connections=9)
    new, effects = sm.receive(busy(sm.RUNNING), control_pb2.AttachResponse(seq=6, set_load=body))
    assert new.connections == 9
    assert effects == [sm.ApplyLoad(RUN, 9, 0.0, 0), sm.Acknowledge(6)]


def test_a_set_load_without_connections_keeps_the_count_and_changes_the_rate() -> None:
    body = control_pb2.SetLoad(run_id=RUN, rate=50.0)
    new, effects = sm.receive(busy(sm.RUNNING), control_pb2.AttachResponse(seq=6, set_load=body))
    assert new.connections == 4
    assert effects == [sm.ApplyLoad(RUN, 0, 50.0, 0), sm.Acknowledge(6)]


def test_a_stop_without_timeout_drains_for_five_seconds() -> None:
    body = control_pb2.Stop(run_id=RUN, reason="done")
    _, effects = sm.receive(busy(sm.RUNNING), control_pb2.AttachResponse(seq=6, stop=body))
    assert effects[0] == sm.Drain(RUN, "done", 5.0)


def test_a_stop_without_run_while_idle_is_ignored() -> None:
    m = control_pb2.AttachResponse(seq=6, stop=control_pb2.Stop())
    new, effects = sm.receive(IDLE_MODEL, m)
    assert new == after(IDLE_MODEL)
    assert effects == [sm.Ignored("stop while idle"), sm.Acknowledge(6)]


@pytest.mark.parametrize(
    ("state", "leave"),
    [
        (sm.PREPARING, sm.AbortPrepare(RUN)),
        (sm.READY, sm.Drain(RUN, "reassigned", 0.0)),
        (sm.RUNNING, sm.Drain(RUN, "reassigned", 0.0)),
    ],
)
def test_an_assign_of_another_run_leaves_the_old_one_and_prepares_the_new(
    state: control_pb2.WorkerState, leave: object
) -> None:
    body = control_pb2.Assign(run_id=OTHER, connections=2, phase=WARMUP, started=True, plan=PLAN)
    model = replace(busy(state), start_requested=False, plan=plan(99))
    new, effects = sm.receive(model, control_pb2.AttachResponse(seq=6, assign=body))
    want = sm.Model(
        state=sm.PREPARING,
        run_id=OTHER,
        phase=WARMUP,
        start_requested=True,
        connections=2,
        last_seq=6,
        plan=PLAN,
    )
    assert new == want
    assert effects == [leave, sm.Prepare(body), sm.Acknowledge(6)]
    assert effects[1].assign == body  # type: ignore[union-attr]


def test_an_assign_of_another_run_while_draining_is_refused() -> None:
    body = control_pb2.Assign(run_id=OTHER, connections=2)
    model = busy(sm.DRAINING)
    new, effects = sm.receive(model, control_pb2.AttachResponse(seq=6, assign=body))
    assert new == after(model)
    assert effects == [
        sm.Ignored(f"busy draining {RUN}; assign {OTHER} refused"),
        sm.Acknowledge(6),
    ]


def test_an_assign_without_phase_or_connections_changes_neither() -> None:
    body = control_pb2.Assign(run_id=RUN)
    model = replace(busy(sm.RUNNING), phase=MEASUREMENT)
    new, effects = sm.receive(model, control_pb2.AttachResponse(seq=6, assign=body))
    assert new == after(model)
    assert effects == [sm.Acknowledge(6)]


def test_an_assign_repeating_the_phase_and_count_changes_nothing() -> None:
    body = control_pb2.Assign(run_id=RUN, phase=PREP, connections=4, plan=PLAN)
    model = replace(busy(sm.RUNNING), plan=plan(10_000))
    new, effects = sm.receive(model, control_pb2.AttachResponse(seq=6, assign=body))
    assert new == after(model)
    assert effects == [sm.Acknowledge(6)]  # the same plan is no ApplyPlan


def test_a_started_assign_while_ready_begins_the_load_in_its_phase_with_its_plan() -> None:
    body = control_pb2.Assign(run_id=RUN, phase=MEASUREMENT, started=True, plan=PLAN)
    new, effects = sm.receive(busy(sm.READY), control_pb2.AttachResponse(seq=6, assign=body))
    assert new == after(
        busy(sm.READY), state=sm.RUNNING, phase=MEASUREMENT, start_requested=True, plan=PLAN
    )
    # a READY worker has no load whose instants could move: no ApplyPlan
    assert effects == [
        sm.ApplyPhase(RUN, MEASUREMENT, 0),
        sm.BeginLoad(RUN, MEASUREMENT),
        sm.Acknowledge(6),
    ]
    assert effects[1].plan == PLAN  # type: ignore[union-attr]


def test_an_unstarted_assign_keeps_a_start_already_requested() -> None:
    model = replace(busy(sm.PREPARING), start_requested=True)
    body = control_pb2.Assign(run_id=RUN)
    new, _ = sm.receive(model, control_pb2.AttachResponse(seq=6, assign=body))
    assert new.start_requested


def test_a_start_without_plan_keeps_the_plan_the_model_has() -> None:
    for state in (sm.PREPARING, sm.READY):
        model = replace(busy(state), plan=PLAN)
        start = control_pb2.AttachResponse(seq=6, start=control_pb2.Start(run_id=RUN))
        new, effects = sm.receive(model, start)
        assert new.plan == PLAN
        assert effects[-1] == sm.Acknowledge(6, 0)
    assert effects[0].plan == PLAN  # type: ignore[union-attr]


def test_a_set_phase_without_instant_applies_on_arrival() -> None:
    body = control_pb2.SetPhase(run_id=RUN, phase=WARMUP)
    _, effects = sm.receive(busy(sm.RUNNING), control_pb2.AttachResponse(seq=6, set_phase=body))
    assert effects == [sm.ApplyPhase(RUN, WARMUP, 0), sm.Acknowledge(6, 0)]


def test_duplicates_gaps_and_a_full_buffer_say_which_seq() -> None:
    model = busy(sm.RUNNING)
    same, effects = sm.receive(model, msg(5, Command.SET_LOAD))
    assert same == model
    assert effects == [sm.Acknowledge(5), sm.Ignored("duplicate seq 5")]
    waiting, effects = sm.receive(model, msg(7, Command.SET_LOAD))
    assert waiting == replace(model, pending={7: msg(7, Command.SET_LOAD)})
    assert effects == [sm.Ignored("seq 7 waits for a gap")]
    full = replace(model, pending={s: msg(s, Command.SET_LOAD) for s in range(7, 7 + 1024)})
    kept, effects = sm.receive(full, msg(2000, Command.SET_LOAD))
    assert kept == full
    assert effects == [sm.Ignored("pending buffer full; dropped seq 2000")]
    one_short = replace(model, pending={s: msg(s, Command.SET_LOAD) for s in range(7, 7 + 1023)})
    grown, _ = sm.receive(one_short, msg(2000, Command.SET_LOAD))
    assert len(grown.pending) == 1024


def test_a_resync_drops_the_buffered_commands_it_supersedes_and_keeps_later_ones() -> None:
    model = busy(sm.RUNNING)
    for seq in (8, 9, 50):
        model, _ = sm.receive(model, msg(seq, Command.SET_LOAD))
    assert sorted(model.pending) == [8, 9, 50]
    snapshot = control_pb2.Assign(run_id=RUN, resync=True)
    new, effects = sm.receive(model, control_pb2.AttachResponse(seq=9, assign=snapshot))
    assert new.last_seq == 9
    assert sorted(new.pending) == [50]
    assert effects == [sm.Acknowledge(9)]
    # the gap before 50 is then filled in order: 10..49 from the controller
    filled = new
    for seq in range(10, 50):
        filled, effects = sm.receive(filled, msg(seq, Command.SET_PHASE))
    assert filled.last_seq == 50 and filled.pending == {}
    assert effects[-1] == sm.Acknowledge(50, 40_000)


def test_a_resync_applies_even_at_an_old_seq() -> None:
    """After a controller restart the numbering may start lower than the worker's."""
    model = replace(busy(sm.RUNNING), last_seq=100)
    snapshot = control_pb2.Assign(run_id=RUN, phase=WARMUP, resync=True)
    new, effects = sm.receive(model, control_pb2.AttachResponse(seq=3, assign=snapshot))
    assert new.last_seq == 3 and new.phase == WARMUP
    assert effects == [sm.ApplyPhase(RUN, WARMUP, 0), sm.Acknowledge(3)]


def test_internal_events_move_only_from_their_state_and_run() -> None:
    preparing = busy(sm.PREPARING)
    assert sm.prepared(preparing, OTHER) == (preparing, [sm.Ignored("stale prepare result")])
    assert sm.prepared(busy(sm.READY), RUN) == (
        busy(sm.READY),
        [sm.Ignored("stale prepare result")],
    )
    assert sm.prepared(preparing, RUN) == (
        replace(preparing, state=sm.READY),
        [sm.SendReady(RUN)],
    )
    started = replace(preparing, start_requested=True, phase=WARMUP, plan=PLAN)
    new, effects = sm.prepared(started, RUN)
    assert new == replace(started, state=sm.RUNNING)
    assert effects == [sm.SendReady(RUN), sm.BeginLoad(RUN, WARMUP)]
    assert effects[1].plan == PLAN  # type: ignore[union-attr]

    assert sm.prepare_failed(preparing, OTHER, "a", "b") == (
        preparing,
        [sm.Ignored("stale prepare failure")],
    )
    assert sm.prepare_failed(busy(sm.READY), RUN, "a", "b")[1] == [
        sm.Ignored("stale prepare failure")
    ]
    assert sm.prepare_failed(started, RUN, "a", "b") == (
        sm.Model(phase=WARMUP, connections=4, last_seq=5),
        [sm.SendFailure(RUN, "a", "b")],
    )

    draining = replace(busy(sm.DRAINING), start_requested=True, plan=PLAN)
    assert sm.drained(draining, OTHER) == (draining, [sm.Ignored("stale drain result")])
    assert sm.drained(busy(sm.RUNNING), RUN)[1] == [sm.Ignored("stale drain result")]
    assert sm.drained(draining, RUN) == (
        sm.Model(phase=PREP, connections=4, last_seq=5),
        [sm.SendFinished(RUN)],
    )


def test_only_sequenced_commands_have_a_command_and_an_instant() -> None:
    assert sm.command_of(control_pb2.AttachResponse()) is None
    assert sm.command_of(control_pb2.AttachResponse(pong=control_pb2.Pong())) is None
    assert sm.command_of(msg(1, Command.STOP)) is Command.STOP
    assert sm.instant_of(control_pb2.AttachResponse(start=control_pb2.Start())) == 0
    assert sm.instant_of(control_pb2.AttachResponse(set_phase=control_pb2.SetPhase())) == 0
    assert sm.instant_of(msg(1, Command.ASSIGN)) == 0


def test_an_assign_that_is_no_resync_is_sequenced_like_any_command() -> None:
    model = busy(sm.RUNNING)
    again = control_pb2.AttachResponse(seq=5, assign=ASSIGN)
    assert sm.receive(model, again) == (model, [sm.Acknowledge(5), sm.Ignored("duplicate seq 5")])
    early = control_pb2.AttachResponse(seq=7, assign=ASSIGN)
    assert sm.receive(model, early) == (
        replace(model, pending={7: early}),
        [sm.Ignored("seq 7 waits for a gap")],
    )


def test_a_stop_while_preparing_forgets_the_requested_start_and_its_plan() -> None:
    model = replace(busy(sm.PREPARING), start_requested=True, plan=PLAN)
    new, _ = sm.receive(model, msg(6, Command.STOP))
    assert new == sm.Model(phase=PREP, connections=4, last_seq=6)


def test_a_changed_plan_for_a_running_worker_names_the_run() -> None:
    model = replace(busy(sm.RUNNING), plan=plan(1_000))
    body = control_pb2.Assign(run_id=RUN, plan=PLAN, resync=True)
    new, effects = sm.receive(model, control_pb2.AttachResponse(seq=6, assign=body))
    assert new == after(model, plan=PLAN)
    assert effects == [sm.ApplyPlan(RUN, PLAN), sm.Acknowledge(6)]
    assert effects[0].plan == PLAN  # type: ignore[union-attr]
