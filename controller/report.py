"""Turning a finished run into what people read: a JSON summary and terminal tables."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from controller import lifecycle as lc
from controller.slo import describe
from snowload.report import (
    find_max_dict,
    first_errors,
    server_dict,
    stats_dict,
    summary_dict,
)
from snowload.v1 import common_pb2, run_pb2

__all__ = [
    "find_max_dict",
    "first_errors",
    "render_summary",
    "server_dict",
    "server_table",
    "stats_dict",
    "summary_dict",
    "summary_notes",
    "summary_table",
]

ENRICHMENT_NAMES = {
    common_pb2.ENRICHMENT_STATUS_UNSPECIFIED: "not attempted",
    common_pb2.ENRICHMENT_STATUS_PENDING: "PENDING",
    common_pb2.ENRICHMENT_STATUS_COMPLETED: "COMPLETED",
    common_pb2.ENRICHMENT_STATUS_FAILED: "FAILED",
    common_pb2.ENRICHMENT_STATUS_SKIPPED: "SKIPPED",
}


def title(run: run_pb2.Run) -> str:
    text = f"{run.name} · run {run.run_id} · {lc.state_name(run.state)}"
    return text + (f" ({run.reason})" if run.reason else "")


def summary_table(run: run_pb2.Run) -> Table:
    """Client-side numbers per phase and kind (and find_max steps)."""
    table = Table(title=title(run), title_justify="left")
    table.add_column("phase")
    table.add_column("query")
    for col in ("count", "errors", "QPS", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(col, justify="right")
    for ps in run.summary.phases:
        phase = lc.state_name(ps.phase)
        rows = [("all", ps.overall), *sorted(ps.by_kind.items())]
        for i, (kind, s) in enumerate(rows):
            table.add_row(
                phase if i == 0 else "",
                kind,
                f"{s.count:,}",
                f"{s.errors:,}",
                f"{s.qps:,.1f}",
                f"{s.p50_ms:.3f}",
                f"{s.p95_ms:.3f}",
                f"{s.p99_ms:.3f}",
                f"{s.max_ms:.3f}",
                style="bold" if i == 0 else None,
            )
        table.add_section()
    if run.find_max.steps:
        table.add_row()
        for step in run.find_max.steps:
            table.add_row(
                "find_max",
                f"{step.level:g} {step.verdict}",
                f"{step.stats.count:,}",
                f"{step.stats.errors:,}",
                f"{step.stats.qps:,.1f}",
                f"{step.stats.p50_ms:.3f}",
                f"{step.stats.p95_ms:.3f}",
                f"{step.stats.p99_ms:.3f}",
                f"{step.stats.max_ms:.3f}",
            )
    notes = summary_notes(run)
    if notes:
        table.caption = escape("\n".join(notes))  # (notes quote messages: no markup)
        table.caption_justify = "left"
    return table


def server_table(run: run_pb2.Run) -> Table | None:
    """Server-side timings per kind: what the server reported, under its own headers
    (PostgreSQL's pg_stat_statements has a mean and a standard deviation, no percentiles;
    Snowflake's history has percentiles)."""
    if not run.server.timings:
        return None
    table = Table(title="server-side timings (ms)", title_justify="left")
    for col in ("query", "phase", "calls", "mean", "stddev", "p50", "p95", "p99", "max"):
        table.add_column(col, justify="left" if col in ("query", "phase") else "right")
    for t in run.server.timings:
        total = t.total if t.total.count else None
        table.add_row(
            t.kind,
            lc.state_name(t.phase) if t.phase else "",
            f"{t.calls:,}",
            f"{t.mean_ms:.3f}" if t.mean_ms else "-",
            f"{t.stddev_ms:.3f}" if t.stddev_ms else "-",
            *(
                f"{getattr(total, name):.3f}" if total is not None else "-"
                for name in ("p50_ms", "p95_ms", "p99_ms", "max_ms")
            ),
        )
    return table


def summary_notes(run: run_pb2.Run) -> list[str]:
    notes = []
    if run.find_max.concluded:
        notes.append(
            f"find_max: best {run.find_max.best_level:g} {run.find_max.by} "
            f"at {run.find_max.best.qps:,.0f} queries/s: {run.find_max.reason}"
        )
    for ps in run.summary.phases:
        if ps.HasField("lag"):
            notes.append(
                f"{lc.state_name(ps.phase)} open model: target {ps.target_rate:,.0f}/s, "
                f"achieved {ps.achieved_rate:,.0f}/s, lag p99 {ps.lag.p99_ms:.2f} ms, "
                f"uncorrected p99 {ps.service.p99_ms:.3f} ms, late {ps.late:,}, "
                f"dropped {ps.dropped:,}"
            )
    notes.extend(
        f"first error of {e['kind'] or '(unnamed)'!r} [{e['category']}]: {e['message']}"
        for e in first_errors(run)
    )
    notes.extend(f"warning: {w}" for w in run.warnings)
    if run.slo:
        verdicts = ", ".join(describe(v) for v in run.slo)
        notes.append(f"SLO {'passed' if run.slo_passed else 'FAILED'}: {verdicts}")
    if lc.is_terminal(run.state):
        notes.append(enrichment_note(run))
    return notes


def enrichment_note(run: run_pb2.Run) -> str:
    status = ENRICHMENT_NAMES.get(run.enrichment, str(run.enrichment))
    why = run.server.message
    return f"server-side timings: {status}" + (f" — {why}" if why else "")


def measured_anything(run: run_pb2.Run) -> bool:
    return any(ps.overall.count or ps.overall.errors for ps in run.summary.phases)


def render_summary(run: run_pb2.Run) -> RenderableType:
    """The terminal summary: the tables when something was measured; otherwise (a run
    that failed before or right at the start) the reason and the notes, no empty table."""
    parts: list[RenderableType] = []
    if measured_anything(run) or run.find_max.steps:
        parts.append(summary_table(run))
    else:
        lines = [title(run)]
        if run.message:
            lines.append(run.message)
        lines.append(_before_the_end(run))
        lines.extend(summary_notes(run))
        parts.append(Text("\n".join(lines)))
    server = server_table(run)
    if server is not None:
        parts.append(server)
    return Group(*parts)


def _before_the_end(run: run_pb2.Run) -> str:
    reached = [lc.state_name(e.state) for e in run.events]
    phases = " -> ".join(reached) if reached else "nothing"
    return f"nothing was measured (it reached: {phases})"
