"""A run's query log at the controller: its workers' logs merged into the run's, the typed
entry that the store returns and the CLI prints, and the filters of ``runs queries`` and
``GetRunQueries``.

The merge keeps, per (phase, kind), the N slowest of all workers' slowest (the global N
slowest are among them: each worker kept its own N slowest); per (kind, error category)
the first failures by issue time; and one uniform sample of the run, drawn from the
workers' samples weighted by how many queries each saw (snowload/query_sampling.py).
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller import lifecycle as lc
from snowload.query_sampling import merge_samples
from snowload.v1 import common_pb2, control_pb2

FAILED_PER_CATEGORY = 5
"""The first this many failures per query kind and error category are kept."""
JSON_FIELDS = (
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


@dataclass(frozen=True)
class QueryLogEntry:
    """One entry of a stored run's query log."""

    entry_id: int
    """Its number within the run (``runs profile RUN ENTRY``)."""
    kind: str
    phase: int
    worker: str
    connection: int
    started_at: str
    """ISO 8601 (UTC) on the run's clock: when the query was issued."""
    start_ns: int
    latency_ms: float
    params: list[Any] | None
    """The bound values in order; None when the workload did not record them."""
    server_id: str
    error: str | None
    error_category: str
    slowest: bool
    sampled: bool

    @property
    def phase_name(self) -> str:
        return lc.state_name(self.phase)

    def to_json(self) -> dict[str, Any]:
        """The fields ``runs queries --json`` prints, exactly."""
        return {
            "kind": self.kind,
            "phase": self.phase_name,
            "worker": self.worker,
            "connection": self.connection,
            "started_at": self.started_at,
            "latency_ms": self.latency_ms,
            "params": self.params,
            "server_id": self.server_id,
            "error": self.error,
        }

    @classmethod
    def from_proto(cls, entry: common_pb2.QueryEntry) -> QueryLogEntry:
        return cls(
            entry_id=entry.entry_id,
            kind=entry.kind,
            phase=int(entry.phase),
            worker=entry.worker,
            connection=entry.connection,
            started_at=entry.start_time.ToJsonString(),
            start_ns=entry.start_time.ToNanoseconds(),
            latency_ms=entry.latency_ms,
            params=json.loads(entry.params_json) if entry.params_json else None,
            server_id=entry.server_id,
            error=entry.error or None,
            error_category=entry.error_category,
            slowest=entry.slowest,
            sampled=entry.sampled,
        )


def merge(
    logs: Mapping[str, control_pb2.QueryLog],
    slow_n: int,
    sample_size: int,
    rng: random.Random | None = None,
) -> list[common_pb2.QueryEntry]:
    """The run's query log from its workers' (worker id -> log), numbered 1.. in issue
    order, each entry naming its worker."""
    rng = rng or random.Random()
    slow: dict[tuple[int, str], list[common_pb2.QueryEntry]] = {}
    failed: dict[tuple[str, str], list[common_pb2.QueryEntry]] = {}
    samples: list[tuple[int, list[common_pb2.QueryEntry]]] = []
    for worker, log in sorted(logs.items()):
        sampled = []
        for raw in log.entries:
            entry = common_pb2.QueryEntry()
            entry.CopyFrom(raw)
            entry.worker = worker
            if entry.slowest:
                slow.setdefault((entry.phase, entry.kind), []).append(entry)
            if entry.error:
                failed.setdefault((entry.kind, entry.error_category), []).append(entry)
            if entry.sampled:
                sampled.append(entry)
        samples.append((log.sample_seen, sampled))
    kept: dict[tuple[str, int], common_pb2.QueryEntry] = {}
    flags: dict[tuple[str, int], tuple[bool, bool]] = {}

    def keep(entry: common_pb2.QueryEntry, slowest: bool, in_sample: bool) -> None:
        key = (entry.worker, entry.entry_id)
        kept[key] = entry
        was = flags.get(key, (False, False))
        flags[key] = (was[0] or slowest, was[1] or in_sample)

    for group in slow.values():
        for entry in heapq.nlargest(slow_n, group, key=lambda e: e.latency_ms):
            keep(entry, True, False)
    for group in failed.values():
        first = sorted(group, key=lambda e: e.start_time.ToNanoseconds())
        for entry in first[:FAILED_PER_CATEGORY]:
            keep(entry, False, False)
    for entry in merge_samples(samples, sample_size, rng):
        keep(entry, False, True)
    out = []
    ordered = sorted(kept.items(), key=lambda kv: (kv[1].start_time.ToNanoseconds(), kv[0]))
    for n, (key, entry) in enumerate(ordered, start=1):
        entry.slowest, entry.sampled = flags[key]
        entry.entry_id = n
        out.append(entry)
    return out


def select(
    entries: Iterable[QueryLogEntry],
    *,
    kind: str | None = None,
    phase: int | None = None,
    slowest: int | None = None,
    errors: bool = False,
) -> list[QueryLogEntry]:
    """The filters of ``runs queries``: by kind and phase; only failures; or the N
    slowest (of the slowest kept), slowest first. Otherwise in issue order."""
    chosen = [
        e
        for e in entries
        if (kind is None or e.kind == kind)
        and (phase is None or e.phase == phase)
        and (not errors or e.error is not None)
    ]
    if slowest is not None:
        ranked = [e for e in chosen if e.slowest]
        return sorted(ranked, key=lambda e: (-e.latency_ms, e.entry_id))[:slowest]
    return sorted(chosen, key=lambda e: e.entry_id)


def phase_arg(text: str) -> int:
    """A phase by name (warmup, measurement, processing, ...)."""
    for state in lc.ALL_STATES:
        if lc.state_name(state).lower() == text.strip().lower():
            return state
    names = ", ".join(lc.state_name(s).lower() for s in sorted(lc.LOAD_PHASES | {lc.PROCESSING}))
    raise ValueError(f"unknown phase {text!r} (one of {names})")


def to_protos(entries: Sequence[QueryLogEntry]) -> list[common_pb2.QueryEntry]:
    out = []
    for e in entries:
        entry = common_pb2.QueryEntry(
            entry_id=e.entry_id,
            kind=e.kind,
            phase=e.phase,  # type: ignore[arg-type]
            worker=e.worker,
            connection=e.connection,
            latency_ms=e.latency_ms,
            params_json=json.dumps(e.params, separators=(",", ":")) if e.params is not None else "",
            server_id=e.server_id,
            error=e.error or "",
            error_category=e.error_category,
            slowest=e.slowest,
            sampled=e.sampled,
        )
        entry.start_time.FromNanoseconds(e.start_ns)
        out.append(entry)
    return out
