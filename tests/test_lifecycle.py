"""The run lifecycle table: every legal move works, every illegal one is refused."""

from __future__ import annotations

import itertools

import pytest

from controller import lifecycle as lc
from snowload.v1 import common_pb2

LEGAL = {
    (lc.PENDING, lc.PREPARING),
    (lc.PREPARING, lc.WARMUP),
    (lc.PREPARING, lc.MEASUREMENT),  # warmup of 0 s
    (lc.WARMUP, lc.MEASUREMENT),
    (lc.MEASUREMENT, lc.PROCESSING),
    (lc.PROCESSING, lc.COMPLETED),
    *((s, end) for s in lc.ALL_STATES if s not in lc.TERMINAL for end in (lc.FAILED, lc.CANCELLED)),
}
ALL_PAIRS = list(itertools.product(lc.ALL_STATES, repeat=2))


@pytest.mark.parametrize(
    ("current", "target"),
    sorted(LEGAL),
    ids=lc.state_name,
)
def test_legal_transitions_work(current: lc.State, target: lc.State) -> None:
    assert lc.check_transition(current, target) == target


@pytest.mark.parametrize(
    ("current", "target"),
    [pair for pair in ALL_PAIRS if pair not in LEGAL],
    ids=lc.state_name,
)
def test_illegal_transitions_are_refused(current: lc.State, target: lc.State) -> None:
    with pytest.raises(lc.IllegalTransition) as info:
        lc.check_transition(current, target)
    assert lc.state_name(current) in str(info.value)
    assert lc.state_name(target) in str(info.value)


def test_table_covers_every_state_and_terminal_states_are_final() -> None:
    assert set(lc.VALID_TRANSITIONS) == set(lc.ALL_STATES)
    for state in lc.TERMINAL:
        assert lc.VALID_TRANSITIONS[state] == frozenset()
    # the happy path is reachable from PENDING through legal moves only
    path = [lc.PENDING, lc.PREPARING, lc.WARMUP, lc.MEASUREMENT, lc.PROCESSING, lc.COMPLETED]
    for a, b in itertools.pairwise(path):
        lc.check_transition(a, b)


def test_every_non_terminal_state_can_fail_or_be_cancelled() -> None:
    for state in lc.ALL_STATES:
        if state in lc.TERMINAL:
            continue
        assert {lc.FAILED, lc.CANCELLED} <= lc.VALID_TRANSITIONS[state]


def test_an_illegal_transition_carries_both_states() -> None:
    with pytest.raises(lc.IllegalTransition) as info:
        lc.check_transition(lc.COMPLETED, lc.MEASUREMENT)
    assert (info.value.current, info.value.target) == (lc.COMPLETED, lc.MEASUREMENT)
    assert str(info.value) == "illegal transition COMPLETED -> MEASUREMENT"


def test_a_state_outside_the_table_has_no_legal_move() -> None:
    with pytest.raises(lc.IllegalTransition):
        lc.check_transition(common_pb2.STATE_UNSPECIFIED, lc.PREPARING)


def test_state_names_and_terminal_states() -> None:
    names = {
        lc.PENDING: "PENDING",
        lc.PREPARING: "PREPARING",
        lc.WARMUP: "WARMUP",
        lc.MEASUREMENT: "MEASUREMENT",
        lc.PROCESSING: "PROCESSING",
        lc.COMPLETED: "COMPLETED",
        lc.FAILED: "FAILED",
        lc.CANCELLED: "CANCELLED",
    }
    assert {s: lc.state_name(s) for s in lc.ALL_STATES} == names
    assert [s for s in lc.ALL_STATES if lc.is_terminal(s)] == [
        lc.COMPLETED,
        lc.FAILED,
        lc.CANCELLED,
    ]
