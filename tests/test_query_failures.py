"""The on_query_failure policy and the per-kind first errors, fed real MetricsReports."""

from __future__ import annotations

from controller.query_failures import FAILED_ATTEMPTS, QueryFailures
from snowload.v1 import common_pb2, control_pb2
from snowload.workload import OnQueryFailure

MEAS = common_pb2.STATE_MEASUREMENT


def report(kinds: dict[str, tuple[int, list[tuple[str, int, str]]]]) -> control_pb2.MetricsReport:
    """kind -> (successes, [(category, errors, sample message)])."""
    rep = control_pb2.MetricsReport(run_id="r", interval_id=1)
    for kind, (ok, errors) in kinds.items():
        ki = rep.kinds.add(kind=kind, phase=MEAS, count=ok)
        for category, count, message in errors:
            ki.errors.add(category=category, count=count, samples=[message])
    return rep


def test_a_kind_failing_from_the_start_fails_the_run_naming_it() -> None:
    failures = QueryFailures(OnQueryFailure.FAIL)
    typo = ("syntax", 4, 'near "SELEC": syntax error')
    failures.observe(report({"good": (50, []), "bad": (0, [typo])}))
    assert failures.verdict() is None  # 4 attempts: too early to call
    assert [(s.kind, s.category, s.message) for s in failures.first_errors] == [
        ("bad", "syntax", 'near "SELEC": syntax error')
    ]
    failures.observe(report({"good": (50, []), "bad": (0, [typo, typo])}))
    why = failures.verdict()
    assert why is not None
    assert "'bad'" in why and "12 of 12" in why and 'syntax: near "SELEC"' in why
    assert FAILED_ATTEMPTS <= 12


def test_a_kind_that_succeeded_once_or_the_continue_policy_never_fail_the_run() -> None:
    lock = ("lock", 30, "database is locked")
    mixed = QueryFailures(OnQueryFailure.FAIL)
    mixed.observe(report({"w": (1, [lock])}))
    assert mixed.verdict() is None
    assert mixed.failing_from_start() is None
    keep_going = QueryFailures(OnQueryFailure.CONTINUE)
    keep_going.observe(report({"w": (0, [lock])}))
    assert keep_going.failing_from_start() is not None
    assert keep_going.verdict() is None


def test_samples_name_their_kind_and_stay_distinct_and_bounded() -> None:
    failures = QueryFailures()
    for i in range(10):
        failures.observe(
            report(
                {
                    "a": (1, [("lock", 1, "database is locked")]),
                    "b": (1, [("constraint", 1, f"UNIQUE constraint failed {i}")]),
                }
            )
        )
    samples = failures.samples()
    assert [s.kind for s in samples[:1]] == ["a"]
    assert sum(1 for s in samples if s.kind == "a") == 1  # the same message once
    assert sum(1 for s in samples if s.kind == "b") == 5  # a few distinct ones
    assert [s.kind for s in failures.first_errors] == ["a", "b"]


def test_the_policy_is_a_validated_load_field_with_a_safe_default() -> None:
    import pytest

    from snowload.workload import WorkloadError, parse_toml

    base = (
        'name = "p"\n[target]\ndatabase = "x.db"\n[load]\n{extra}\n'
        '[[query]]\nname = "q"\nsql = "SELECT 1"\n'
    )
    assert parse_toml(base.format(extra="")).load.on_query_failure is OnQueryFailure.FAIL
    keep = parse_toml(base.format(extra='on_query_failure = "continue"'))
    assert keep.load.on_query_failure is OnQueryFailure.CONTINUE
    # the canonical form (what travels to the workers) keeps it
    from snowload.workload import parse_json

    assert parse_json(keep.to_json()).load.on_query_failure is OnQueryFailure.CONTINUE
    with pytest.raises(WorkloadError) as info:
        parse_toml(base.format(extra='on_query_failure = "ignore"'), source="w.toml")
    assert str(info.value) == (
        'w.toml:5: load.on_query_failure: must be one of fail, continue, got "ignore"'
    )


def test_only_a_report_with_errors_can_change_the_verdict() -> None:
    """observe() says whether the report had errors: the controller asks for a verdict only
    then, so a report of successes alone must never be the one that fails the run."""
    failures = QueryFailures(OnQueryFailure.FAIL)
    typo = ("syntax", FAILED_ATTEMPTS, 'near "SELEC": syntax error')
    assert failures.observe(report({"good": (50, [])})) is False
    assert failures.observe(report({"good": (50, []), "bad": (0, [typo])})) is True
    assert failures.verdict() is not None
    assert failures.observe(report({"good": (50, []), "bad": (0, [])})) is False
    # successes counted all the same: a kind that succeeded once never fails the run
    late = QueryFailures(OnQueryFailure.FAIL)
    assert late.observe(report({"bad": (1, [])})) is False
    assert late.observe(report({"bad": (0, [typo])})) is True
    assert late.verdict() is None
