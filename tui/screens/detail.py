"""Run detail: a finished (or any) run from GetRun and GetRunSeries — plots, phase summary,
per-kind table, SLO verdicts, enrichment, workers and errors; export to JSON. A find_max run
adds its step table and conclusion; an open-model run its target vs achieved rate plot and
the MEASUREMENT's schedule figures (lag, late, dropped, service time)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from snowload import hdr
from snowload.v1 import common_pb2, run_pb2
from tui import format as fmt
from tui.client import ControllerError
from tui.live_model import open_phase_kpis
from tui.screens.base import AppScreen
from tui.widgets.findmax import FindMaxPanel
from tui.widgets.kpi import KpiBar
from tui.widgets.plots import RunPlots
from tui.widgets.tables import right, stats_cells, sync_rows, verdict_rows

PHASE_COLUMNS = (
    ("phase", "phase"),
    ("duration", "duration"),
    ("count", "count"),
    ("errors", "errors"),
    ("error rate", "rate"),
    ("QPS", "qps"),
    ("p50 ms", "p50"),
    ("p95 ms", "p95"),
    ("p99 ms", "p99"),
    ("max ms", "max"),
)
KIND_COLUMNS = (
    ("phase", "phase"),
    ("query", "kind"),
    ("count", "count"),
    ("errors", "errors"),
    ("QPS", "qps"),
    ("p50 ms", "p50"),
    ("p95 ms", "p95"),
    ("p99 ms", "p99"),
    ("max ms", "max"),
)
PERCENTILE_COLUMNS = (
    ("phase", "phase"),
    ("query", "kind"),
    *((f"p{p:g} ms", f"p{p:g}") for p in hdr.SPECTRUM),
    ("max ms", "max"),
)
SERVER_COLUMNS = (
    ("phase", "phase"),
    ("query", "kind"),
    ("calls", "calls"),
    ("matched", "matched"),
    ("total p50", "total50"),
    ("total p95", "total95"),
    ("exec p50", "exec50"),
    ("exec p95", "exec95"),
    ("compile p50", "compile50"),
    ("queued p95", "queued95"),
    ("mean ± sd", "mean"),
    ("client - server p50", "overhead50"),
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


def export_path(run_id: str, directory: Path | None = None) -> Path:
    return (directory or Path.cwd()) / f"snowload-run-{run_id}.json"


def write_export(path: Path, run: run_pb2.Run, points: Sequence[common_pb2.SeriesPoint]) -> Path:
    path.write_text(fmt.export_json(run, points), encoding="utf-8")
    return path


class DetailScreen(AppScreen):
    DEFAULT_CSS = """
    DetailScreen #detail-title {
        height: 3;
        padding: 0 1;
    }
    DetailScreen RunPlots {
        height: 13;
    }
    DetailScreen #open-kpis {
        margin: 0 1;
    }
    DetailScreen #phases {
        height: auto;
        max-height: 7;
        margin: 0 1;
        border: round $primary 50%;
        border-title-color: $text-muted;
    }
    DetailScreen FindMaxPanel {
        margin: 0 1;
        max-height: 14;
    }
    DetailScreen FindMaxPanel > DataTable {
        max-height: 11;
    }
    DetailScreen #detail-tabs {
        height: 1fr;
        margin: 0 1;
    }
    DetailScreen #server-note {
        padding: 0 1;
        color: $text-muted;
    }
    DetailScreen #extra {
        padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("e", "export", "Export JSON"),
        Binding("n", "next_tab", "Next tab"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(
        self,
        run_id: str,
        *,
        run: run_pb2.Run | None = None,
        points: Sequence[common_pb2.SeriesPoint] | None = None,
    ) -> None:
        """With ``run`` (and ``points``) the screen shows them and calls nothing."""
        super().__init__()
        self.run_id = run_id
        self.frozen = run is not None
        self.run: run_pb2.Run | None = run
        self.points: list[common_pb2.SeriesPoint] = list(points or [])
        self.exported: Path | None = None
        self.histograms: run_pb2.GetRunHistogramsResponse | None = None
        self.histograms_note = "the run's histograms are stored when it ends"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"run {self.run_id} · loading…", id="detail-title")
        open_kpis = KpiBar(id="open-kpis")
        open_kpis.display = False
        yield open_kpis
        yield RunPlots(id="plots")
        yield DataTable(id="phases", cursor_type="row", show_cursor=False)
        yield FindMaxPanel(id="find-max", hidden=True)
        with TabbedContent(id="detail-tabs"):
            with TabPane("Per query kind", id="tab-kinds"):
                yield DataTable(
                    id="kinds", cursor_type="row", show_cursor=False, zebra_stripes=True
                )
            with TabPane("Percentiles", id="tab-percentiles"):
                yield Static("", id="percentiles-note")
                yield DataTable(id="percentiles", cursor_type="row", show_cursor=False)
            with TabPane("SLO", id="tab-slo"):
                yield DataTable(id="slo", cursor_type="row", show_cursor=False)
            with TabPane("Server timings", id="tab-server"):
                yield Static("", id="server-note")
                yield DataTable(id="server", cursor_type="row", show_cursor=False)
            with TabPane("Events & workers", id="tab-extra"), VerticalScroll():
                yield Static("", id="extra")
        yield Footer()

    def on_mount(self) -> None:
        for table_id, columns, title in (
            ("phases", PHASE_COLUMNS, "phase summary"),
            ("kinds", KIND_COLUMNS, "per query kind"),
            ("percentiles", PERCENTILE_COLUMNS, "tail latency, from the stored histograms"),
            ("slo", VERDICT_COLUMNS, "SLO"),
            ("server", SERVER_COLUMNS, "server-side timings (ms)"),
        ):
            table = self.query_one(f"#{table_id}", DataTable)
            table.border_title = title
            for label, key in columns:
                table.add_column(label, key=key)
        if self.frozen:
            self.render_run()
        else:
            self._load()

    @work(exclusive=True, group="detail-load")
    async def _load(self) -> None:
        client = await self.snowload.wait_client()
        title = self.query_one("#detail-title", Static)
        if client is None:
            title.update(self.snowload.connection_status)
            return
        try:
            run = await client.get_run(self.run_id)
            points = await client.get_series(self.run_id)
        except ControllerError as exc:
            title.update(Text(str(exc), "bold red"))
            self.notify(str(exc), title=f"run {self.run_id}", severity="error")
            return
        self.run = run
        self.points = points
        self.render_run()
        if fmt.is_terminal(run.state):
            try:
                self.histograms = await client.get_histograms(self.run_id)
            except ControllerError as exc:
                self.histograms_note = f"no histograms: {exc}"
            self.render_percentiles()

    def render_run(self) -> None:
        run = self.run
        if run is None:
            return
        self.query_one("#detail-title", Static).update(header_text(run))
        open_model = fmt.is_open_model(run, self.points)
        self.query_one("#plots", RunPlots).show(
            self.points, open_model=open_model, target_rate=run.target_rate
        )
        kpis = self.query_one("#open-kpis", KpiBar)
        meas = fmt.measurement(run)
        kpis.display = open_model and meas is not None
        if meas is not None and open_model:
            kpis.show(open_phase_kpis(meas))
        panel = self.query_one("#find-max", FindMaxPanel)
        panel.display = fmt.is_find_max(run)
        if panel.display:
            panel.show(run.find_max, ended=fmt.is_terminal(run.state))
        sync_rows(self.query_one("#phases", DataTable), phase_rows(run))
        sync_rows(self.query_one("#kinds", DataTable), kind_rows(run))
        slo = self.query_one("#slo", DataTable)
        if run.slo:
            slo.border_title = "SLO " + ("passed" if run.slo_passed else "FAILED")
        else:
            slo.border_title = "SLO (none configured or not evaluated)"
        sync_rows(slo, verdict_rows(run))
        self.query_one("#extra", Static).update(extra_text(run))
        server = self.query_one("#server", DataTable)
        server.display = bool(run.server.timings)
        sync_rows(server, server_rows(run))
        status, message = enrichment_status(run)
        note = f"enrichment {status}" + (f": {message}" if message else "")
        if not run.server.timings:
            note += " · no server-side timings for this run"
        self.query_one("#server-note", Static).update(note)
        self.render_percentiles()

    def render_percentiles(self) -> None:
        note = self.query_one("#percentiles-note", Static)
        table = self.query_one("#percentiles", DataTable)
        table.display = self.histograms is not None
        note.display = self.histograms is None
        note.update(self.histograms_note)
        if self.histograms is not None:
            sync_rows(table, percentile_rows(self.histograms))

    def action_next_tab(self) -> None:
        tabs = self.query_one("#detail-tabs", TabbedContent)
        ids = [pane.id for pane in tabs.query(TabPane) if pane.id]
        if tabs.active in ids:
            tabs.active = ids[(ids.index(tabs.active) + 1) % len(ids)]

    def action_reload(self) -> None:
        if not self.frozen:
            self._load()

    def action_export(self) -> None:
        if self.run is None:
            self.notify("Nothing to export yet.", severity="warning")
            return
        self._export(self.run, list(self.points))

    @work(group="detail-export")
    async def _export(self, run: run_pb2.Run, points: list[common_pb2.SeriesPoint]) -> None:
        path = export_path(run.run_id)
        try:
            await asyncio.to_thread(write_export, path, run, points)
        except OSError as exc:
            self.notify(f"cannot write {path}: {exc.strerror}", severity="error")
            return
        self.exported = path
        self.notify(f"exported to {path}", title="Export")
