"""A worker's interval report, checked before anything of it is merged.

Every histogram of a report (latencies, service times, schedule lags) must be snowload's
layout in the compressed V2 encoding, and each kind's latency histogram must hold as many
values as the kind's count says; every kind must be a query of the run's workload, in a
known phase, and a report has no more kinds than the workload's queries in every
phase. :func:`check_report` decodes the histograms on the way (the merge
needs them decoded anyway, so the check costs next to nothing: see docs/benchmarks.md)
and returns them; a report that fails raises :class:`InvalidReport` naming the field, and
nothing of it reaches the run (docs/worker-reports.md says what happens to the run).
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
    """A checked report, decoded: per kind (in the report's order) the message, its
    (phase, kind) key, its count and its latency and service-time histograms; per
    schedule entry its lags. :meth:`release` frees the histograms."""

    __slots__ = ("kinds", "lags")

    def __init__(self) -> None:
        self.kinds: list[CheckedKind] = []
        self.lags: list[hdr.Span | None] = []

    def release(self) -> None:
        spans: list[hdr.Span | None] = [k[3] for k in self.kinds]
        spans += [k[4] for k in self.kinds if k[4] is not None]
        spans += self.lags
        hdr.release_all(spans)
        self.kinds.clear()
        self.lags.clear()


CheckedKind = tuple[
    control_pb2.KindInterval, tuple[int, str], int, hdr.Span | None, hdr.Span | None
]
"""(message, (phase, kind), count, latencies, service times)"""


def check_report(
    report: control_pb2.MetricsReport, queries: frozenset[str] | None = None
) -> CheckedReport:
    """Check ``report`` (kinds against ``queries``, the workload's query names, when
    given); its decoded histograms (to :meth:`CheckedReport.release` once merged), or
    InvalidReport. Field names are only made for a report that fails (this runs per
    report)."""
    out = CheckedReport()
    checked = out.kinds
    read = hdr.read_span
    kinds = report.kinds
    if queries is not None and len(kinds) > len(queries) * len(_PHASES):
        raise InvalidReport(
            "kinds", f"{len(kinds)} kinds, more than the run's queries in every phase"
        )
    i, name, field = 0, "", "histogram"
    try:
        for i, kind in enumerate(kinds):
            name, phase = kind.kind, kind.phase
            if queries is not None and name not in queries:
                raise InvalidReport(f"kinds[{i}].kind", f"{name!r} is not a query of the run")
            if phase not in _PHASES:
                raise InvalidReport(f"kinds[{i}].phase", f"{phase} is not a phase")
            field = "histogram"
            latency = read(kind.histogram)
            count = kind.count
            checked.append((kind, (phase, name), count, latency, None))
            held = latency[2] if latency is not None else 0  # (Span.total)
            if held != count:
                raise InvalidReport(
                    f"kinds[{i}].histogram (kind {name!r})",
                    f"holds {held} latencies, but the kind's count is {count}",
                )
            service = kind.service_histogram
            if service:
                field = "service_histogram"
                checked[-1] = (kind, (phase, name), count, latency, read(service))
        field = "lag_histogram"
        for sched in report.schedule:
            out.lags.append(read(sched.lag_histogram))
    except hdr.HistogramError as e:
        lagged = field == "lag_histogram"
        where = f"schedule[{len(out.lags)}]" if lagged else f"kinds[{i}]"
        out.release()
        named = "" if lagged else f" (kind {name!r})"
        raise InvalidReport(f"{where}.{field}{named}", str(e)) from e
    except InvalidReport:
        out.release()
        raise
    return out
