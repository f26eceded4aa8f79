"""The rows of a run's query log (the Run detail's "Queries" tab): slowest first within a
phase and kind, then the first failures, then the uniform sample."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from snowload.v1 import common_pb2
from tui import format as fmt
from tui.widgets.tables import Column, right

QUERY_COLUMNS = (
    Column("#", "id"),
    Column("phase", "phase"),
    Column("query", "kind"),
    Column("ms", "ms"),
    Column("why", "why"),
    Column("params", "params", drop=2),
    Column("server id", "server", drop=3),
    Column("worker/conn", "where", drop=4),
    Column("error", "error", drop=1),
)
PARAMS_CELL = 40
"""Parameters longer than this are cut in the table (the drill-in view has them all)."""


def why(entry: common_pb2.QueryEntry) -> str:
    """Why the log kept it: slowest, failed, sampled (several may hold)."""
    marks = []
    if entry.slowest:
        marks.append("slowest")
    if entry.error:
        marks.append("failed")
    if entry.sampled:
        marks.append("sampled")
    return ", ".join(marks)


def params_text(entry: common_pb2.QueryEntry, width: int | None = None) -> str:
    if not entry.params_json:
        return "(not recorded)"
    text = entry.params_json
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def ordered(entries: Sequence[common_pb2.QueryEntry]) -> list[common_pb2.QueryEntry]:
    """The slowest first (MEASUREMENT before the other phases), then failures, then the
    sample in issue order."""

    def key(e: common_pb2.QueryEntry) -> tuple[int, int, float, int]:
        group = 0 if e.slowest else 1 if e.error else 2
        phase_rank = 0 if e.phase == fmt.MEASUREMENT else 1
        return (
            group,
            phase_rank if group == 0 else 0,
            -e.latency_ms if group == 0 else 0.0,
            e.entry_id,
        )

    return sorted(entries, key=key)


def query_rows(entries: Sequence[common_pb2.QueryEntry]) -> list[tuple[str, list[Any]]]:
    return [
        (
            str(e.entry_id),
            [
                right(str(e.entry_id)),
                fmt.state_name(e.phase),
                e.kind,
                right(fmt.fmt_ms(e.latency_ms)),
                why(e),
                params_text(e, PARAMS_CELL),
                e.server_id or "-",
                f"{e.worker}/{e.connection}",
                (e.error.splitlines() or [""])[0][:60],
            ],
        )
        for e in ordered(entries)
    ]


def detail_lines(entry: common_pb2.QueryEntry, sql: str, run_id: str) -> list[str]:
    """Everything about one entry, for the drill-in view."""
    params: Any = json.loads(entry.params_json) if entry.params_json else None
    lines = [
        f"entry {entry.entry_id} of run {run_id} · {why(entry)}",
        "",
        f"query kind   {entry.kind}",
        f"phase        {fmt.state_name(entry.phase)}",
        f"latency      {entry.latency_ms:.3f} ms",
        f"issued at    {entry.start_time.ToJsonString()} (the run's clock)",
        f"worker       {entry.worker}, connection {entry.connection}",
        f"server id    {entry.server_id or '-'}",
        f"error        {entry.error or '-'}"
        + (f" [{entry.error_category}]" if entry.error_category else ""),
        "",
        "parameters",
    ]
    if params is None:
        lines.append("  (not recorded: [load] record_params = false)")
    else:
        lines.extend(f"  ${i} = {json.dumps(v)}" for i, v in enumerate(params, start=1))
    lines += ["", "statement", *(f"  {line}" for line in sql.splitlines() or ["-"])]
    lines += [
        "",
        f"server-side profile: snowload runs profile {run_id} {entry.entry_id}",
    ]
    return lines
