"""Runs: the history table (ListRuns), a filter, open a run, mark two to compare."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from snowload.v1 import run_pb2
from tui import format as fmt
from tui.client import ControllerError
from tui.screens.base import AppScreen
from tui.widgets.tables import cursor_row_key, right, sync_rows

COLUMNS = (
    ("", "mark"),
    ("name", "name"),
    ("run", "run_id"),
    ("target", "target"),
    ("mode", "mode"),
    ("state", "state"),
    ("start", "start"),
    ("duration", "duration"),
    ("QPS", "qps"),
    ("p95 ms", "p95"),
    ("errors", "errors"),
    ("SLO", "slo"),
)
WIDE = 130
"""From this many columns on, every column in full."""
MEDIUM = 100
"""From this many columns on, all but target and mode; below, the figures and the SLO
before the start time and duration. Figures are abbreviated (k/M), never cut."""
NARROW_OUT = frozenset({"target", "mode", "start", "duration"})
STATE_STYLE = {
    fmt.COMPLETED: "green",
    fmt.FAILED: "bold red",
    fmt.CANCELLED: "yellow",
}


def columns_for(width: int) -> tuple[tuple[str, str], ...]:
    if width >= WIDE:
        return COLUMNS
    out = NARROW_OUT if width < MEDIUM else frozenset({"target", "mode"})
    return tuple(c for c in COLUMNS if c[1] not in out)


def duration_text(run: run_pb2.Run) -> str:
    took = fmt.run_duration_s(run)
    if took is not None:
        return fmt.fmt_seconds(took)
    return "-" if fmt.is_terminal(run.state) else "running"


def run_cells(run: run_pb2.Run, mark: str, width: int = WIDE) -> list[Any]:
    """The cells of ``columns_for(width)``."""
    meas = fmt.measurement(run)
    slo = fmt.slo_text(run)
    wide = width >= WIDE
    number = fmt.fmt_qps if wide else fmt.fmt_short
    state = fmt.state_text(run) if width >= MEDIUM else fmt.state_name(run.state)
    cells = {
        "mark": Text(mark, style="bold reverse") if mark else "",
        "name": run.name,
        "run_id": run.run_id,
        "target": run.target,
        "mode": fmt.mode_name(run.mode),
        "state": Text(state, style=STATE_STYLE.get(run.state, "bold cyan")),
        "start": fmt.fmt_time(run.create_time) if wide else fmt.fmt_time_short(run.create_time),
        "duration": right(duration_text(run)),
        "qps": right(number(meas.overall.qps) if meas else "-"),
        "p95": right(fmt.fmt_ms(meas.overall.p95_ms) if meas else "-"),
        "errors": right(
            (f"{meas.overall.errors:,}" if wide else fmt.fmt_short(meas.overall.errors))
            if meas
            else "-"
        ),
        "slo": Text(slo, style="green" if slo == "pass" else "bold red" if slo == "FAIL" else ""),
    }
    return [cells[key] for _, key in columns_for(width)]


def matches(run: run_pb2.Run, words: Sequence[str]) -> bool:
    hay = " ".join(
        (
            run.name,
            run.run_id,
            run.target,
            fmt.mode_name(run.mode),
            fmt.state_name(run.state),
            run.reason,
            fmt.slo_text(run),
        )
    ).lower()
    return all(w in hay for w in words)


class RunsTable(DataTable[Any]):
    """The runs; Enter opens the one under the cursor (and the footer says so)."""

    BINDINGS = [Binding("enter", "select_cursor", "Open run")]


class RunsScreen(AppScreen):
    DEFAULT_CSS = """
    RunsScreen #filter {
        margin: 0 1;
    }
    RunsScreen #runs {
        height: 1fr;
        margin: 0 1;
    }
    RunsScreen #runs-status {
        height: auto;
        padding: 0 2;
        color: $text-muted;
    }
    RunsScreen #runs-status.error {
        color: $text-error;
        text-style: bold;
    }
    """
    BINDINGS = [
        Binding("enter", "open", "Open run"),
        Binding("space", "mark", "Mark A/B"),
        Binding("c", "compare", "Compare"),
        Binding("slash", "filter", "Filter"),
        Binding("r", "refresh", "Refresh", show=False),  # (it refreshes every 2 s anyway)
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    REFRESH_S = 2.0

    def __init__(self, runs: Sequence[run_pb2.Run] | None = None) -> None:
        """``runs`` shows a fixed list and never calls the controller."""
        super().__init__()
        self.frozen = runs is not None
        self.runs: list[run_pb2.Run] = list(runs or [])
        self.marked: list[str] = []
        self.words: list[str] = []
        self.reachable: bool | None = None
        self._columns: tuple[tuple[str, str], ...] = ()
        self._width = WIDE
        self._prefix = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: name, run id, state, target…  ( / )", id="filter")
        yield RunsTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self._set_columns(self.app.size.width)
        table = self.query_one("#runs", DataTable)
        table.focus()
        self.render_runs()
        if not self.frozen:
            self.set_interval(self.REFRESH_S, self.refresh_runs)
            self.refresh_runs()

    def on_resize(self, event: events.Resize) -> None:
        if self._set_columns(event.size.width):
            self.render_runs(self._prefix)

    def _set_columns(self, width: int) -> bool:
        """The columns for ``width`` (True if they changed)."""
        columns = columns_for(width)
        self._width = width
        if columns == self._columns:
            return False
        self._columns = columns
        table = self.query_one("#runs", DataTable)
        table.clear(columns=True)
        for label, key in columns:
            table.add_column(label, key=key)
        return True

    def on_screen_resume(self) -> None:
        if not self.frozen:
            self.refresh_runs()

    # -- data ----------------------------------------------------------------------------

    def refresh_runs(self) -> None:
        if self.frozen or not self.is_current:
            return
        if self.client is None:
            self.set_status(self.snowload.connection_status, error=self.snowload.failed)
            return
        self._load()

    @work(exclusive=True, group="runs-refresh")
    async def _load(self) -> None:
        client = self.client
        if client is None:
            return
        try:
            runs = await client.list_runs()
            workers = await client.list_workers()
        except ControllerError as exc:
            if self.reachable is not False:
                self.notify(str(exc), title="Controller unreachable", severity="error")
            self.reachable = False
            self.set_status(f"{exc} — retrying every {self.REFRESH_S:g}s", error=True)
            return
        if self.reachable is False:
            self.notify(f"connected to the controller at {client.address}")
        self.reachable = True
        self.runs = runs
        attached = sum(1 for w in workers if w.connected)
        self.render_runs(f"controller {client.address} · {attached} worker(s) attached")

    # -- view ------------------------------------------------------------------------------

    def visible_runs(self) -> list[run_pb2.Run]:
        return [r for r in self.runs if matches(r, self.words)]

    def render_runs(self, prefix: str = "") -> None:
        self._prefix = prefix
        table = self.query_one("#runs", DataTable)
        shown = self.visible_runs()
        rows = []
        for run in shown:
            mark = "AB"[self.marked.index(run.run_id)] if run.run_id in self.marked else ""
            rows.append((run.run_id, run_cells(run, mark, self._width)))
        sync_rows(table, rows)
        parts = [prefix] if prefix else []
        count = f"{len(shown)} of {len(self.runs)} runs" if self.words else f"{len(self.runs)} runs"
        parts.append(count)
        if self.marked:
            parts.append("marked " + ", ".join(f"{'AB'[i]}={m}" for i, m in enumerate(self.marked)))
        elif not self.runs and not self.frozen:
            parts.append("press l to launch a run")
        self.set_status(" · ".join(parts))

    def set_status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#runs-status", Static)
        status.update(text)
        status.set_class(error, "error")

    def run_by_id(self, run_id: str) -> run_pb2.Run | None:
        return next((r for r in self.runs if r.run_id == run_id), None)

    # -- actions -----------------------------------------------------------------------------

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.words = event.value.lower().split()
        self.render_runs()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.query_one("#runs", DataTable).focus()

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.open(event.row_key.value)

    def action_open(self) -> None:
        key = cursor_row_key(self.query_one("#runs", DataTable))
        if key is not None:
            self.open(key)

    def open(self, run_id: str) -> None:
        run = self.run_by_id(run_id)
        if run is not None:
            self.snowload.open_run(run.run_id, run.state)

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.query_one("#runs", DataTable).focus()

    def action_refresh(self) -> None:
        self.refresh_runs()

    def action_mark(self) -> None:
        key = cursor_row_key(self.query_one("#runs", DataTable))
        if key is None:
            return
        if key in self.marked:
            self.marked.remove(key)
        else:
            self.marked.append(key)
            del self.marked[:-2]
        self.render_runs()

    def action_compare(self) -> None:
        pair = list(self.marked)
        if len(pair) == 1:
            key = cursor_row_key(self.query_one("#runs", DataTable))
            if key is not None and key != pair[0]:
                pair.append(key)
        if len(pair) != 2:
            self.notify("Mark two runs with space (A and B), then press c.", title="Compare")
            return
        self.snowload.open_compare(pair[0], pair[1])
