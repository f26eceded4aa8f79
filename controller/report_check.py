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

from snowload import hdr
from snowload.v1 import common_pb2, control_pb2

_PHASES = frozenset(common_pb2.State.values())


class InvalidReport(ValueError):
    """A report that cannot be merged: ``field`` is the proto path of what was wrong."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


class CheckedReport:
    """The decoded histograms of a checked report, in the report's order: per kind
    (latencies, service times), per schedule entry (lags). :meth:`release` frees them."""

    __slots__ = ("kinds", "lags")

    def __init__(self) -> None:
        self.kinds: list[tuple[hdr.Span | None, hdr.Span | None]] = []
        self.lags: list[hdr.Span | None] = []

    def release(self) -> None:
        for latency, service in self.kinds:
            hdr.release(latency)
            hdr.release(service)
        for lag in self.lags:
            hdr.release(lag)
        self.kinds.clear()
        self.lags.clear()


def check_report(
    report: control_pb2.MetricsReport, queries: frozenset[str] | None = None
) -> CheckedReport:
    """Check ``report`` (kinds against ``queries``, the workload's query names, when
    given); its decoded histograms (to :meth:`CheckedReport.release` once merged), or
    InvalidReport. Field names are only made for a report that fails (this runs per
    report)."""
    out = CheckedReport()
    kinds = out.kinds
    try:
        seen: set[tuple[int, str]] = set()
        for i, kind in enumerate(report.kinds):
            name, phase = kind.kind, kind.phase
            if queries is not None and name not in queries:
                raise InvalidReport(f"kinds[{i}].kind", f"{name!r} is not a query of the run")
            if phase not in _PHASES:
                raise InvalidReport(f"kinds[{i}].phase", f"{phase} is not a phase")
            key = (phase, name)
            if key in seen:
                raise InvalidReport(f"kinds[{i}]", f"kind {name!r} appears twice in one phase")
            seen.add(key)
            latency = _read(kind.histogram, i, "histogram", name)
            kinds.append((latency, None))
            if (latency.total if latency is not None else 0) != kind.count:
                held = latency.total if latency is not None else 0
                raise InvalidReport(
                    f"kinds[{i}].histogram (kind {name!r})",
                    f"holds {held} latencies, but the kind's count is {kind.count}",
                )
            service = kind.service_histogram
            if service:
                kinds[-1] = (latency, _read(service, i, "service_histogram", name))
        for i, sched in enumerate(report.schedule):
            try:
                out.lags.append(hdr.read_span(sched.lag_histogram))
            except hdr.HistogramError as e:
                raise InvalidReport(f"schedule[{i}].lag_histogram", str(e)) from e
    except InvalidReport:
        out.release()
        raise
    return out


def _read(data: bytes, i: int, field: str, name: str) -> hdr.Span | None:
    try:
        return hdr.read_span(data)
    except hdr.HistogramError as e:
        raise InvalidReport(f"kinds[{i}].{field} (kind {name!r})", str(e)) from e
