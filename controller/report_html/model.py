"""What a report shows of one run, read from a store once: the run, its per-second series,
its histograms and its query log, and notes on what is missing and why (a run still
active has no histograms yet; a daemon's API serves them only for ended runs)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller import lifecycle as lc
from controller import run_verdicts
from controller.store import RunStore
from controller.store_remote import RemoteUnsupported
from snowload.v1 import common_pb2, run_pb2
from snowload.verdicts import RunSeconds


@dataclass(frozen=True)
class QueryEntry:
    """One query of the run's query log (the slowest, a failed one, or a sampled one)."""

    kind: str
    phase: str
    worker: str
    connection: int
    started_at: str
    latency_ms: float
    params: list[Any] | None
    server_id: str
    error: str | None


QUERY_FIELDS = (
    "kind",
    "phase",
    "worker",
    "connection",
    "started_at",
    "latency_ms",
    "params",
    "server_id",
    "error",
)


def query_entry(entry: Mapping[str, Any] | object) -> QueryEntry:
    """A query-log entry from any of its shapes: a dict as ``runs queries --json`` prints
    it, or an object with those attributes (a dataclass, a protobuf message). A phase may
    be a state number or its name; ``started_at`` an ISO 8601 string or a Timestamp."""

    def get(name: str) -> Any:
        if isinstance(entry, Mapping):
            return entry.get(name)
        return getattr(entry, name, None)

    phase = get("phase")
    if isinstance(phase, int):
        phase = lc.state_name(phase)
    started = get("started_at")
    if hasattr(started, "ToJsonString"):
        started = started.ToJsonString()
    params = get("params")
    error = get("error")
    return QueryEntry(
        kind=str(get("kind") or ""),
        phase=str(phase or ""),
        worker=str(get("worker") or ""),
        connection=int(get("connection") or 0),
        started_at=str(started or ""),
        latency_ms=float(get("latency_ms") or 0.0),
        params=None if params is None else list(params),
        server_id=str(get("server_id") or ""),
        error=str(error) if error else None,
    )


@dataclass
class ReportRun:
    run: run_pb2.Run
    series: list[common_pb2.SeriesPoint]
    histograms: dict[tuple[int, str], bytes]
    queries: list[QueryEntry]
    notes: list[str] = field(default_factory=list)
    seconds: RunSeconds | None = None
    """Its full MEASUREMENT seconds (an ended run's): what compare verdicts bootstrap."""

    @property
    def active(self) -> bool:
        return not lc.is_terminal(self.run.state)

    @property
    def banner(self) -> str:
        """What a report of a run still active says first; '' for a run that ended."""
        if not self.active:
            return ""
        return (
            f"this run was still {lc.state_name(self.run.state)} when the report was made: "
            "it shows what existed then"
        )


def collect(
    store: RunStore,
    run: run_pb2.Run,
    queries: Iterable[Mapping[str, Any] | object] = (),
) -> ReportRun:
    """Read everything the report draws for ``run`` from ``store``. ``queries`` is the
    run's query log (any entry shape :func:`query_entry` reads); none: the report says
    no query log was recorded."""
    notes: list[str] = []
    series = store.series(run.run_id)
    try:
        histograms = store.histograms(run.run_id)
    except RemoteUnsupported as exc:
        histograms = {}
        notes.append(f"no latency spectrum: {exc}")
    if not lc.is_terminal(run.state):
        if not series:
            notes.append("the per-second series is stored when the run ends")
        if not histograms and not any(n.startswith("no latency spectrum") for n in notes):
            notes.append("no latency spectrum: histograms are stored when the run ends")
    seconds = None
    if lc.is_terminal(run.state):
        try:
            seconds = run_verdicts.load(store, run)
        except RemoteUnsupported:
            seconds = None
    entries = [query_entry(q) for q in queries]
    return ReportRun(run, series, histograms, entries, notes, seconds)
