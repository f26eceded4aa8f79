"""What connection threads recorded, gathered into one interval's cells.

Each thread appends one packed integer per query, ``latency_us << 12 | phase << 8 |
kind``; ``collect`` counts them in C (``Counter``) and records each distinct value once.
Draining a list while its thread appends is lossless: ``chunk = lst[:n]; del lst[:n]``
only ever removes the first ``n`` items that were copied; appends land after them.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from hdrh.histogram import HdrHistogram

from snowload import hdr
from snowload.v1 import common_pb2
from worker.boundaries import NEVER
from worker.schedule import DROPPED, LATE_NS

KIND_BITS = 8
PHASE_SHIFT = 8
LAT_SHIFT = 12
KEY_MASK = (1 << LAT_SHIFT) - 1
MAX_ERROR_SAMPLES = 3


@dataclass
class ErrorTally:
    count: int = 0
    samples: list[str] = field(default_factory=list)


@dataclass
class KindPhaseData:
    """One (kind, phase) cell of an interval."""

    histogram: HdrHistogram = field(default_factory=hdr.new_histogram)
    errors: dict[str, ErrorTally] = field(default_factory=dict)
    service: HdrHistogram | None = None
    """Open mode: uncorrected service times."""

    @property
    def count(self) -> int:
        return int(self.histogram.get_total_count())


@dataclass
class ScheduleData:
    """Open mode, one phase of an interval: lag, late and dropped."""

    lag: HdrHistogram = field(default_factory=hdr.new_histogram)
    late: int = 0
    dropped: int = 0


class Recorder(Protocol):
    """A connection thread's lists (see worker/connection.py)."""

    samples: list[int]
    issued: list[int]
    service: list[int]
    lags: list[int]
    errors: list[tuple[int, str, str, int]]


Cells = dict[tuple[int, int], KindPhaseData]


def collect(
    threads: Iterable[Recorder], open_mode: bool, *, ended: int = NEVER, cut: int = NEVER
) -> tuple[Cells, dict[int, ScheduleData]]:
    """Everything issued before ``cut`` (perf ns) and recorded since the last call, keyed
    by (phase, kind index), and per phase the open-mode schedule figures; what was issued
    at or after ``cut`` stays for the next call. A MEASUREMENT query issued at or after
    ``ended`` (perf ns of an unplanned end, decided before its command arrived) is
    re-labelled PROCESSING: it is not a MEASUREMENT query."""
    counts: Counter[int] = Counter()
    service: Counter[int] = Counter()
    lags: Counter[int] = Counter()
    errors: list[tuple[int, str, str, int]] = []
    for t in threads:
        n = len(t.samples)  # (a thread appends its issue time first: issued holds >= n)
        if n:
            issued = t.issued[:n]
            if cut != NEVER and issued[-1] >= cut:
                n = bisect.bisect_left(issued, cut)
                issued = issued[:n]
            chunk = t.samples[:n]
            del t.samples[:n]
            del t.issued[:n]
            if n and ended != NEVER and issued[-1] >= ended:
                chunk = _relabel(chunk, issued, ended)
            counts.update(chunk)
            if open_mode:
                _drain(t.service, service, n)
        if open_mode:
            _drain(t.lags, lags)
        errs = t.errors
        m = len(errs)
        if m:
            taken = [e for e in errs[:m] if e[3] < cut]
            if len(taken) == m:
                del errs[:m]
            else:  # (only the connection's own thread appends: the rest stays in order)
                errs[:m] = [e for e in errs[:m] if e[3] >= cut]
            errors.extend(taken)
    if ended != NEVER:
        errors = [
            (_relabel_key(key) if at >= ended else key, cat, msg, at)
            for key, cat, msg, at in errors
        ]
    return _cells(counts, service, errors), _schedule(lags)


def _cells(
    counts: Counter[int], service: Counter[int], errors: list[tuple[int, str, str, int]]
) -> Cells:
    cells: Cells = {}
    for packed, c in counts.items():
        hdr.record(_cell(cells, packed & KEY_MASK).histogram, packed >> LAT_SHIFT, c)
    for key, category, message, _ in errors:
        tally = _cell(cells, key).errors.setdefault(category, ErrorTally())
        tally.count += 1
        if len(tally.samples) < MAX_ERROR_SAMPLES and message not in tally.samples:
            tally.samples.append(message)
    for packed, c in service.items():
        cell = _cell(cells, packed & KEY_MASK)
        if cell.service is None:
            cell.service = hdr.new_histogram()
        hdr.record(cell.service, packed >> LAT_SHIFT, c)
    return cells


def _schedule(lags: Counter[int]) -> dict[int, ScheduleData]:
    schedule: dict[int, ScheduleData] = {}
    for packed, c in lags.items():
        phase = packed & 0x0F
        sched = schedule.get(phase)
        if sched is None:
            sched = schedule[phase] = ScheduleData()
        lag_us = packed >> 8
        if packed & DROPPED == DROPPED:
            sched.dropped += c
            continue
        hdr.record(sched.lag, lag_us, c)
        if lag_us * 1000 > LATE_NS:
            sched.late += c
    return schedule


_MEASURING = common_pb2.STATE_MEASUREMENT << PHASE_SHIFT
_AFTER = common_pb2.STATE_PROCESSING << PHASE_SHIFT
_PHASE_BITS = 0xF << PHASE_SHIFT


def _relabel_key(key: int) -> int:
    if key & _PHASE_BITS == _MEASURING:
        return key & ~_PHASE_BITS | _AFTER
    return key


def _relabel(chunk: list[int], issued: list[int], ended: int) -> list[int]:
    return [
        _relabel_key(packed) if at >= ended else packed
        for packed, at in zip(chunk, issued, strict=True)
    ]


def _cell(cells: Cells, key: int) -> KindPhaseData:
    # (get, then create: setdefault would build a throwaway histogram per entry)
    cell = cells.get((key >> PHASE_SHIFT, key & 0xFF))
    if cell is None:
        cell = cells[(key >> PHASE_SHIFT, key & 0xFF)] = KindPhaseData()
    return cell


def _drain(lst: list[int], into: Counter[int], upto: int | None = None) -> None:
    """Move everything appended so far (at most ``upto`` items) into ``into`` (appends
    may continue meanwhile)."""
    n = len(lst) if upto is None else min(upto, len(lst))
    if n:
        chunk = lst[:n]
        del lst[:n]
        into.update(chunk)
