"""The per-second tables of the SQLite results store (for controller/store_sqlite.py): what
is written while a run goes on (series points, the HdrHistogram interval log, each
second's data per (phase, kind) and its open-mode schedule figures per phase) and read
back, for the live series of long runs and for runs a crash interrupted."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from controller.metric_cells import PackedCell, PackedSchedule
from controller.store import IntervalHistogram, StoredSecond, merged
from snowload.v1 import common_pb2

Rows = Callable[[str, tuple[object, ...]], list[tuple[object, ...]]]
"""Runs a query and returns its rows (the store's reading connection, under its lock)."""


def put_seconds(db: sqlite3.Connection, run_id: str, seconds: list[StoredSecond]) -> None:
    """Sealed seconds of a run (inside the caller's transaction; a second written again
    is replaced)."""
    put_series(db, run_id, [s.point for s in seconds])
    put_intervals(db, run_id, [s.interval() for s in seconds])
    db.executemany(
        "INSERT OR REPLACE INTO second_cells VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                run_id,
                s.second,
                phase,
                kind,
                cell.histogram,
                cell.service,
                json.dumps(cell.errors, sort_keys=True),
            )
            for s in seconds
            for (phase, kind), cell in s.cells.items()
        ],
    )
    db.executemany(
        "INSERT OR REPLACE INTO second_schedules VALUES (?, ?, ?, ?, ?, ?)",
        [
            (run_id, s.second, phase, sched.lag, sched.late, sched.dropped)
            for s in seconds
            for phase, sched in s.schedules.items()
        ],
    )


def read_series(rows: Rows, run_id: str) -> list[common_pb2.SeriesPoint]:
    out = []
    for (blob,) in rows("SELECT point FROM series WHERE run_id = ? ORDER BY second", (run_id,)):
        point = common_pb2.SeriesPoint()
        point.ParseFromString(blob)  # type: ignore[arg-type]
        out.append(point)
    return out


def read_intervals(rows: Rows, run_id: str) -> list[IntervalHistogram]:
    return [
        IntervalHistogram(int(s), int(ph), int(a), int(b), bytes(enc))  # type: ignore[call-overload]
        for s, ph, a, b, enc in rows(
            "SELECT second, phase, start_ns, end_ns, encoded FROM interval_histograms "
            "WHERE run_id = ? ORDER BY second, phase",
            (run_id,),
        )
    ]


def read_kind_intervals(rows: Rows, run_id: str) -> list[IntervalHistogram]:
    overall = {i.second: i for i in read_intervals(rows, run_id)}
    parts: dict[tuple[int, str], list[bytes]] = {}
    for second, kind, histogram in rows(
        "SELECT second, kind, histogram FROM second_cells WHERE run_id = ? "
        "ORDER BY second, kind, phase",
        (run_id,),
    ):
        if histogram and int(second) in overall:  # type: ignore[call-overload]
            parts.setdefault((int(second), str(kind)), []).append(bytes(histogram))  # type: ignore[call-overload]
    out = []
    for (second, kind), encoded in parts.items():
        whole = overall[second]
        out.append(
            IntervalHistogram(
                second, whole.phase, whole.start_ns, whole.end_ns, merged(encoded), kind
            )
        )
    return out


def read_stored_seconds(rows: Rows, run_id: str) -> list[StoredSecond]:
    cells: dict[int, dict[tuple[int, str], PackedCell]] = {}
    for second, phase, kind, histogram, service, errors in rows(
        "SELECT second, phase, kind, histogram, service, errors FROM second_cells WHERE run_id = ?",
        (run_id,),
    ):
        cells.setdefault(int(second), {})[(int(phase), str(kind))] = PackedCell(  # type: ignore[call-overload]
            bytes(histogram),  # type: ignore[call-overload]
            bytes(service),  # type: ignore[call-overload]
            {str(k): int(v) for k, v in json.loads(str(errors)).items()},
        )
    schedules: dict[int, dict[int, PackedSchedule]] = {}
    for second, phase, lag, late, dropped in rows(
        "SELECT second, phase, lag, late, dropped FROM second_schedules WHERE run_id = ?",
        (run_id,),
    ):
        schedules.setdefault(int(second), {})[int(phase)] = PackedSchedule(  # type: ignore[call-overload]
            bytes(lag),  # type: ignore[call-overload]
            int(late),  # type: ignore[call-overload]
            int(dropped),  # type: ignore[call-overload]
        )
    overall = {i.second: i for i in read_intervals(rows, run_id)}
    out = []
    for point in read_series(rows, run_id):
        interval = overall.get(point.second)
        out.append(
            StoredSecond(
                point,
                interval.start_ns if interval else 0,
                interval.end_ns if interval else 0,
                interval.histogram if interval else b"",
                cells.get(point.second, {}),
                schedules.get(point.second, {}),
            )
        )
    return out


def put_series(db: sqlite3.Connection, run_id: str, points: list[common_pb2.SeriesPoint]) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO series VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                run_id,
                p.second,
                p.phase,
                p.overall.qps,
                p.overall.p95_ms,
                p.overall.errors,
                p.SerializeToString(),
            )
            for p in points
        ],
    )


def put_kind_intervals(
    db: sqlite3.Connection, run_id: str, intervals: list[IntervalHistogram]
) -> None:
    """Per-kind seconds of a record (a run stored whole) as cells of their second."""
    db.executemany(
        "INSERT OR REPLACE INTO second_cells VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(run_id, i.second, i.phase, i.kind, i.histogram, b"", "{}") for i in intervals],
    )


def put_intervals(db: sqlite3.Connection, run_id: str, intervals: list[IntervalHistogram]) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO interval_histograms VALUES (?, ?, ?, ?, ?, ?)",
        [(run_id, i.second, i.phase, i.start_ns, i.end_ns, i.histogram) for i in intervals],
    )
