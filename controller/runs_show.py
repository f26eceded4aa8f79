"""``snowload runs show``: one run in full (terminal or JSON), with the tail percentiles
from its stored histograms on request."""

from __future__ import annotations

import argparse
import json
import sys

from controller import lifecycle as lc
from controller import render
from controller.fit import stdout_console
from controller.query_table import print_slowest, slowest_json
from controller.report import summary_dict
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
        out["slowest_queries"] = slowest_json(store, run.run_id)
        print(json.dumps(out, indent=2))
        return 0
    render.print_run(run, spectrum(store.histograms(run.run_id)) if args.percentiles else None)
    print_slowest(stdout_console(), store, run.run_id)
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
