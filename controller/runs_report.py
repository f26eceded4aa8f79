"""``snowload runs report RUN [RUN ...] -o FILE.html``: stored runs as one self-contained
HTML file (see docs/report.md). A run still active is reported as far as it has got, and
marked so; an unknown run is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from controller import lifecycle as lc
from controller.cli_parser import Subparsers
from controller.report_html import page
from controller.report_html.model import ReportRun, collect
from controller.runs_show import EXIT_NOT_FOUND, find
from controller.store import RunStore
from controller.store_remote import RemoteUnsupported
from snowload.exit_codes import ExitCode

MakeVerb = Callable[[Subparsers, str, str], argparse.ArgumentParser]


def add_verb(verbs: Subparsers, make_verb: MakeVerb) -> None:
    rep = make_verb(
        verbs,
        "report",
        "runs as one self-contained HTML file (no network needed to open it); "
        "two or more runs are overlaid and compared with the first",
    )
    rep.add_argument("run_ids", nargs="+", metavar="RUN", help="run ids (unique prefixes work)")
    rep.add_argument("-o", "--output", required=True, metavar="FILE.html", help="file to write")


def query_log(store: RunStore, run_id: str) -> list[Mapping[str, Any] | object]:
    """The run's query log: entries with kind, phase, worker, connection, started_at,
    latency_ms, params, server_id and error (any shape ``model.query_entry`` reads).
    The entries kept as the slowest of their phase and kind; none when the run recorded
    no query log (the report says so), or a controller cannot serve it yet."""
    try:
        entries = store.query_entries(run_id)
    except RemoteUnsupported:
        return []
    return [e for e in entries if e.slowest]


def report(store: RunStore, args: argparse.Namespace) -> int:
    runs: list[ReportRun] = []
    for run_id in args.run_ids:
        run = find(store, run_id)
        if run is None:
            return EXIT_NOT_FOUND
        runs.append(collect(store, run, query_log(store, run.run_id)))
    text = page.render(runs)
    path = Path(args.output)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    for rr in runs:
        if rr.active:
            print(
                f"note: run {rr.run.run_id} is still {lc.state_name(rr.run.state)}: "
                "the report shows what existed so far, and says so",
                file=sys.stderr,
            )
    print(f"wrote {path} ({len(text.encode()):,} bytes)", file=sys.stderr)
    return ExitCode.OK
