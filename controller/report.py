"""Turning a finished run into what people read: a JSON summary and a terminal table."""

from __future__ import annotations

from rich.table import Table

from controller import lifecycle as lc
from controller.slo import describe
from snowload.report import (
    find_max_dict,
    server_dict,
    stats_dict,
    summary_dict,
)
from snowload.v1 import run_pb2

__all__ = ["find_max_dict", "server_dict", "stats_dict", "summary_dict", "summary_table"]


def summary_table(run: run_pb2.Run) -> Table:
    title = f"{run.name} · run {run.run_id} · {lc.state_name(run.state)}"
    if run.reason:
        title += f" ({run.reason})"
    table = Table(title=title, title_justify="left")
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
    if run.server.timings:
        table.add_row()
        for t in run.server.timings:
            table.add_row(
                "server",
                t.kind,
                f"{t.calls:,}",
                "",
                "",
                f"{t.total.p50_ms:.3f}" if t.total.count else f"mean {t.mean_ms:.3f}",
                f"{t.total.p95_ms:.3f}" if t.total.count else f"sd {t.stddev_ms:.3f}",
                f"{t.total.p99_ms:.3f}" if t.total.count else "",
                f"{t.total.max_ms:.3f}" if t.total.count else "",
                style="dim",
            )
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
    notes.extend(f"warning: {w}" for w in run.warnings)
    if run.slo:
        verdicts = ", ".join(describe(v) for v in run.slo)
        notes.append(f"SLO {'passed' if run.slo_passed else 'FAILED'}: {verdicts}")
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table
