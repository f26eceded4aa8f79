"""A run's row in the SQLite results store (for controller/store_sqlite.py): scalar
columns for listing and filtering, the summary and SLO verdicts as protobuf blobs, the
fields added later in one ``extra`` blob, and its events, workers and error samples."""

from __future__ import annotations

import sqlite3

from google.protobuf.duration_pb2 import Duration

from snowload.v1 import run_pb2

EXTRA_FIELDS = (
    "degraded",
    "warnings",
    "warehouse",
    "credits",
    "cost",
    "find_max",
    "pools",
    "plan",
)


def put_run(db: sqlite3.Connection, run: run_pb2.Run) -> None:
    """Insert or update a run's row with its events, workers and error samples."""

    def ns(field: str) -> int | None:
        return getattr(run, field).ToNanoseconds() if run.HasField(field) else None

    slo = run_pb2.Run(slo=run.slo).SerializeToString()
    db.execute(
        """
        INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
        ON CONFLICT (run_id) DO UPDATE SET
            state = excluded.state, reason = excluded.reason, message = excluded.message,
            start_ns = excluded.start_ns,
            measurement_start_ns = excluded.measurement_start_ns,
            measurement_end_ns = excluded.measurement_end_ns, end_ns = excluded.end_ns,
            workload_json = CASE WHEN excluded.workload_json != ''
                            THEN excluded.workload_json ELSE runs.workload_json END,
            summary = excluded.summary, slo = excluded.slo,
            slo_passed = excluded.slo_passed, enrichment = excluded.enrichment,
            server = excluded.server, extra = excluded.extra
        """,
        (
            run.run_id,
            run.name,
            run.state,
            run.reason,
            run.message,
            run.mode,
            run.target,
            run.create_time.ToNanoseconds(),
            ns("start_time"),
            ns("measurement_start_time"),
            ns("measurement_end_time"),
            ns("end_time"),
            run.workers,
            run.connections,
            run.warmup.ToNanoseconds(),
            run.duration.ToNanoseconds(),
            run.workload_json,
            run.summary.SerializeToString(),
            slo,
            int(run.slo_passed),
            run.enrichment,
            run.server.SerializeToString() if run.HasField("server") else None,
            _extra(run),
        ),
    )
    if run.events:
        db.execute("DELETE FROM run_events WHERE run_id = ?", (run.run_id,))
        db.executemany(
            "INSERT INTO run_events VALUES (?, ?, ?, ?, ?)",
            [
                (run.run_id, i, e.state, e.event_time.ToNanoseconds(), e.reason)
                for i, e in enumerate(run.events)
            ],
        )
    if run.run_workers:
        db.execute("DELETE FROM run_workers WHERE run_id = ?", (run.run_id,))
        db.executemany(
            "INSERT INTO run_workers VALUES (?, ?, ?)",
            [(run.run_id, w.index, w.SerializeToString()) for w in run.run_workers],
        )
    if run.error_samples:
        db.execute("DELETE FROM error_samples WHERE run_id = ?", (run.run_id,))
        db.executemany(
            "INSERT INTO error_samples VALUES (?, ?, ?, ?, ?)",
            [
                (run.run_id, seq, e.kind, e.category, e.message)
                for seq, e in enumerate(run.error_samples)
            ],
        )


COLUMNS = [
    "run_id",
    "name",
    "state",
    "reason",
    "message",
    "mode",
    "target",
    "create_ns",
    "start_ns",
    "measurement_start_ns",
    "measurement_end_ns",
    "end_ns",
    "workers",
    "connections",
    "warmup_ns",
    "duration_ns",
    "workload_json",
    "summary",
    "slo",
    "slo_passed",
    "enrichment",
    "server",
    "extra",
]


def run_from_row(row: tuple[object, ...]) -> run_pb2.Run:
    r = dict(zip(COLUMNS, row, strict=True))
    run = run_pb2.Run(
        run_id=str(r["run_id"]),
        name=str(r["name"]),
        state=int(r["state"]),  # type: ignore[call-overload]
        reason=str(r["reason"]),
        message=str(r["message"]),
        mode=int(r["mode"]),  # type: ignore[call-overload]
        target=str(r["target"]),
        workers=int(r["workers"]),  # type: ignore[call-overload]
        connections=int(r["connections"]),  # type: ignore[call-overload]
        workload_json=str(r["workload_json"]),
        enrichment=int(r["enrichment"]),  # type: ignore[call-overload]
    )
    for column, field in (
        ("create_ns", "create_time"),
        ("start_ns", "start_time"),
        ("measurement_start_ns", "measurement_start_time"),
        ("measurement_end_ns", "measurement_end_time"),
        ("end_ns", "end_time"),
    ):
        if r[column] is not None:
            getattr(run, field).FromNanoseconds(int(r[column]))  # type: ignore[call-overload]
    run.warmup.CopyFrom(_ns_duration(int(r["warmup_ns"])))  # type: ignore[call-overload]
    run.duration.CopyFrom(_ns_duration(int(r["duration_ns"])))  # type: ignore[call-overload]
    if r["summary"]:
        run.summary.ParseFromString(r["summary"])  # type: ignore[arg-type]
    if r["extra"]:
        run.MergeFromString(r["extra"])  # type: ignore[arg-type]
    if r["server"]:
        run.server.ParseFromString(r["server"])  # type: ignore[arg-type]
    if r["slo"]:
        holder = run_pb2.Run()
        holder.ParseFromString(r["slo"])  # type: ignore[arg-type]
        run.slo.extend(holder.slo)
    if run.slo:  # (the column's value means nothing without verdicts)
        run.slo_passed = bool(r["slo_passed"])
    return run


def _extra(run: run_pb2.Run) -> bytes:
    extra = run_pb2.Run()
    for name in EXTRA_FIELDS:
        if name == "warnings":
            extra.warnings.extend(run.warnings)
        elif name == "pools":
            extra.pools.extend(run.pools)
        elif name in ("warehouse", "find_max", "plan"):
            if run.HasField(name):
                getattr(extra, name).CopyFrom(getattr(run, name))
        else:
            setattr(extra, name, getattr(run, name))
    return extra.SerializeToString()


def _ns_duration(ns: int) -> Duration:
    d = Duration()
    d.FromNanoseconds(ns)
    return d
