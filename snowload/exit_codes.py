"""The exit codes of every ``snowload`` command, in one place (README, ``run --help``).

Shared by the top-level command (which turns a closed stdout into PIPE_CLOSED) and the
controller-side commands; no imports, so a worker process can load it too.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    BAD_INPUT = 2
    RUN_FAILED = 3
    SLO_FAILED = 4
    REGRESSION = 5
    INTERRUPTED = 130
    PIPE_CLOSED = 141


def describe() -> str:
    """The table for ``--help`` epilogs."""
    lines = ["exit codes:"]
    for code in ExitCode:
        doc = _DOCS[code]
        lines.append(f"  {code.value:<4} {doc}")
    return "\n".join(lines)


_DOCS = {
    ExitCode.OK: "the run completed and its SLOs passed (or it has none); check: no problem",
    ExitCode.ERROR: "an unexpected error (a bug)",
    ExitCode.BAD_INPUT: "bad arguments or workload file, a results database that cannot be "
    "written (read-only filesystem, no permission), or a query the target rejects "
    "(check --connect): nothing ran; runs: an unknown run or query log entry; runs profile: "
    "a statement that may write without --allow-writes, or one the server refused",
    ExitCode.RUN_FAILED: "the run FAILED (see its reason: query_failed, auth_failed, "
    "config_error, target_unreachable, setup_failed, worker_lost, ...) or was CANCELLED "
    "by a first Ctrl-C; check --connect, runs profile: the target could not be reached",
    ExitCode.SLO_FAILED: "the run completed but an SLO failed",
    ExitCode.REGRESSION: "the run completed but is significantly worse than its --baseline "
    "beyond --max-regression (p95, p99, QPS or error rate)",
    ExitCode.INTERRUPTED: "a second Ctrl-C: stopped waiting for the run to wind down",
    ExitCode.PIPE_CLOSED: "stdout was closed early (e.g. '| head'): output stopped quietly",
}
