"""Live: one running run, followed over WatchRun by a single exclusive worker.

The worker feeds a :class:`LiveModel` with every message and posts ``Changed``, which
``can_replace`` an older ``Changed`` still queued: a burst of updates renders once, with the
newest data. When the run ends the screen shows the final state and reason and stays.

A find_max run adds its step table; an open-model run plots achieved against target rate
and shows the schedule lag; while the measurement runs the SLO table compares each limit
with the measurement so far (a guess: the verdicts come at the end).
"""

from __future__ import annotations

from typing import Any

import grpc
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, RichLog, Static

from snowload.v1 import common_pb2, run_pb2
from tui import format as fmt
from tui.client import ControllerError
from tui.live_model import Connection, Level, LiveModel
from tui.screens.base import AppScreen
from tui.screens.confirm import ConfirmScreen
from tui.watcher import follow_run
from tui.widgets.findmax import FindMaxPanel
from tui.widgets.kpi import KpiBar
from tui.widgets.plots import RunPlots
from tui.widgets.tables import Column, fit_rows, right, stats_cells, sync_rows, verdict_rows
from tui.widgets.timeline import PhaseTimeline

LEVEL_STYLE = {
    Level.INFO: "",
    Level.PHASE: "bold cyan",
    Level.OK: "green",
    Level.WARN: "yellow",
    Level.ERROR: "red",
}
KIND_COLUMNS = (
    Column("query", "kind"),
    Column("count", "count"),
    Column("errors", "errors"),
    Column("QPS", "qps"),
    Column("p50 ms", "p50", drop=1),
    Column("p95 ms", "p95"),
    Column("p99 ms", "p99"),
    Column("max ms", "max", drop=2),
)
WORKER_COLUMNS = (
    Column("worker", "id"),
    Column("host", "host", drop=3),
    Column("state", "state"),
    Column("heartbeat", "hb", drop=1),
    Column("conns", "conns"),
    Column("CPU", "cpu"),
    Column("RSS", "rss", drop=2),
    Column("clock offset", "offset", drop=4),
)
"""On a narrow screen the least needed columns go first (``drop``), figures stay whole."""
SLO_COLUMNS = (
    ("scope", "scope"),
    ("metric", "metric"),
    ("limit", "limit"),
    ("actual", "actual"),
    ("verdict", "verdict"),
)


def kind_rows(by_kind: dict[str, common_pb2.LatencyStats]) -> list[tuple[str, list[Any]]]:
    return [(kind, [kind, *stats_cells(s)]) for kind, s in sorted(by_kind.items())]


def slo_rows(model: LiveModel) -> list[tuple[str, list[Any]]]:
    run = model.run
    rows: list[tuple[str, list[Any]]] = []
    live = model.slo_live()
    if live is not None and not (run is not None and run.slo):
        for i, item in enumerate(live):
            lim = item.limit
            op = "≥" if lim.metric == "min_qps" else "≤"
            passing = item.passing
            verdict = (
                Text("waiting", "dim")
                if passing is None
                else Text("passing", "green")
                if passing
                else Text("failing", "bold yellow")
            )
            actual = "-" if item.actual is None else fmt.fmt_slo_value(lim.metric, item.actual)
            rows.append(
                (
                    f"l{i}",
                    [
                        lim.kind or "overall",
                        lim.metric,
                        right(f"{op} {fmt.fmt_slo_value(lim.metric, lim.limit)}"),
                        right(actual),
                        verdict,
                    ],
                )
            )
        return rows
    if run is not None and run.slo:
        return verdict_rows(run)
    pending = "not evaluated" if model.terminal else "at the end"
    for i, lim in enumerate(model.slo_limits):
        op = "≥" if lim.metric == "min_qps" else "≤"
        rows.append(
            (
                f"l{i}",
                [
                    lim.kind or "overall",
                    lim.metric,
                    right(f"{op} {fmt.fmt_slo_value(lim.metric, lim.limit)}"),
                    right("-"),
                    Text(pending, "dim"),
                ],
            )
        )
    return rows


def worker_rows(model: LiveModel) -> list[tuple[str, list[Any]]]:
    """Each worker as its heartbeats show it; once the run has ended, its final state in
    the run (FINISHED, or LOST), not the DRAINING of its last heartbeat."""
    rows: list[tuple[str, list[Any]]] = []
    ended = model.terminal
    lost_in_run = {
        w.worker_id for w in (model.run.run_workers if model.run is not None else ()) if w.lost
    }
    for w in model.workers:
        lost = not w.connected or w.worker_id in lost_in_run
        state = "LOST" if lost else "FINISHED" if ended else fmt.worker_state_name(w.state)
        style = "bold red" if lost else "green" if ended else ""
        offset_ms = fmt.seconds_of(w.clock_offset) * 1000
        uncertainty_ms = fmt.seconds_of(w.clock_uncertainty) * 1000
        rows.append(
            (
                w.worker_id,
                [
                    w.worker_id,
                    w.host,
                    Text(state, style),
                    right("-" if ended else f"{fmt.seconds_of(w.heartbeat_age):.1f}s"),
                    right("-" if ended else str(w.active_connections)),
                    right(f"{w.cpu_percent:.0f}%"),
                    right(fmt.fmt_bytes(w.rss_bytes)),
                    right(f"{offset_ms:+.1f} ±{uncertainty_ms:.1f} ms"),
                ],
            )
        )
    return rows


def stop_refused_text(run: run_pb2.Run) -> str:
    """Why a stop did nothing: the run ended (or is ending) on its own."""
    state = fmt.state_name(run.state) + (f", {run.reason}" if run.reason else "")
    if fmt.is_terminal(run.state):
        return f"Run {run.run_id} has already ended ({state}): there is nothing to stop."
    return f"Run {run.run_id} is already finishing ({state}): its load has stopped."


def title_text(model: LiveModel, run: run_pb2.Run) -> Text:
    text = Text()
    text.append(run.name or "(unnamed)", "bold")
    text.append(f" · run {run.run_id} · {run.target} · {fmt.mode_name(run.mode)} · ")
    text.append(f"{run.workers} worker(s) x {run.connections} connections   ")
    state_style = "bold cyan"
    if model.terminal:
        state_style = "bold green" if run.state == fmt.COMPLETED else "bold red"
    text.append(fmt.state_name(run.state), state_style)
    if run.reason:
        text.append(f" ({run.reason})", state_style)
    if run.degraded:
        text.append("  DEGRADED", "bold yellow")
    if run.warnings:
        text.append(f"  {len(run.warnings)} warning(s)", "yellow")
    if run.message:
        text.append(f": {run.message}")
    return text


class LiveScreen(AppScreen):
    DEFAULT_CSS = """
    LiveScreen #live-title {
        height: auto;
        padding: 0 1;
        text-style: bold;
    }
    LiveScreen #live-status {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    LiveScreen #live-status.warn {
        color: $text-warning;
        text-style: bold;
    }
    LiveScreen .row {
        height: 1fr;
        min-height: 6;
    }
    LiveScreen .row > * {
        width: 1fr;
        height: 1fr;
        border: round $primary 50%;
        border-title-color: $text-muted;
    }
    LiveScreen #slo, LiveScreen #events {
        width: 2fr;
    }
    LiveScreen #kinds, LiveScreen #workers {
        width: 3fr;
    }
    LiveScreen.find-max RunPlots {
        height: 11;
    }
    LiveScreen.-short RunPlots {
        height: 10;
    }
    LiveScreen.-narrow KpiBar {
        layout: grid;
        grid-size: 5;
        grid-rows: 3;
        height: auto;
    }
    LiveScreen.-narrow .row {
        layout: vertical;
        height: auto;
    }
    LiveScreen.-narrow .row > * {
        width: 1fr;
        height: auto;
        max-height: 12;
    }
    LiveScreen.-narrow #events {
        height: 10;
    }
    """
    AUTO_FOCUS = ""
    """The per-kind table takes the focus on mount, without scrolling the screen to it
    (on a short terminal that would hide the title and the KPIs)."""
    BINDINGS = [
        Binding("s", "stop", "Stop run"),
        Binding("d", "detail", "Details"),
        Binding("escape", "back", "Back"),
    ]

    class Changed(Message):
        """The model changed; a newer one supersedes an older one still queued."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, LiveScreen.Changed)

    def __init__(self, run_id: str, *, model: LiveModel | None = None) -> None:
        """With ``model`` the screen shows it as it is and opens no stream."""
        super().__init__()
        self.run_id = run_id
        self.frozen = model is not None
        self.model = model if model is not None else LiveModel(run_id)
        self._events_shown = 0
        self._plotted: tuple[int, int, bool] = (-1, -1, False)
        self._was_terminal = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"run {self.run_id}", id="live-title", markup=False)
        yield Static("connecting…", id="live-status", markup=False)
        yield PhaseTimeline(id="timeline")
        yield KpiBar(id="kpis")
        yield RunPlots(id="plots")
        yield FindMaxPanel(id="find-max", hidden=True)
        with Horizontal(classes="row"):
            yield DataTable(id="kinds", cursor_type="row", show_cursor=False, zebra_stripes=True)
            yield DataTable(id="slo", cursor_type="row", show_cursor=False)
        with Horizontal(classes="row"):
            yield DataTable(id="workers", cursor_type="row", show_cursor=False, zebra_stripes=True)
            yield RichLog(id="events", wrap=True, markup=False, max_lines=1000)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#kinds", DataTable).border_title = "per query kind"
        self.query_one("#workers", DataTable).border_title = "workers"
        slo = self.query_one("#slo", DataTable)
        slo.border_title = "SLO"
        for label, key in SLO_COLUMNS:
            slo.add_column(label, key=key)
        self.query_one("#events", RichLog).border_title = "events"
        # not the first table in the DOM: that is the (often hidden) find_max steps table
        self.query_one("#kinds", DataTable).focus(scroll_visible=False)
        self.render_model()
        if not self.frozen:
            self._follow()

    def on_resize(self, _event: events.Resize) -> None:
        # the tables choose their columns for their laid-out width
        self.call_after_refresh(self.render_model)

    # -- the stream ---------------------------------------------------------------------

    @work(exclusive=True, group="live-stream")
    async def _follow(self) -> None:
        client = await self.snowload.wait_client()
        if client is None:
            self.model.give_up(self.snowload.connection_status)
            self.render_model()
            return
        await follow_run(client, self.model, self._changed)

    def _changed(self) -> None:
        self.post_message(self.Changed())

    def on_live_screen_changed(self, _message: LiveScreen.Changed) -> None:
        self.render_model()

    # -- rendering ---------------------------------------------------------------------------

    def render_model(self) -> None:
        model = self.model
        run = model.run
        if run is not None:
            self.query_one("#live-title", Static).update(title_text(model, run))
        self._render_status()
        self.query_one("#timeline", PhaseTimeline).show(model.timeline(), model.total_elapsed())
        self.query_one("#kpis", KpiBar).show(model.kpis())
        self._render_load()
        phase, by_kind = model.by_kind()
        kinds = self.query_one("#kinds", DataTable)
        kinds.border_title = f"per query kind · {phase}" if phase else "per query kind"
        fit_rows(kinds, KIND_COLUMNS, kind_rows(by_kind))
        fit_rows(self.query_one("#workers", DataTable), WORKER_COLUMNS, worker_rows(model))
        slo = self.query_one("#slo", DataTable)
        if run is not None and run.slo:
            slo.border_title = "SLO " + ("passed" if run.slo_passed else "FAILED")
        elif model.slo_live() is not None:
            slo.border_title = "SLO · measurement so far (verdicts at the end)"
        else:
            slo.border_title = "SLO limits" if model.slo_limits else "SLO (none configured)"
        sync_rows(slo, slo_rows(model))
        log = self.query_one("#events", RichLog)
        for line in model.events:
            if line.seq > self._events_shown:
                entry = Text(fmt.fmt_clock(line.at) + "  ", "dim")
                entry.append(line.text, LEVEL_STYLE[line.level])
                log.write(entry)
                self._events_shown = line.seq
        if model.terminal != self._was_terminal:
            self._was_terminal = model.terminal
            self.refresh_bindings()

    def _render_load(self) -> None:
        """The plots (redrawn only for a new second) and the find_max steps."""
        model = self.model
        open_model = model.open_model
        key = (len(model.points), model.points[-1].second if model.points else -1, open_model)
        if key != self._plotted or model.final:
            self._plotted = key
            self.query_one("#plots", RunPlots).show(
                list(model.points),
                open_model=open_model,
                target_rate=model.run.target_rate if model.run is not None else 0.0,
            )
        found = model.find_max
        self.set_class(found is not None, "find-max")
        panel = self.query_one("#find-max", FindMaxPanel)
        panel.display = found is not None
        if found is not None:
            panel.show(found, current_level=model.target_level(), ended=model.terminal)

    def _render_status(self) -> None:
        model = self.model
        status = self.query_one("#live-status", Static)
        address = self.client.address if self.client is not None else "-"
        conn = model.connection
        if conn is Connection.LIVE:
            text = f"live from {address} · {model.updates} updates"
        elif conn is Connection.RECONNECTING:
            text = f"stream lost, reconnecting: {model.connection_detail}"
        elif conn is Connection.ENDED:
            text = "the run has ended · d: details · escape: back"
        elif conn is Connection.GAVE_UP:
            text = model.connection_detail
        else:
            text = f"connecting to {address}…"
        if self.frozen and conn is not Connection.ENDED:
            text = "snapshot"
        status.update(text)
        status.set_class(conn in (Connection.RECONNECTING, Connection.GAVE_UP), "warn")

    # -- actions -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return not self.model.terminal
        if action == "detail":
            return self.model.terminal
        return True

    def action_stop(self) -> None:
        if self.model.terminal:
            self.notify("The run has already ended.")
            return
        name = self.model.run.name if self.model.run is not None else ""
        self.app.push_screen(
            ConfirmScreen(f"Stop run {self.run_id} {name}?\nIt ends as CANCELLED.", yes="Stop"),
            self._confirmed,
        )

    def _confirmed(self, stop: bool | None) -> None:
        if not stop:
            return
        if self.model.terminal and self.model.run is not None:
            self._nothing_to_stop(self.model.run)  # it ended while the question was open
            return
        self._stop()

    @work(group="live-stop")
    async def _stop(self) -> None:
        client = self.client
        if client is None:
            return
        try:
            await client.stop_run(self.run_id)
        except ControllerError as exc:
            if exc.code is grpc.StatusCode.FAILED_PRECONDITION:
                # it ended (or is ending) on its own between the question and the answer
                try:
                    self._nothing_to_stop(await client.get_run(self.run_id))
                    return
                except ControllerError:
                    pass
            self.notify(str(exc), title="StopRun failed", severity="error")
            return
        self.notify(f"stop requested for run {self.run_id}")

    def _nothing_to_stop(self, run: run_pb2.Run) -> None:
        self.notify(stop_refused_text(run), title="Nothing to stop")

    def action_detail(self) -> None:
        self.snowload.open_detail(self.run_id)
