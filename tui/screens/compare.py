"""Compare two runs: MEASUREMENT per query kind side by side (QPS, p50, p95, p99, error
rate for A and B, absolute and relative delta, and for finished runs long enough the 95 %
interval of the change and a verdict, from snowload/verdicts.py) and the QPS and p95 series
overlaid."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, Static

from snowload import verdicts
from snowload.bootstrap import Difference, Metric, Verdict
from snowload.v1 import common_pb2, run_pb2
from tui import format as fmt
from tui.client import ControllerError
from tui.screens.base import AppScreen
from tui.widgets.plots import Line, LinePlot, load_seconds
from tui.widgets.tables import right, sync_rows

A_COLOR = "cyan"
B_COLOR = "orange"
COLUMNS = (
    ("query", "kind"),
    ("metric", "metric"),
    ("A", "a"),
    ("B", "b"),
    ("B - A", "delta"),
    ("change", "relative"),
)
METRIC_LABEL = {
    "qps": "QPS",
    "p50_ms": "p50 ms",
    "p95_ms": "p95 ms",
    "p99_ms": "p99 ms",
    "error_rate": "error rate",
}


VERDICT_COLUMNS = (("95% CI of change", "ci"), ("verdict", "verdict"))
VERDICT_STYLE = {
    Verdict.SLOWER: "bold red",
    Verdict.MORE_ERRORS: "bold red",
    Verdict.FASTER: "bold green",
    Verdict.FEWER_ERRORS: "bold green",
}


@dataclass(frozen=True)
class Side:
    run: run_pb2.Run
    points: list[common_pb2.SeriesPoint]
    seconds: verdicts.RunSeconds | None = None
    """Per-second histograms for verdicts (None: the run's histograms are not stored yet)."""


def compare_rows(
    a: run_pb2.Run, b: run_pb2.Run, found: verdicts.Comparison | None = None
) -> list[tuple[str, list[Any]]]:
    rows: list[tuple[str, list[Any]]] = []
    for kind, metrics in fmt.compare_runs(a, b).items():
        for i, (metric, cell) in enumerate(metrics.items()):
            better = fmt.is_improvement(metric, cell.delta)
            style = "" if better is None else "green" if better else "red"
            cells: list[Any] = [
                Text(kind if i == 0 else "", "bold"),
                METRIC_LABEL[metric],
                right(fmt.fmt_metric(cell.a, metric)),
                right(fmt.fmt_metric(cell.b, metric)),
                right(fmt.fmt_signed(cell.delta, metric), style),
                right(fmt.fmt_relative(cell.relative), style),
            ]
            if found is not None:
                diff = found.by_kind.get(kind, {}).get(Metric(metric))
                cells += verdict_cells(diff)
            rows.append((f"{kind}/{metric}", cells))
    return rows


def verdict_cells(diff: Difference | None) -> list[Any]:
    if diff is None:
        return [right(""), Text("")]
    if diff.relative_low is not None and diff.relative_high is not None:
        ci = f"{diff.relative_low:+.1%} .. {diff.relative_high:+.1%}"
    elif diff.low is not None and diff.high is not None:
        ci = f"{diff.low:+.4g} .. {diff.high:+.4g}"
    else:
        ci = ""
    return [right(ci), Text(diff.verdict.value, VERDICT_STYLE.get(diff.verdict, "dim"))]


def compare_verdicts(a: Side, b: Side) -> tuple[verdicts.Comparison | None, str]:
    """The verdicts, or why there are none."""
    if a.seconds is None or b.seconds is None:
        return None, ""  # (a run still active, or data given without them)
    try:
        return verdicts.compare(a.seconds, b.seconds), ""
    except verdicts.TooShort as exc:
        return None, f"no verdicts: {exc}"


async def seconds_of(
    client: Any, run: run_pb2.Run, points: list[common_pb2.SeriesPoint]
) -> verdicts.RunSeconds | None:
    try:
        found: run_pb2.GetRunHistogramsResponse = await client.get_histograms(run.run_id)
    except ControllerError:
        return None  # (an active run: its histograms are stored when it ends)
    histograms = [verdicts.SecondHistogram(i.second, "", i.histogram) for i in found.intervals]
    histograms += [
        verdicts.SecondHistogram(i.second, i.kind, i.histogram) for i in found.kind_intervals
    ]
    return verdicts.run_seconds(run.run_id, points, histograms)


def aligned(points: Sequence[common_pb2.SeriesPoint]) -> list[tuple[float, common_pb2.SeriesPoint]]:
    """Points with x = seconds since the measurement started (the warmup is negative)."""
    first = next((p.second for p in points if p.phase == fmt.MEASUREMENT), None)
    base = first - 1 if first is not None else 0
    return [(float(p.second - base), p) for p in points]


def overlay(sides: Sequence[tuple[str, str, Side]], metric: str) -> list[Line]:
    lines = []
    for label, color, side in sides:
        line = Line(label, color)
        for x, p in aligned(load_seconds(side.points)):
            if metric == "qps":
                line.xs.append(x)
                line.ys.append(p.overall.qps)
            elif p.overall.count:
                line.xs.append(x)
                line.ys.append(float(getattr(p.overall, metric)))
        if line.xs:
            lines.append(line)
    return lines


class CompareScreen(AppScreen):
    DEFAULT_CSS = """
    CompareScreen #compare-title {
        height: auto;
        padding: 0 1;
    }
    CompareScreen #compare {
        height: auto;
        max-height: 50%;
        margin: 0 1;
        border: round $primary 50%;
        border-title-color: $text-muted;
    }
    CompareScreen #compare-plots {
        height: 1fr;
        min-height: 12;
    }
    """
    BINDINGS = [
        Binding("x", "swap", "Swap A/B"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, run_a: str, run_b: str, *, data: tuple[Side, Side] | None = None) -> None:
        """With ``data`` the screen shows it and calls nothing."""
        super().__init__()
        self.run_a = run_a
        self.run_b = run_b
        self.frozen = data is not None
        self.sides: tuple[Side, Side] | None = data
        self.verdicts: verdicts.Comparison | None = None
        self.verdict_note = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"A = {self.run_a}   B = {self.run_b} · loading…", id="compare-title")
        yield DataTable(id="compare", cursor_type="row", show_cursor=False)
        with Horizontal(id="compare-plots"):
            yield LinePlot("QPS: A vs B", id="compare-qps")
            yield LinePlot("p95 ms: A vs B", id="compare-p95")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#compare", DataTable)
        table.border_title = "MEASUREMENT per query kind"
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        if self.frozen:
            assert self.sides is not None
            self.verdicts, self.verdict_note = compare_verdicts(*self.sides)
            self.render_compare()
        else:
            self._load()

    @work(exclusive=True, group="compare-load")
    async def _load(self) -> None:
        client = await self.snowload.wait_client()
        title = self.query_one("#compare-title", Static)
        if client is None:
            title.update(self.snowload.connection_status)
            return
        try:
            sides = []
            for run_id in (self.run_a, self.run_b):
                run = await client.get_run(run_id)
                points = await client.get_series(run_id)
                sides.append(Side(run, points, await seconds_of(client, run, points)))
        except ControllerError as exc:
            title.update(Text(str(exc), "bold red"))
            self.notify(str(exc), title="Compare", severity="error")
            return
        self.sides = (sides[0], sides[1])
        self.render_compare()
        # the bootstrap takes a moment: off the event loop, then shown
        self.verdicts, self.verdict_note = await asyncio.to_thread(
            compare_verdicts, sides[0], sides[1]
        )
        self.render_compare()

    def render_compare(self) -> None:
        if self.sides is None:
            return
        a, b = self.sides
        title = Text()
        for label, style, side in (("A", "bold cyan", a), ("B", "bold dark_orange", b)):
            run = side.run
            title.append(f"{label} ", style)
            title.append(f"{run.name} · {run.run_id} · {fmt.state_text(run)}", "bold")
            meas = fmt.measurement(run)
            took = fmt.seconds_of(meas.duration) if meas is not None else None
            title.append(
                f" · {run.workers}x{run.connections} conns"
                + (f" · measured {fmt.fmt_seconds(took)}" if took is not None else "")
                + f" · {fmt.fmt_time(run.create_time)}\n",
                "dim",
            )
        if self.verdict_note:
            title.append(self.verdict_note + "\n", "dim")
        if self.verdicts is not None:
            words = self.verdicts.verdicts()
            title.append("B against A: ", "bold")
            title.append("; ".join(f"{k}: {w}" for k, w in words.items()) + "\n")
        title.rstrip()
        self.query_one("#compare-title", Static).update(title)
        table = self.query_one("#compare", DataTable)
        if self.verdicts is not None and "verdict" not in {c.value for c in table.columns}:
            for label, key in VERDICT_COLUMNS:
                table.add_column(label, key=key)
        sync_rows(table, compare_rows(a.run, b.run, self.verdicts))
        sides = (("A", A_COLOR, a), ("B", B_COLOR, b))
        marker = 0.5 if any(p.phase == fmt.WARMUP for s in (a, b) for p in s.points) else None
        xlabel = "seconds since the measurement started"
        self.query_one("#compare-qps", LinePlot).show(overlay(sides, "qps"), marker, xlabel=xlabel)
        self.query_one("#compare-p95", LinePlot).show(
            overlay(sides, "p95_ms"), marker, xlabel=xlabel
        )

    def action_swap(self) -> None:
        self.run_a, self.run_b = self.run_b, self.run_a
        if self.sides is not None:
            self.sides = (self.sides[1], self.sides[0])
            self.verdicts, self.verdict_note = compare_verdicts(*self.sides)
            self.query_one("#compare", DataTable).clear()
            self.render_compare()

    def action_reload(self) -> None:
        if not self.frozen:
            self._load()
