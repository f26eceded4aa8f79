"""A record of every interval report a worker sends, for tests that check the
controller's merge against what the workers said (SNOWLOAD_REPORT_LOG_DIR).

When the variable names a directory, each worker process appends every report it sends,
serialized and base64-encoded, one a line, to ``reports-<pid>.log`` there. Off by default.
"""

from __future__ import annotations

import base64
import functools
import os
from pathlib import Path
from typing import TextIO

from snowload.v1 import control_pb2

REPORT_LOG_ENV = "SNOWLOAD_REPORT_LOG_DIR"


@functools.cache
def _log_file(directory: str) -> TextIO:
    return open(Path(directory) / f"reports-{os.getpid()}.log", "a", encoding="ascii")


def log_report(report: control_pb2.MetricsReport) -> None:
    directory = os.environ.get(REPORT_LOG_ENV)
    if not directory:
        return
    log = _log_file(directory)
    log.write(base64.b64encode(report.SerializeToString()).decode("ascii") + "\n")
    log.flush()


def read_reports(directory: Path) -> list[control_pb2.MetricsReport]:
    """Every report logged in ``directory`` (a report sent again is there again)."""
    out = []
    for path in sorted(directory.glob("reports-*.log")):
        for line in path.read_text(encoding="ascii").splitlines():
            report = control_pb2.MetricsReport()
            report.ParseFromString(base64.b64decode(line))
            out.append(report)
    return out
