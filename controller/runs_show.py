"""``snowload runs show``: one run in full (terminal or JSON), with the tail percentiles
from its stored histograms on request."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from controller import lifecycle as lc
from controller.console import StdoutConsole
from controller.report import render_summary, summary_dict
from controller.store import RunStore
from snowload import hdr
from snowload.v1 import run_pb2

SPECTRUM = hdr.SPECTRUM
EXIT_NOT_FOUND = 2


def find(store: RunStore, run_id: str) -> run_pb2.Run | None:
    run = store.find(run_id)
    if run is None:
        print(f"error: no run {run_id!r} in {getattr(store, 'path', 'the store')}", file=sys.stderr)
    return run


def show(store: RunStore, args: argparse.Namespace) -> int:
    run = find(store, args.run_id)
    if run is None:
        return EXIT_NOT_FOUND
    if args.json:
        out = summary_dict(run)
        out["events"] = [
            {
                "state": lc.state_name(e.state),
                "time": e.event_time.ToJsonString(),
                "reason": e.reason,
            }
            for e in run.events
        ]
        out["workers_detail"] = [
            {
                "worker_id": w.worker_id,
                "host": w.host,
                "index": w.index,
                "connections": w.connections,
                "intervals": w.intervals,
                "count": w.count,
                "errors": w.errors,
                "lost": w.lost,
            }
            for w in run.run_workers
        ]
        out["error_samples"] = [
            {"kind": e.kind, "category": e.category, "message": e.message}
            for e in run.error_samples
        ]
        if args.percentiles:
            out["percentiles"] = spectrum(store.histograms(run.run_id))
        print(json.dumps(out, indent=2))
        return 0
    console = StdoutConsole(width=max(Console().width, 120))
    console.print(render_summary(run))
    if args.percentiles:
        console.print(_spectrum_table(spectrum(store.histograms(run.run_id))))
    for e in run.events:
        when = e.event_time.ToDatetime().strftime("%H:%M:%S.%f")[:-3]
        console.print(f"  {when}  {lc.state_name(e.state):<12} {e.reason}", highlight=False)
    for w in run.run_workers:
        console.print(
            f"  worker {w.index} {w.worker_id} on {w.host}: {w.connections} connections, "
            f"{w.count:,} queries, {w.errors:,} errors, {w.intervals} intervals"
            + (" [LOST]" if w.lost else ""),
            highlight=False,
        )
    for sample in run.error_samples:
        console.print(
            f"  error in {sample.kind or '(unnamed)'!r} [{sample.category}]: {sample.message}",
            highlight=False,
        )
    return 0


def spectrum(histograms: dict[tuple[int, str], bytes]) -> dict[str, dict[str, dict[str, float]]]:
    """Phase -> kind ('all' for every kind) -> {"p50": ms, ..., "max": ms, "count": n},
    read from the stored histograms (HdrHistogram's percentile semantics)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (phase, kind), data in sorted(histograms.items()):
        row = hdr.spectrum(data)
        if row:
            out.setdefault(lc.state_name(phase), {})[kind or "all"] = row
    return out


def _spectrum_table(data: dict[str, dict[str, dict[str, float]]]) -> Table:
    table = Table(title="latency percentiles (ms), from the stored histograms")
    columns = [*(f"p{p:g}" for p in SPECTRUM), "max"]
    for col in ("phase", "kind", *columns):
        table.add_column(col, justify="left" if col in ("phase", "kind") else "right")
    for phase, kinds in data.items():
        for kind, row in sorted(kinds.items(), key=lambda kv: kv[0] != "all"):
            table.add_row(phase, kind, *(f"{row[c]:.3f}" for c in columns))
    return table
