"""The summary of a run on a terminal (``snowload run``, ``snowload runs show``): per phase
and query kind, count, errors, QPS and latency percentiles; server-side timings, find_max
steps, the open model's figures and the SLO verdicts as notes.

Three layouts, the first that fits the width is printed (:mod:`controller.fit`): a table
with every figure in full; a narrower one (phases as row headers, counts and rates in k/M);
plain lines that wrap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from controller import lifecycle as lc
from controller.fit import Grid, print_fitting, short_count, short_rate
from controller.slo import describe
from snowload.report import first_errors
from snowload.v1 import common_pb2, run_pb2

LATENCY_COLUMNS = ("p50 ms", "p95 ms", "p99 ms", "max ms")
ENRICHMENT_NAMES = {
    common_pb2.ENRICHMENT_STATUS_UNSPECIFIED: "not attempted",
    common_pb2.ENRICHMENT_STATUS_PENDING: "PENDING",
    common_pb2.ENRICHMENT_STATUS_COMPLETED: "COMPLETED",
    common_pb2.ENRICHMENT_STATUS_FAILED: "FAILED",
    common_pb2.ENRICHMENT_STATUS_SKIPPED: "SKIPPED",
}


@dataclass(frozen=True)
class Row:
    group: str
    """The phase, ``server`` or ``find_max``."""
    label: str
    count: int | None
    errors: int | None
    qps: float | None
    latencies: tuple[str, str, str, str]
    style: str | None = None


def title(run: run_pb2.Run) -> str:
    text = f"{run.name} · run {run.run_id} · {lc.state_name(run.state)}"
    if run.reason:
        text += f" ({run.reason})"
    return text


def _ms(stats: common_pb2.LatencyStats) -> tuple[str, str, str, str]:
    return (
        f"{stats.p50_ms:.3f}",
        f"{stats.p95_ms:.3f}",
        f"{stats.p99_ms:.3f}",
        f"{stats.max_ms:.3f}",
    )


def rows(run: run_pb2.Run) -> Iterator[Row]:
    for ps in run.summary.phases:
        phase = lc.state_name(ps.phase)
        kinds = [("all", ps.overall), *sorted(ps.by_kind.items())]
        for i, (kind, s) in enumerate(kinds):
            yield Row(phase, kind, s.count, s.errors, s.qps, _ms(s), "bold" if i == 0 else None)
    for step in run.find_max.steps:
        s = step.stats
        yield Row("find_max", f"{step.level:g} {step.verdict}", s.count, s.errors, s.qps, _ms(s))


def notes(run: run_pb2.Run) -> list[str]:
    out = []
    if run.find_max.concluded:
        out.append(
            f"find_max: best {run.find_max.best_level:g} {run.find_max.by} "
            f"at {run.find_max.best.qps:,.0f} queries/s: {run.find_max.reason}"
        )
    for ps in run.summary.phases:
        if ps.HasField("lag"):
            out.append(
                f"{lc.state_name(ps.phase)} open model: target {ps.target_rate:,.0f}/s, "
                f"achieved {ps.achieved_rate:,.0f}/s, lag p99 {ps.lag.p99_ms:.2f} ms, "
                f"uncorrected p99 {ps.service.p99_ms:.3f} ms, late {ps.late:,}, "
                f"dropped {ps.dropped:,}"
            )
    out.extend(
        f"first error of {e['kind'] or '(unnamed)'!r} [{e['category']}]: {e['message']}"
        for e in first_errors(run)
    )
    out.extend(f"warning: {w}" for w in run.warnings)
    if run.slo:
        verdicts = ", ".join(describe(v) for v in run.slo)
        out.append(f"SLO {'passed' if run.slo_passed else 'FAILED'}: {verdicts}")
    if lc.is_terminal(run.state):
        out.append(enrichment_note(run))
    return out


def enrichment_note(run: run_pb2.Run) -> str:
    status = ENRICHMENT_NAMES.get(run.enrichment, str(run.enrichment))
    why = run.server.message
    return f"server-side timings: {status}" + (f" — {why}" if why else "")


def measured_anything(run: run_pb2.Run) -> bool:
    return any(ps.overall.count or ps.overall.errors for ps in run.summary.phases)


def _full(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def _short(n: int | None) -> str:
    return "" if n is None else short_count(n)


def grid(run: run_pb2.Run) -> Grid:
    out = Grid(
        title=title(run),
        columns=["phase", "query", "count", "errors", "QPS", *LATENCY_COLUMNS],
        left=frozenset({"phase", "query"}),
        grouped=True,
        caption="\n".join(notes(run)),
    )
    group = ""
    for row in rows(run):
        if row.group != group:
            group = row.group
            out.sections.append(len(out.rows))
        qps = "" if row.qps is None else f"{row.qps:,.1f}"
        out.add(
            [row.group, row.label, _full(row.count), _full(row.errors), qps, *row.latencies],
            [
                row.group,
                row.label,
                _short(row.count),
                _short(row.errors),
                "" if row.qps is None else short_rate(row.qps),
                *row.latencies,
            ],
            row.style,
        )
    return out


def server_grid(run: run_pb2.Run) -> Grid | None:
    """Server-side timings per kind under their own headers: PostgreSQL's
    pg_stat_statements has a mean and a standard deviation and no percentiles;
    Snowflake's history has percentiles."""
    if not run.server.timings:
        return None
    out = Grid(
        title="server-side timings (ms)",
        columns=["query", "phase", "calls", "mean", "stddev", "p50", "p95", "p99", "max"],
        left=frozenset({"query", "phase"}),
    )
    for t in run.server.timings:
        total = t.total if t.total.count else None
        out.add(
            [
                t.kind,
                lc.state_name(t.phase) if t.phase else "",
                f"{t.calls:,}",
                f"{t.mean_ms:.3f}" if t.mean_ms else "-",
                f"{t.stddev_ms:.3f}" if t.stddev_ms else "-",
                *(_ms(total) if total is not None else ("-", "-", "-", "-")),
            ]
        )
    return out


def print_summary(console: Console, run: run_pb2.Run) -> None:
    """The summary in the first layout that fits ``console``: the tables when something
    was measured; otherwise (a run that failed before or right at the start) the reason
    and the notes, no empty table."""
    if measured_anything(run) or run.find_max.steps:
        print_fitting(console, grid(run).layouts())
    else:
        lines = [title(run)]
        if run.message:
            lines.append(run.message)
        lines.append(_before_the_end(run))
        lines.extend(notes(run))
        console.print(Text("\n".join(lines)), soft_wrap=False)
    server = server_grid(run)
    if server is not None:
        print_fitting(console, server.layouts())


def _before_the_end(run: run_pb2.Run) -> str:
    reached = [lc.state_name(e.state) for e in run.events]
    phases = " -> ".join(reached) if reached else "nothing"
    return f"nothing was measured (it reached: {phases})"
