"""The run lifecycle as a pure transition table (no I/O).

    PENDING -> PREPARING -> WARMUP -> MEASUREMENT -> PROCESSING -> COMPLETED
    PREPARING -> MEASUREMENT            (warmup of 0 s: WARMUP is skipped)
    any non-terminal state -> FAILED | CANCELLED

Terminal states carry a reason from ``Reason``.
"""

from __future__ import annotations

from enum import StrEnum

from snowload.v1 import common_pb2

PENDING = common_pb2.STATE_PENDING
PREPARING = common_pb2.STATE_PREPARING
WARMUP = common_pb2.STATE_WARMUP
MEASUREMENT = common_pb2.STATE_MEASUREMENT
PROCESSING = common_pb2.STATE_PROCESSING
COMPLETED = common_pb2.STATE_COMPLETED
FAILED = common_pb2.STATE_FAILED
CANCELLED = common_pb2.STATE_CANCELLED

ALL_STATES = (PENDING, PREPARING, WARMUP, MEASUREMENT, PROCESSING, COMPLETED, FAILED, CANCELLED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
LOAD_PHASES = frozenset({WARMUP, MEASUREMENT})

State = common_pb2.State

VALID_TRANSITIONS: dict[State, frozenset[State]] = {
    PENDING: frozenset({PREPARING, FAILED, CANCELLED}),
    PREPARING: frozenset({WARMUP, MEASUREMENT, FAILED, CANCELLED}),
    WARMUP: frozenset({MEASUREMENT, FAILED, CANCELLED}),
    MEASUREMENT: frozenset({PROCESSING, FAILED, CANCELLED}),
    PROCESSING: frozenset({COMPLETED, FAILED, CANCELLED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}


class Reason(StrEnum):
    DURATION_ELAPSED = "duration_elapsed"
    USER_REQUESTED = "user_requested"
    SLO_VIOLATED = "slo_violated"
    WORKER_LOST = "worker_lost"
    WORKER_LEFT = "worker_left"
    TARGET_UNREACHABLE = "target_unreachable"
    AUTH_FAILED = "auth_failed"
    CONFIG_ERROR = "config_error"
    QUERY_FAILED = "query_failed"
    SETUP_FAILED = "setup_failed"
    READY_TIMEOUT = "ready_timeout"
    NO_WORKERS = "no_workers"
    CONTROLLER_RESTARTED = "controller_restarted"
    CONTROLLER_SHUTDOWN = "controller_shutdown"
    WORKER_ERROR = "worker_error"
    CAPACITY = "capacity"
    INVALID_REPORT = "invalid_report"


class IllegalTransition(Exception):
    def __init__(self, current: int, target: int) -> None:
        super().__init__(f"illegal transition {state_name(current)} -> {state_name(target)}")
        self.current = current
        self.target = target


def state_name(state: int) -> str:
    return common_pb2.State.Name(state).removeprefix("STATE_")


def is_terminal(state: int) -> bool:
    return state in TERMINAL


def check_transition(current: State, target: State) -> State:
    """Return ``target`` if the move is legal, else raise IllegalTransition."""
    if target not in VALID_TRANSITIONS.get(current, frozenset[State]()):
        raise IllegalTransition(current, target)
    return target
