"""Failing query kinds: the first error of each (shown live and in the summary), a few
error samples per kind, and the ``[load] on_query_failure`` policy.

A kind that fails on every one of its first attempts is almost always a mistake in the
workload (a typo in its SQL, a missing table or grant): with ``on_query_failure = "fail"``
(the default) the run ends early as FAILED with the reason ``query_failed``, naming the
kind and its error, instead of hammering the server with statements that cannot succeed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snowload.v1 import control_pb2, run_pb2
from snowload.workload import OnQueryFailure

FAILED_ATTEMPTS = 10
"""A kind with this many errors and not one success fails the run (policy ``fail``)."""
SAMPLES_PER_KIND = 5


@dataclass
class _Kind:
    successes: int = 0
    errors: int = 0
    samples: list[run_pb2.ErrorSample] = field(default_factory=list)


class QueryFailures:
    """Fed every MetricsReport of a run, in arrival order."""

    def __init__(self, policy: OnQueryFailure = OnQueryFailure.FAIL) -> None:
        self.policy = policy
        self._kinds: dict[str, _Kind] = {}
        self.first_errors: list[run_pb2.ErrorSample] = []
        """The first error of each kind that failed, in the order they arrived."""

    def observe(self, report: control_pb2.MetricsReport) -> bool:
        """Count the report's successes and errors per kind; True if it had errors (only
        then can :meth:`verdict` change)."""
        failed = False
        kinds = self._kinds
        for interval in report.kinds:
            name = interval.kind
            kind = kinds.get(name)
            if kind is None:
                kind = kinds[name] = _Kind()
            kind.successes += interval.count
            errors = interval.errors
            if not errors:
                continue
            failed = True
            for err in errors:
                kind.errors += err.count
                for message in err.samples:
                    self._sample(name, kind, err.category, message)
        return failed

    def _sample(self, name: str, kind: _Kind, category: str, message: str) -> None:
        if len(kind.samples) >= SAMPLES_PER_KIND or any(
            s.category == category and s.message == message for s in kind.samples
        ):
            return
        sample = run_pb2.ErrorSample(kind=name, category=category, message=message)
        kind.samples.append(sample)
        if len(kind.samples) == 1:
            self.first_errors.append(sample)

    def samples(self) -> list[run_pb2.ErrorSample]:
        """Every kept sample, grouped by kind (kinds in the order they first failed)."""
        order = [s.kind for s in self.first_errors]
        return [s for name in order for s in self._kinds[name].samples]

    def failing_from_start(self) -> tuple[str, int, run_pb2.ErrorSample | None] | None:
        """The first kind (in the order kinds were first reported) that failed on each of at least
        FAILED_ATTEMPTS attempts and never succeeded: (name, errors, its first error)."""
        for name, kind in self._kinds.items():
            if kind.successes == 0 and kind.errors >= FAILED_ATTEMPTS:
                first = next((s for s in self.first_errors if s.kind == name), None)
                return name, kind.errors, first
        return None

    def verdict(self) -> str | None:
        """The message for a query_failed outcome, or None while the run may go on."""
        if self.policy is not OnQueryFailure.FAIL:
            return None
        failing = self.failing_from_start()
        if failing is None:
            return None
        name, errors, first = failing
        what = f"{first.category}: {first.message}" if first is not None else "no message"
        return (
            f"query {name!r} failed on every attempt ({errors} of {errors}): {what} "
            '(set [load] on_query_failure = "continue" to run on regardless)'
        )
