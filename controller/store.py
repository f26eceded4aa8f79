"""Where runs are kept. ``RunStore`` is the interface; every implementation passes the
shared suite in tests/test_store.py."""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from controller import lifecycle as lc
from controller.metric_cells import Key, PackedCell, PackedSchedule
from controller.query_log import QueryLogEntry, select
from snowload import hdr
from snowload.targets import data_dir
from snowload.v1 import common_pb2, run_pb2


@dataclass(frozen=True)
class IntervalHistogram:
    """One second of one phase, all kinds merged: what an HdrHistogram interval log holds."""

    second: int
    phase: int
    start_ns: int
    end_ns: int
    histogram: bytes
    kind: str = ""
    """The query kind ('' for every kind merged)."""


@dataclass(frozen=True)
class StoredSecond:
    """One sealed second as it is written while the run goes on: its series point, its
    overall histogram (an interval of the HdrHistogram log) and its data per (phase, kind),
    from which a run's totals can be merged again exactly."""

    point: common_pb2.SeriesPoint
    start_ns: int
    end_ns: int
    overall: bytes
    cells: dict[Key, PackedCell]
    schedules: dict[int, PackedSchedule] = field(default_factory=dict)
    """Open mode: lag, late and dropped per phase."""

    @property
    def second(self) -> int:
        return self.point.second

    def interval(self) -> IntervalHistogram:
        return IntervalHistogram(
            self.point.second, self.point.phase, self.start_ns, self.end_ns, self.overall
        )

    def kind_intervals(self) -> list[IntervalHistogram]:
        """This second's histogram per query kind (a second that straddles a phase change
        holds a kind in two cells: merged here)."""
        by_kind: dict[str, list[bytes]] = {}
        for (_, kind), cell in sorted(self.cells.items()):
            if cell.histogram:
                by_kind.setdefault(kind, []).append(cell.histogram)
        return [
            IntervalHistogram(
                self.second, self.point.phase, self.start_ns, self.end_ns, merged(parts), kind
            )
            for kind, parts in by_kind.items()
        ]


def merged(parts: list[bytes]) -> bytes:
    """Encoded histograms as one (the only one as it is)."""
    if len(parts) == 1:
        return parts[0]
    whole = hdr.new_histogram()
    for part in parts:
        hdr.add_encoded([whole], part)
    return hdr.encode(whole)


@dataclass
class RunRecord:
    """Everything about a finished run, written in one transaction."""

    run: run_pb2.Run
    series: list[common_pb2.SeriesPoint] = field(default_factory=list)
    """Seconds not already written with append_seconds (they are kept either way)."""
    histograms: dict[tuple[int, str], bytes] = field(default_factory=dict)
    """Encoded histogram per (phase, kind); kind '' is all kinds merged."""
    intervals: list[IntervalHistogram] = field(default_factory=list)
    """Per second, every kind merged (seconds not already written with append_seconds)."""
    queries: list[common_pb2.QueryEntry] = field(default_factory=list)
    """The run's query log (controller/query_log.py), numbered 1.. in issue order."""


class RunStore(ABC):
    @abstractmethod
    def put(self, run: run_pb2.Run) -> None:
        """Insert or update a run's row (state changes while it is active)."""

    @abstractmethod
    def save(self, record: RunRecord) -> None:
        """Store a finished run with its series and histograms, atomically."""

    def append_seconds(self, run_id: str, seconds: list[StoredSecond]) -> None:
        """Write sealed seconds of an active run (again: a second written twice is
        replaced). Called from a writer thread, never from the event loop."""
        raise NotImplementedError(f"{type(self).__name__} keeps no seconds")

    def stored_seconds(self, run_id: str) -> list[StoredSecond]:
        """Seconds written with append_seconds, in order."""
        return []

    @abstractmethod
    def get(self, run_id: str) -> run_pb2.Run | None:
        """The run with events, workers, SLO verdicts and error samples."""

    @abstractmethod
    def list_runs(self, limit: int, offset: int = 0) -> list[run_pb2.Run]:
        """Runs, newest first, without their details."""

    @abstractmethod
    def series(self, run_id: str) -> list[common_pb2.SeriesPoint]: ...

    @abstractmethod
    def histograms(self, run_id: str) -> dict[tuple[int, str], bytes]: ...

    @abstractmethod
    def intervals(self, run_id: str) -> list[IntervalHistogram]: ...

    @abstractmethod
    def query_entries(self, run_id: str) -> list[QueryLogEntry]:
        """The run's whole query log, in issue order (empty for an unknown run)."""

    def run_queries(
        self,
        run_id: str,
        kind: str | None = None,
        phase: int | None = None,
        slowest: int | None = None,
        errors: bool = False,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[QueryLogEntry]:
        """A page of the run's query log: of one kind and/or phase, only failures, or the
        N slowest (slowest first; otherwise in issue order)."""
        chosen = select(
            self.query_entries(run_id), kind=kind, phase=phase, slowest=slowest, errors=errors
        )
        return chosen[offset : offset + limit]

    def kind_intervals(self, run_id: str) -> list[IntervalHistogram]:
        """Per second and query kind, from the stored seconds (none for runs stored before
        these were kept)."""
        return [i for s in self.stored_seconds(run_id) for i in s.kind_intervals()]

    def tag(self, name: str, run_id: str) -> None:
        """Name a run (a baseline); the name moves if it named another run."""
        raise NotImplementedError

    def tagged(self, name: str) -> str | None:
        """The run a name points to."""
        return None

    def tags(self, run_id: str) -> list[str]:
        """The names of a run."""
        return []

    def find(self, prefix: str) -> run_pb2.Run | None:
        """A run by id, name (``tag``) or unique id prefix."""
        run = self.get(prefix)
        if run is not None:
            return run
        named = self.tagged(prefix)
        if named is not None:
            return self.get(named)
        if len(prefix) < 4:
            return None
        matches = [r for r in self.list_runs(10_000) if r.run_id.startswith(prefix)]
        return self.get(matches[0].run_id) if len(matches) == 1 else None

    def close_interrupted(self) -> list[str]:
        """Close runs a crashed controller left non-terminal as FAILED controller_restarted."""
        closed = []
        offset = 0
        while page := self.list_runs(500, offset):
            for stub in page:
                if lc.is_terminal(stub.state):
                    continue
                run = self.get(stub.run_id)
                assert run is not None
                run.state = lc.FAILED
                run.reason = lc.Reason.CONTROLLER_RESTARTED
                run.message = "the controller stopped while this run was active"
                event = run_pb2.PhaseEvent(state=lc.FAILED, reason=run.reason)
                event.event_time.GetCurrentTime()
                run.events.append(event)
                if not run.HasField("end_time"):
                    run.end_time.GetCurrentTime()
                self.put(run)
                closed.append(run.run_id)
            offset += len(page)
        return closed

    def close(self) -> None:  # noqa: B027 - optional
        """Flush and release resources."""


class MemoryRunStore(RunStore):
    """Runs held in memory for the life of the controller."""

    def __init__(self) -> None:
        self._runs: dict[str, run_pb2.Run] = {}
        self._records: dict[str, RunRecord] = {}
        self._tags: dict[str, str] = {}
        self._seconds: dict[str, dict[int, StoredSecond]] = {}
        self._seconds_lock = threading.Lock()
        """append_seconds runs on the writer's thread."""

    def put(self, run: run_pb2.Run) -> None:
        self._runs[run.run_id] = _copy(run)

    def save(self, record: RunRecord) -> None:
        self.put(record.run)
        self._records[record.run.run_id] = record

    def append_seconds(self, run_id: str, seconds: list[StoredSecond]) -> None:
        with self._seconds_lock:
            stored = self._seconds.setdefault(run_id, {})
            for s in seconds:
                stored[s.second] = s

    def stored_seconds(self, run_id: str) -> list[StoredSecond]:
        with self._seconds_lock:
            return [s for _, s in sorted(self._seconds.get(run_id, {}).items())]

    def get(self, run_id: str) -> run_pb2.Run | None:
        run = self._runs.get(run_id)
        return _copy(run) if run is not None else None

    def list_runs(self, limit: int, offset: int = 0) -> list[run_pb2.Run]:
        runs = sorted(
            self._runs.values(),
            key=lambda r: (r.create_time.ToNanoseconds(), r.run_id),
            reverse=True,
        )
        return [_brief(r) for r in runs[offset : offset + limit]]

    def series(self, run_id: str) -> list[common_pb2.SeriesPoint]:
        points = {s.second: s.point for s in self.stored_seconds(run_id)}
        rec = self._records.get(run_id)
        points.update((p.second, p) for p in (rec.series if rec else []))
        return [p for _, p in sorted(points.items())]

    def histograms(self, run_id: str) -> dict[tuple[int, str], bytes]:
        rec = self._records.get(run_id)
        return dict(rec.histograms) if rec else {}

    def intervals(self, run_id: str) -> list[IntervalHistogram]:
        out: dict[tuple[int, int], IntervalHistogram] = {
            (s.second, s.point.phase): s.interval() for s in self.stored_seconds(run_id)
        }
        rec = self._records.get(run_id)
        out.update(((i.second, i.phase), i) for i in (rec.intervals if rec else []) if not i.kind)
        return [i for _, i in sorted(out.items())]

    def kind_intervals(self, run_id: str) -> list[IntervalHistogram]:
        found = {(i.second, i.kind): i for i in super().kind_intervals(run_id)}
        rec = self._records.get(run_id)
        found.update(((i.second, i.kind), i) for i in (rec.intervals if rec else []) if i.kind)
        return [i for _, i in sorted(found.items())]

    def tag(self, name: str, run_id: str) -> None:
        self._tags[name] = run_id

    def tagged(self, name: str) -> str | None:
        return self._tags.get(name)

    def tags(self, run_id: str) -> list[str]:
        return sorted(n for n, r in self._tags.items() if r == run_id)

    def query_entries(self, run_id: str) -> list[QueryLogEntry]:
        rec = self._records.get(run_id)
        return [QueryLogEntry.from_proto(e) for e in rec.queries] if rec else []


def _copy(run: run_pb2.Run) -> run_pb2.Run:
    out = run_pb2.Run()
    out.CopyFrom(run)
    return out


def _brief(run: run_pb2.Run) -> run_pb2.Run:
    out = _copy(run)
    for name in ("events", "run_workers", "error_samples", "pools"):
        out.ClearField(name)
    out.workload_json = ""
    return out


def default_db_path() -> Path:
    """``$SNOWLOAD_DB``, else ``<data dir>/results.db`` (XDG: ~/.local/share/snowload)."""
    env = os.environ.get("SNOWLOAD_DB")
    return Path(env) if env else data_dir() / "results.db"


def open_store(path: str | Path | None = None) -> RunStore:
    """The SQLite results store at ``path`` (default: ``default_db_path()``)."""
    from controller.store_sqlite import SqliteRunStore

    return SqliteRunStore(Path(path) if path else default_db_path())
