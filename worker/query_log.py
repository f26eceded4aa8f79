"""The query log a connection thread keeps, and the worker's log gathered from them.

Per thread and (phase, kind): the N slowest queries (a min-heap; the hot loop compares a
query's latency with ``floors(phase)[kind]``, the heap's smallest once it holds N, and
calls ``slow`` only above it); per kind and error category the first few failures; and a
uniform sample (snowload/query_sampling.py's reservoir, which the hot loop reaches by
counting down a gap). ``gather`` merges the threads' logs into the worker's, after the
threads stopped, with each query's issue time on the run's clock.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from snowload.query_sampling import Reservoir, merge_samples
from snowload.v1 import common_pb2, control_pb2
from worker.boundaries import NEVER

FAILED_PER_CATEGORY = 5
"""The first this many failures per query kind and error category are kept."""
NO_FLOOR = -1
"""A floor below every latency: the heap is not full yet."""
NEVER_SLOW = 1 << 62
"""A floor above every latency: no slowest queries are kept."""
MAX_PARAM_CHARS = 1000
"""A text parameter longer than this is cut (with "…") in the log."""
PARAMS_BUDGET = 4 << 20
"""The worker's whole log carries at most this many characters of parameters (beyond:
entries without them), so that it stays well within one message."""


@dataclass(slots=True)
class Logged:
    """One query, as a connection thread saw it."""

    kind: int
    phase: int
    connection: int
    issued: int
    """perf ns of its issue (open model: its intended start)."""
    latency_us: int
    params: tuple[Any, ...]
    server_id: str
    error: str = ""
    category: str = ""
    slowest: bool = False
    sampled: bool = False


class ThreadLog:
    """One connection thread's log (only that thread writes it)."""

    def __init__(
        self,
        connection: int,
        kinds: int,
        slow_n: int,
        sample_size: int,
        rng: random.Random,
    ) -> None:
        self.connection = connection
        self.kinds = kinds
        self.slow_n = slow_n
        self.server_id: Callable[[BaseException | None], str] = lambda _exc: ""
        """The driver connection's id for its last query (set when it is open)."""
        self._floors: dict[int, list[int]] = {}
        self._heaps: dict[tuple[int, int], list[tuple[int, int, Logged]]] = {}
        self._tiebreak = 0
        self.failed: dict[tuple[int, str], list[Logged]] = {}
        self.reservoir: Reservoir[Logged] = Reservoir(sample_size, rng)

    def floors(self, phase: int) -> list[int]:
        """Per kind, the latency (µs) a query of ``phase`` must exceed to be logged as
        one of the slowest: the list the hot loop indexes."""
        floors = self._floors.get(phase)
        if floors is None:
            start = NEVER_SLOW if self.slow_n <= 0 else NO_FLOOR
            floors = self._floors[phase] = [start] * self.kinds
        return floors

    def slow(self, phase: int, kind: int, latency_us: int, issued: int, params: Any) -> None:
        """A query above its floor: one of this thread's slowest so far."""
        heap = self._heaps.setdefault((phase, kind), [])
        self._tiebreak += 1
        entry = Logged(
            kind, phase, self.connection, issued, latency_us, params, self.server_id(None)
        )
        entry.slowest = True
        item = (latency_us, self._tiebreak, entry)
        if len(heap) < self.slow_n:
            heapq.heappush(heap, item)
        else:
            heapq.heappushpop(heap, item)
        if len(heap) >= self.slow_n:
            self.floors(phase)[kind] = heap[0][0]

    def sample(
        self,
        phase: int,
        kind: int,
        latency_us: int,
        issued: int,
        params: Any,
        error: BaseException | None = None,
        text: str = "",
        category: str = "",
    ) -> int:
        """The query the sample's gap led to; returns the next gap."""
        entry = Logged(
            kind,
            phase,
            self.connection,
            issued,
            latency_us,
            params,
            self.server_id(error),
            text,
            category,
        )
        entry.sampled = True
        return self.reservoir.offer(entry)

    def fail(
        self,
        phase: int,
        kind: int,
        latency_us: int,
        issued: int,
        params: Any,
        error: BaseException,
        text: str,
        category: str,
    ) -> None:
        """A failed query (not on the hot path): kept if among the first of its kind and
        category."""
        kept = self.failed.setdefault((kind, category), [])
        if len(kept) < FAILED_PER_CATEGORY:
            kept.append(
                Logged(
                    kind,
                    phase,
                    self.connection,
                    issued,
                    latency_us,
                    params,
                    self.server_id(error),
                    text,
                    category,
                )
            )

    def slowest(self) -> Iterable[Logged]:
        for heap in self._heaps.values():
            for _, _, entry in heap:
                yield entry


@dataclass(frozen=True)
class LogShape:
    """What the workload asks the query log to keep."""

    kind_names: Sequence[str]
    slow_n: int
    sample_size: int
    record_params: bool


def gather(
    logs: Sequence[ThreadLog],
    shape: LogShape,
    to_run_clock: Callable[[int], int],
    *,
    ended: int = NEVER,
    rng: random.Random | None = None,
) -> control_pb2.QueryLog:
    """The worker's query log from its threads' (after they stopped): the slowest per
    (phase, kind), the first failures per (kind, category), one uniform sample.
    ``to_run_clock`` maps perf ns onto the run's clock; a MEASUREMENT query issued at or
    after ``ended`` (an unplanned end) is PROCESSING, as in worker/collection.py."""
    rng = rng or random.Random()
    for log in logs:
        for entry in _all(log):
            if entry.phase == common_pb2.STATE_MEASUREMENT and entry.issued >= ended:
                entry.phase = common_pb2.STATE_PROCESSING
    slow: dict[tuple[int, int], list[Logged]] = {}
    for log in logs:
        for entry in log.slowest():
            slow.setdefault((entry.phase, entry.kind), []).append(entry)
    kept: dict[tuple[int, int], Logged] = {}
    for group in slow.values():
        for entry in heapq.nlargest(shape.slow_n, group, key=lambda e: e.latency_us):
            _keep(kept, entry)
    failed: dict[tuple[int, str], list[Logged]] = {}
    for log in logs:
        for key, entries in log.failed.items():
            failed.setdefault(key, []).extend(entries)
    for group_failed in failed.values():
        for entry in sorted(group_failed, key=lambda e: e.issued)[:FAILED_PER_CATEGORY]:
            _keep(kept, entry)
    parts = [(log.reservoir.seen, log.reservoir.items) for log in logs]
    for entry in merge_samples(parts, shape.sample_size, rng):
        _keep(kept, entry)
    out = control_pb2.QueryLog(sample_seen=sum(seen for seen, _ in parts))
    budget = PARAMS_BUDGET
    for seq, entry in enumerate(sorted(kept.values(), key=lambda e: e.issued), start=1):
        proto = to_proto(entry, seq, shape, to_run_clock)
        budget -= len(proto.params_json)
        if budget < 0:
            proto.params_json = ""
        out.entries.append(proto)
    return out


def _all(log: ThreadLog) -> Iterable[Logged]:
    yield from log.slowest()
    for entries in log.failed.values():
        yield from entries
    yield from log.reservoir.items


def _keep(kept: dict[tuple[int, int], Logged], entry: Logged) -> None:
    """One entry per query (a query may be slow, failed and sampled at once)."""
    key = (entry.connection, entry.issued)
    have = kept.get(key)
    if have is None:
        kept[key] = entry
    else:
        have.slowest |= entry.slowest
        have.sampled |= entry.sampled


def to_proto(
    entry: Logged, seq: int, shape: LogShape, to_run_clock: Callable[[int], int]
) -> common_pb2.QueryEntry:
    out = common_pb2.QueryEntry(
        entry_id=seq,
        kind=shape.kind_names[entry.kind],
        phase=entry.phase,  # type: ignore[arg-type]
        connection=entry.connection,
        latency_ms=entry.latency_us / 1000.0,
        params_json=params_json(entry.params) if shape.record_params else "",
        server_id=entry.server_id,
        error=entry.error,
        error_category=entry.category,
        slowest=entry.slowest,
        sampled=entry.sampled,
    )
    out.start_time.FromNanoseconds(to_run_clock(entry.issued))
    return out


def params_json(params: Sequence[Any]) -> str:
    """Bound values in order as a JSON array (values JSON has no type for, as text; text
    longer than MAX_PARAM_CHARS cut)."""
    values = [
        v[:MAX_PARAM_CHARS] + "…" if isinstance(v, str) and len(v) > MAX_PARAM_CHARS else v
        for v in params
    ]
    return json.dumps(values, default=str, separators=(",", ":"), ensure_ascii=False)
