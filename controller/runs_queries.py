"""``snowload runs queries RUN``: a stored run's query log (its slowest queries, first
failures and uniform sample), as a table or JSON; and the slowest five that ``runs show``
adds to a run."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from controller.cli_parser import Subparsers, positive_int
from controller.fit import print_fitting, stdout_console
from controller.query_log import phase_arg
from controller.query_table import grid
from controller.runs_show import EXIT_NOT_FOUND, find
from controller.store import RunStore

EXIT_BAD_INPUT = 2


def _phase(text: str) -> int:
    try:
        return phase_arg(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_verb(
    verbs: Subparsers, verb: Callable[[Subparsers, str, str], argparse.ArgumentParser]
) -> None:
    q = verb(
        verbs,
        "queries",
        "a run's query log: its slowest queries per phase and kind, the first failures "
        "per kind and error category, and a uniform sample, with their parameters and "
        "server-side ids",
    )
    q.add_argument("run_id", help="the run's id")
    q.add_argument("--kind", help="only queries of this kind")
    q.add_argument("--phase", type=_phase, help="only this phase (warmup, measurement, ...)")
    q.add_argument("--slowest", type=positive_int, metavar="N", help="the N slowest, slowest first")
    q.add_argument("--errors", action="store_true", help="only failed queries")
    q.add_argument(
        "--json",
        action="store_true",
        help="a JSON array of entries (kind, phase, worker, connection, started_at, "
        "latency_ms, params, server_id, error)",
    )


def main(store: RunStore, args: argparse.Namespace) -> int:
    run = find(store, args.run_id)
    if run is None:
        return EXIT_NOT_FOUND
    entries = store.run_queries(
        run.run_id,
        kind=args.kind,
        phase=args.phase,
        slowest=args.slowest,
        errors=args.errors,
        limit=1 << 31,
    )
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=2))
        return 0
    if not entries:
        print(f"run {run.run_id}: no query log entries match", file=sys.stderr)
        return 0
    print_fitting(stdout_console(), grid(entries, f"run {run.run_id}: query log").layouts())
    return 0
