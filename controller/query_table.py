"""A run's query log entries as a table (``runs queries``), and the slowest five that
``runs show`` adds to a run."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.console import Console

from controller import lifecycle as lc
from controller.fit import Grid, print_fitting
from controller.query_log import QueryLogEntry
from controller.store import RunStore
from controller.store_remote import RemoteUnsupported

SHOW_SLOWEST = 5
"""``runs show`` lists this many of the run's slowest queries."""
COLUMNS = ("ID", "phase", "kind", "ms", "started", "worker", "conn", "server id", "params", "error")
PARAMS_WIDTH = 60
"""Parameters longer than this are cut in the table (JSON has them in full)."""


def grid(entries: Sequence[QueryLogEntry], title: str) -> Grid:
    """The entries as a table; ``ID`` is what ``runs profile RUN ID`` takes."""
    out = Grid(
        title=title,
        columns=[
            "ID",
            "phase",
            "kind",
            "ms",
            "started",
            "worker",
            "conn",
            "server id",
            "params",
            "error",
        ],
        left=frozenset({"phase", "kind", "started", "worker", "server id", "params", "error"}),
        narrow_drop=frozenset({"worker", "conn", "started"}),
    )
    for e in entries:
        params = json.dumps(e.params) if e.params is not None else "-"
        if len(params) > PARAMS_WIDTH:
            params = params[: PARAMS_WIDTH - 1] + "…"
        out.add(
            [
                str(e.entry_id),
                e.phase_name,
                e.kind,
                f"{e.latency_ms:.3f}",
                e.started_at,
                e.worker,
                str(e.connection),
                e.server_id or "-",
                params,
                e.error or "",
            ]
        )
    return out


def _slowest(store: RunStore, run_id: str) -> list[QueryLogEntry]:
    """The run's five slowest of MEASUREMENT (what its headline numbers count; of any
    phase if it has none); none while a daemon's run is active (its log is stored when
    it ends)."""
    try:
        measured = store.run_queries(run_id, phase=lc.MEASUREMENT, slowest=SHOW_SLOWEST)
        return measured or store.run_queries(run_id, slowest=SHOW_SLOWEST)
    except RemoteUnsupported:
        return []


def print_slowest(console: Console, store: RunStore, run_id: str) -> None:
    """The run's five slowest queries (``runs show``)."""
    entries = _slowest(store, run_id)
    if entries:
        phase = "MEASUREMENT" if all(e.phase == lc.MEASUREMENT for e in entries) else "all phases"
        title = (
            f"slowest {len(entries)} queries of {phase} "
            f"(snowload runs queries {run_id} for the whole log)"
        )
        print_fitting(console, grid(entries, title).layouts())


def slowest_json(store: RunStore, run_id: str) -> list[dict[str, object]]:
    return [e.to_json() for e in _slowest(store, run_id)]
