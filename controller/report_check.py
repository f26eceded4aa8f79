"""A worker's interval report, checked before anything of it is merged.

Every histogram of a report (latencies, service times, schedule lags) must be snowload's
layout in the compressed V2 encoding, and each kind's latency histogram must hold as many
values as the kind's count says; every kind must be a query of the run's workload, in a
known phase, once. :func:`check_report` decodes the histograms on the way (the merge
needs them decoded anyway, so the check costs next to nothing: see docs/benchmarks.md)
and returns them; a report that fails raises :class:`InvalidReport` naming the field, and
nothing of it reaches the run (docs/reliability.md says what happens to the run).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from snowload import hdr
from snowload.v1 import common_pb2, control_pb2

_PHASES = frozenset(common_pb2.State.values())


class InvalidReport(ValueError):
    """A report that cannot be merged: ``field`` is the proto path of what was wrong."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


@dataclass
class CheckedReport:
    """The decoded histograms of a checked report, in the report's order: per kind
    (latencies, service times), per schedule entry (lags). :meth:`release` frees them."""

    kinds: list[tuple[hdr.Span | None, hdr.Span | None]] = field(default_factory=list)
    lags: list[hdr.Span | None] = field(default_factory=list)

    def release(self) -> None:
        for latency, service in self.kinds:
            hdr.release(latency)
            hdr.release(service)
        for lag in self.lags:
            hdr.release(lag)
        self.kinds.clear()
        self.lags.clear()


@contextmanager
def checked(
    report: control_pb2.MetricsReport, queries: frozenset[str] | None = None
) -> Iterator[CheckedReport]:
    """:func:`check_report`, its histograms released when the block ends."""
    spans = check_report(report, queries)
    try:
        yield spans
    finally:
        spans.release()


def check_report(
    report: control_pb2.MetricsReport, queries: frozenset[str] | None = None
) -> CheckedReport:
    """Check ``report`` (kinds against ``queries``, the workload's query names, when
    given); its decoded histograms, or InvalidReport."""
    out = CheckedReport()
    try:
        seen: set[tuple[int, str]] = set()
        for i, kind in enumerate(report.kinds):
            where = f"kinds[{i}]"
            if queries is not None and kind.kind not in queries:
                raise InvalidReport(f"{where}.kind", f"{kind.kind!r} is not a query of the run")
            if kind.phase not in _PHASES:
                raise InvalidReport(f"{where}.phase", f"{kind.phase} is not a phase")
            if (kind.phase, kind.kind) in seen:
                raise InvalidReport(where, f"kind {kind.kind!r} appears twice in one phase")
            seen.add((kind.phase, kind.kind))
            named = f"{where}.%s (kind {kind.kind!r})"
            latency = _read(named % "histogram", kind.histogram)
            out.kinds.append((latency, None))
            held = latency.total if latency is not None else 0
            if held != kind.count:
                raise InvalidReport(
                    named % "histogram",
                    f"holds {held} latencies, but the kind's count is {kind.count}",
                )
            if kind.service_histogram:
                service = _read(named % "service_histogram", kind.service_histogram)
                out.kinds[-1] = (latency, service)
        for i, sched in enumerate(report.schedule):
            out.lags.append(_read(f"schedule[{i}].lag_histogram", sched.lag_histogram))
    except InvalidReport:
        out.release()
        raise
    return out


def _read(where: str, data: bytes) -> hdr.Span | None:
    try:
        return hdr.read_span(data)
    except hdr.HistogramError as e:
        raise InvalidReport(where, str(e)) from e
