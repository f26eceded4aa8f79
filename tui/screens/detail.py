"""Run detail: a finished (or any) run from GetRun and GetRunSeries — plots, phase summary,
per-kind table, SLO verdicts, enrichment, workers and errors; export to JSON. A find_max run
adds its step table and conclusion; an open-model run its target vs achieved rate plot and
the MEASUREMENT's schedule figures (lag, late, dropped, service time)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from snowload.targets import data_dir
from snowload.v1 import common_pb2, run_pb2
from tui import format as fmt
from tui.client import ControllerError
from tui.live_model import open_phase_kpis
from tui.screens.base import AppScreen
from tui.screens.detail_view import (
    KIND_COLUMNS,
    PERCENTILE_COLUMNS,
    PHASE_COLUMNS,
    SERVER_COLUMNS,
    VERDICT_COLUMNS,
    enrichment_status,
    extra_text,
    header_text,
    kind_rows,
    percentile_rows,
    phase_rows,
    server_rows,
)
from tui.screens.query import QueryScreen
from tui.widgets.findmax import FindMaxPanel
from tui.widgets.kpi import KpiBar
from tui.widgets.plots import RunPlots
from tui.widgets.queries import QUERY_COLUMNS, query_rows
from tui.widgets.tables import fit_rows, sync_rows, verdict_rows

__all__ = ["DetailScreen", "export_path", "header_text", "write_export"]

EXPORT_NOTICE_S = 15.0
"""How long the notice that says where an export went stays up."""


def export_dir() -> Path:
    """Where ``e`` writes: ``exports/`` in the snowload data directory (next to the results
    database), whatever directory the TUI was started from."""
    return data_dir() / "exports"


def export_path(run_id: str, directory: Path | None = None) -> Path:
    return (directory or export_dir()).resolve() / f"snowload-run-{run_id}.json"


def write_export(path: Path, run: run_pb2.Run, points: Sequence[common_pb2.SeriesPoint]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(fmt.export_json(run, points), encoding="utf-8")
    return path


class DetailScreen(AppScreen):
    DEFAULT_CSS = """
    DetailScreen #detail-title {
        height: auto;
        min-height: 3;
        padding: 0 1;
    }
    DetailScreen RunPlots {
        height: 13;
    }
    DetailScreen.-short RunPlots {
        height: 10;
    }
    DetailScreen.-short #detail-tabs {
        min-height: 10;
    }
    DetailScreen.-narrow #open-kpis {
        layout: grid;
        grid-size: 4;
        grid-rows: 3;
        height: auto;
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
    AUTO_FOCUS = ""
    BINDINGS = [
        Binding("e", "export", "Export JSON"),
        Binding("n", "next_tab", "Next tab"),
        Binding("r", "reload", "Reload", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(
        self,
        run_id: str,
        *,
        run: run_pb2.Run | None = None,
        points: Sequence[common_pb2.SeriesPoint] | None = None,
        queries: Sequence[common_pb2.QueryEntry] | None = None,
    ) -> None:
        """With ``run`` (and ``points``, ``queries``) the screen shows them and calls
        nothing."""
        super().__init__()
        self.run_id = run_id
        self.frozen = run is not None
        self.run: run_pb2.Run | None = run
        self.points: list[common_pb2.SeriesPoint] = list(points or [])
        self.exported: Path | None = None
        self.histograms: run_pb2.GetRunHistogramsResponse | None = None
        self.histograms_note = "the run's histograms are stored when it ends"
        self.queries: list[common_pb2.QueryEntry] | None = (
            list(queries) if queries is not None else None
        )
        self.queries_note = "the run's query log is stored when it ends"

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
            with TabPane("Queries", id="tab-queries"):
                yield Static("", id="queries-note")
                yield DataTable(id="queries", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        for table_id, title in (
            ("phases", "phase summary"),
            ("kinds", "per query kind"),
            ("percentiles", "tail latency, from the stored histograms"),
            ("slo", "SLO"),
            ("server", "server-side timings (ms)"),
            ("queries", "query log: slowest, first failures, sample (enter: details)"),
        ):
            self.query_one(f"#{table_id}", DataTable).border_title = title
        slo = self.query_one("#slo", DataTable)
        for label, key in VERDICT_COLUMNS:
            slo.add_column(label, key=key)
        # the per-kind table takes the focus without scrolling the title out of view
        self.query_one("#kinds", DataTable).focus(scroll_visible=False)
        if self.frozen:
            self.render_run()
        else:
            self._load()

    def on_resize(self, _event: events.Resize) -> None:
        # the tables choose their columns for their laid-out width
        self.call_after_refresh(self.render_run)

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
            try:
                self.queries = await client.get_queries(self.run_id)
            except ControllerError as exc:
                self.queries_note = f"no query log: {exc}"
            self.render_queries()

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
        fit_rows(self.query_one("#phases", DataTable), PHASE_COLUMNS, phase_rows(run))
        fit_rows(self.query_one("#kinds", DataTable), KIND_COLUMNS, kind_rows(run))
        slo = self.query_one("#slo", DataTable)
        if run.slo:
            slo.border_title = "SLO " + ("passed" if run.slo_passed else "FAILED")
        else:
            slo.border_title = "SLO (none configured or not evaluated)"
        sync_rows(slo, verdict_rows(run))
        self.query_one("#extra", Static).update(extra_text(run))
        server = self.query_one("#server", DataTable)
        server.display = bool(run.server.timings)
        fit_rows(server, SERVER_COLUMNS, server_rows(run))
        status, message = enrichment_status(run)
        note = f"enrichment {status}" + (f": {message}" if message else "")
        if not run.server.timings:
            note += " · no server-side timings for this run"
        self.query_one("#server-note", Static).update(note)
        self.render_percentiles()
        self.render_queries()

    def render_queries(self) -> None:
        note = self.query_one("#queries-note", Static)
        table = self.query_one("#queries", DataTable)
        if self.queries is not None and not self.queries:
            self.queries_note = "no queries were logged for this run"
        shown = bool(self.queries)
        table.display = shown
        note.display = not shown
        note.update(self.queries_note)
        if self.queries:
            fit_rows(table, QUERY_COLUMNS, query_rows(self.queries))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a query log row: that entry in full."""
        if event.data_table.id != "queries" or self.run is None or not self.queries:
            return
        wanted = str(event.row_key.value)
        entry = next((e for e in self.queries if str(e.entry_id) == wanted), None)
        if entry is not None:
            self.app.push_screen(QueryScreen(self.run, entry))

    def render_percentiles(self) -> None:
        note = self.query_one("#percentiles-note", Static)
        table = self.query_one("#percentiles", DataTable)
        table.display = self.histograms is not None
        note.display = self.histograms is None
        note.update(self.histograms_note)
        if self.histograms is not None:
            fit_rows(table, PERCENTILE_COLUMNS, percentile_rows(self.histograms))

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
        self.notify(
            f"Run {run.run_id} (summary and per-second series) written to\n{path}",
            title="Exported as JSON",
            timeout=EXPORT_NOTICE_S,
        )
