"""What the Run detail screen shows of a stored run, kept apart from Textual: its title,
the phase, per-kind, percentile and server-timing tables (with the columns a narrow screen
leaves out first), and the events, workers and errors."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from snowload import hdr
from snowload.v1 import common_pb2, run_pb2
from tui import format as fmt
from tui.widgets.tables import Column, right, stats_cells

PHASE_COLUMNS = (
    Column("phase", "phase"),
    Column("duration", "duration", drop=4),
    Column("count", "count"),
    Column("errors", "errors"),
    Column("error rate", "rate", drop=5),
    Column("QPS", "qps"),
    Column("p50 ms", "p50", drop=2),
    Column("p95 ms", "p95"),
    Column("p99 ms", "p99"),
    Column("max ms", "max", drop=3),
)
"""A narrow screen leaves out the columns with the highest ``drop`` first."""
KIND_COLUMNS = (
    Column("phase", "phase"),
    Column("query", "kind"),
    Column("count", "count"),
    Column("errors", "errors"),
    Column("QPS", "qps"),
    Column("p50 ms", "p50", drop=2),
    Column("p95 ms", "p95"),
    Column("p99 ms", "p99"),
    Column("max ms", "max", drop=3),
)
PERCENTILE_COLUMNS = (
    Column("phase", "phase"),
    Column("query", "kind"),
    *(
        Column(f"p{p:g} ms", f"p{p:g}", drop={90: 4, 99.9: 2, 99.99: 3}.get(p, 0))
        for p in hdr.SPECTRUM
    ),
    Column("max ms", "max"),
)
SERVER_COLUMNS = (
    Column("phase", "phase"),
    Column("query", "kind"),
    Column("calls", "calls"),
    Column("matched", "matched", drop=5),
    Column("total p50", "total50"),
    Column("total p95", "total95"),
    Column("exec p50", "exec50", drop=3),
    Column("exec p95", "exec95", drop=4),
    Column("compile p50", "compile50", drop=6),
    Column("queued p95", "queued95", drop=7),
    Column("mean ± sd", "mean", drop=8),
    Column("client - server p50", "overhead50", drop=2),
)
VERDICT_COLUMNS = (
    ("scope", "scope"),
    ("metric", "metric"),
    ("limit", "limit"),
    ("actual", "actual"),
    ("verdict", "verdict"),
)


def phase_rows(run: run_pb2.Run) -> list[tuple[str, list[Any]]]:
    rows: list[tuple[str, list[Any]]] = []
    for ps in run.summary.phases:
        name = fmt.state_name(ps.phase)
        cells = stats_cells(ps.overall)
        rows.append(
            (
                name,
                [
                    name,
                    right(fmt.fmt_seconds(fmt.seconds_of(ps.duration))),
                    cells[0],
                    cells[1],
                    right(fmt.fmt_rate(fmt.error_rate(ps.overall))),
                    *cells[2:],
                ],
            )
        )
    return rows


def kind_rows(run: run_pb2.Run) -> list[tuple[str, list[Any]]]:
    rows: list[tuple[str, list[Any]]] = []
    # the measurement first: it is what counts
    phases = sorted(run.summary.phases, key=lambda p: p.phase != fmt.MEASUREMENT)
    for ps in phases:
        name = fmt.state_name(ps.phase)
        for kind, s in sorted(ps.by_kind.items()):
            rows.append((f"{name}/{kind}", [name, kind, *stats_cells(s)]))
    return rows


def percentile_rows(
    histograms: run_pb2.GetRunHistogramsResponse,
) -> list[tuple[str, list[Any]]]:
    """MEASUREMENT first, every kind merged ('all') first within a phase."""
    rows: list[tuple[str, list[Any]]] = []
    items = sorted(histograms.phases, key=lambda h: (h.phase != fmt.MEASUREMENT, h.phase, h.kind))
    for h in items:
        spectrum = hdr.spectrum(h.histogram)
        if not spectrum:
            continue
        name, kind = fmt.state_name(h.phase), h.kind or "all"
        cells = [right(fmt.fmt_ms(spectrum[f"p{p:g}"])) for p in hdr.SPECTRUM]
        rows.append((f"{name}/{kind}", [name, kind, *cells, right(fmt.fmt_ms(spectrum["max"]))]))
    return rows


def _ms(stats: common_pb2.LatencyStats, field: str) -> Text:
    return right(fmt.fmt_ms(float(getattr(stats, field))) if stats.count else "-")


def server_rows(run: run_pb2.Run) -> list[tuple[str, list[Any]]]:
    """Server-side timings (Run.server), in milliseconds, per phase and query kind."""
    rows: list[tuple[str, list[Any]]] = []
    for i, t in enumerate(run.server.timings):
        mean = (
            f"{fmt.fmt_ms(t.mean_ms)} ± {fmt.fmt_ms(t.stddev_ms)}"
            if t.mean_ms or t.stddev_ms
            else "-"
        )
        rows.append(
            (
                f"t{i}",
                [
                    fmt.state_name(t.phase),
                    t.kind,
                    right(f"{t.calls:,}"),
                    right(f"{t.matched:,}"),
                    _ms(t.total, "p50_ms"),
                    _ms(t.total, "p95_ms"),
                    _ms(t.execution, "p50_ms"),
                    _ms(t.execution, "p95_ms"),
                    _ms(t.compilation, "p50_ms"),
                    _ms(t.queued, "p95_ms"),
                    right(mean),
                    _ms(t.app_overhead, "p50_ms"),
                ],
            )
        )
    return rows


def enrichment_status(run: run_pb2.Run) -> tuple[str, str]:
    """(status, message): Run.server when the controller fills it, else Run.enrichment."""
    if run.HasField("server") and run.server.status:
        return fmt.enrichment_name(run.server.status), run.server.message
    return fmt.enrichment_name(run.enrichment), ""


def header_text(run: run_pb2.Run) -> Text:
    text = Text()
    text.append(run.name or "(unnamed)", "bold")
    text.append(f" · run {run.run_id} · {run.target} · {fmt.mode_name(run.mode)} · ")
    text.append(f"{run.workers} worker(s) x {run.connections} connections   ")
    style = "bold green" if run.state == fmt.COMPLETED else "bold red"
    if not fmt.is_terminal(run.state):
        style = "bold cyan"
    text.append(fmt.state_name(run.state), style)
    if run.reason:
        text.append(f" ({run.reason})", style)
    if run.message:
        text.append(f": {run.message}")
    took = fmt.run_duration_s(run)
    text.append(
        f"\ncreated {fmt.fmt_time(run.create_time)} · started {fmt.fmt_time(run.start_time)}"
        f" · ended {fmt.fmt_time(run.end_time)}"
        + (f" · took {fmt.fmt_seconds(took)}" if took is not None else ""),
        "dim",
    )
    text.append("\nSLO ")
    if run.slo:
        failed = sum(1 for v in run.slo if not v.passed)
        if failed:
            text.append(f"FAILED ({failed} of {len(run.slo)} limits)", "bold red")
        else:
            text.append(f"passed ({len(run.slo)} limits)", "green")
    else:
        text.append("-", "dim")
    status, message = enrichment_status(run)
    text.append(" · enrichment ")
    text.append(status, "bold")
    if message:
        text.append(f" ({message})", "dim")
    count = len(run.server.timings)
    text.append(f" · server-side timings: {count} row(s)" if count else " · no server-side timings")
    if run.degraded:
        text.append("  DEGRADED", "bold yellow")
    if run.warnings:
        text.append(f"  {len(run.warnings)} warning(s)", "yellow")
    return text


def extra_text(run: run_pb2.Run) -> Text:
    """The phase events, the workers and the error samples."""
    text = Text()
    if run.events:
        text.append("phases\n", "bold")
        events = list(run.events)
        for i, e in enumerate(events):
            nxt = events[i + 1] if i + 1 < len(events) else None
            took = (
                fmt.fmt_seconds(fmt.ts_seconds(nxt.event_time) - fmt.ts_seconds(e.event_time))
                if nxt is not None
                else ""
            )
            line = f"  {fmt.fmt_time(e.event_time, date=False)}  {fmt.state_name(e.state):<12}"
            text.append(line + f" {took:>7}" + (f"  {e.reason}" if e.reason else "") + "\n")
    if run.run_workers:
        text.append("\nworkers\n", "bold")
        for w in run.run_workers:
            text.append(
                f"  {w.index} {w.worker_id} on {w.host}: {w.connections} conns, "
                f"{w.count:,} queries, {w.errors:,} errors, {w.intervals} intervals"
                + (" LOST" if w.lost else "")
                + "\n",
                "bold red" if w.lost else "",
            )
    if run.warnings:
        text.append("\nwarnings\n", "bold yellow")
        for warning in run.warnings:
            text.append(f"  {warning}\n", "yellow")
    if run.error_samples:
        text.append("\nerrors\n", "bold")
        for sample in run.error_samples:
            text.append(f"  [{sample.category}] {sample.message}\n", "red")
    return text
