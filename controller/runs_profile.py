"""``snowload runs profile RUN ENTRY``: the server's side of one query of a run's query
log, fetched from this host with its credentials (worker/profile.py): PostgreSQL's
EXPLAIN (ANALYZE, BUFFERS) with the recorded parameters, Snowflake's QUERY_HISTORY row
and operator statistics."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from controller.cli_parser import Subparsers
from controller.query_log import QueryLogEntry
from controller.runs_show import EXIT_NOT_FOUND, find
from controller.store import RunStore
from snowload.exit_codes import ExitCode
from snowload.v1 import run_pb2

EXIT_REFUSED = int(ExitCode.BAD_INPUT)
EXIT_UNREACHABLE = int(ExitCode.RUN_FAILED)
"""As ``check --connect``: the target could not be reached from this host."""


def add_verb(
    verbs: Subparsers, verb: Callable[[Subparsers, str, str], argparse.ArgumentParser]
) -> None:
    p = verb(
        verbs,
        "profile",
        "the server's side of one query of a run's query log, from this host with its "
        "credentials: PostgreSQL EXPLAIN (ANALYZE, BUFFERS) with its parameters (read-only "
        "statements only, in a rolled-back READ ONLY transaction, unless --allow-writes); "
        "Snowflake QUERY_HISTORY and GET_QUERY_OPERATOR_STATS",
    )
    p.add_argument("run_id", help="the run's id")
    p.add_argument("entry", help="the entry's ID (as 'runs queries' lists it) or its server id")
    p.add_argument(
        "--allow-writes",
        action="store_true",
        help="PostgreSQL: also a statement that may write (still in a transaction that is "
        "rolled back; sequences advance and locks are taken)",
    )
    p.add_argument("--json", action="store_true", help="JSON on stdout")


def _entry(store: RunStore, run_id: str, wanted: str) -> QueryLogEntry | None:
    for e in store.query_entries(run_id):
        if str(e.entry_id) == wanted or (e.server_id and e.server_id == wanted):
            return e
    return None


def main(store: RunStore, args: argparse.Namespace) -> int:
    from snowload.workload import Driver, WorkloadError, parse_json

    run = find(store, args.run_id)
    if run is None:
        return EXIT_NOT_FOUND
    entry = _entry(store, run.run_id, args.entry)
    if entry is None:
        print(f"error: run {run.run_id} has no query log entry {args.entry!r}", file=sys.stderr)
        return EXIT_NOT_FOUND
    try:
        workload = parse_json(run.workload_json)
    except WorkloadError as exc:
        print(f"error: run {run.run_id}: its stored workload: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    query = next((q for q in workload.queries if q.name == entry.kind), None)
    if query is None:
        print(f"error: run {run.run_id} has no query kind {entry.kind!r}", file=sys.stderr)
        return EXIT_NOT_FOUND
    driver = workload.target.driver
    if driver is Driver.POSTGRES:
        if entry.params is None and query.params:
            print(
                f"error: entry {entry.entry_id} has no recorded parameters "
                "([load] record_params = false): nothing to EXPLAIN with",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        return _run(args, run, entry, lambda: _postgres(workload.target, query.sql, entry, args))
    if driver is Driver.SNOWFLAKE:
        if not entry.server_id:
            print(f"error: entry {entry.entry_id} has no Snowflake query id", file=sys.stderr)
            return EXIT_REFUSED
        return _run(args, run, entry, lambda: _snowflake(workload.target, entry))
    print(
        f"error: run {run.run_id} ran on {driver.value}, which keeps no server-side profile",
        file=sys.stderr,
    )
    return EXIT_REFUSED


def _postgres(target: Any, sql: str, entry: QueryLogEntry, args: argparse.Namespace) -> Any:
    from worker.profile import explain_postgres

    return explain_postgres(target, sql, entry.params or [], allow_writes=args.allow_writes)


def _snowflake(target: Any, entry: QueryLogEntry) -> Any:
    from worker.profile import snowflake_profile

    return snowflake_profile(target, entry.server_id)


def _run(
    args: argparse.Namespace, run: run_pb2.Run, entry: QueryLogEntry, fetch: Callable[[], Any]
) -> int:
    from worker.drivers import DriverError
    from worker.profile import ProfileFailed, ProfileRefused

    try:
        profile = fetch()
    except ProfileRefused as exc:
        print(f"error: entry {entry.entry_id}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except ProfileFailed as exc:
        print(f"error: entry {entry.entry_id}: the server refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except DriverError as exc:
        print(
            f"error: cannot reach run {run.run_id}'s target from this host ({exc.category}): {exc}",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    if args.json:
        out = {
            "entry": entry.to_json(),
            "title": profile.title,
            "plan": profile.lines,
            "history": profile.history,
            "operators": profile.operators,
            "notes": profile.notes,
        }
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(
        f"run {run.run_id} entry {entry.entry_id}: {entry.kind} ({entry.phase_name}), "
        f"{entry.latency_ms:.3f} ms, params {json.dumps(entry.params)}"
    )
    print(profile.title)
    for line in profile.lines:
        print(f"  {line}")
    if profile.history is not None:
        for key, value in profile.history.items():
            print(f"  {key}: {value}")
    if profile.operators:
        print("operators:")
        for row in profile.operators:
            print("  " + json.dumps(row, default=str))
    for note in profile.notes:
        print(f"note: {note}")
    return 0
