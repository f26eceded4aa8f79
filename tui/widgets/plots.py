"""Plots of a run's per-second series (textual-plotext): QPS and latency percentiles.

Only seconds the load covered in full are drawn (:func:`load_seconds`): the run's partial
last second is in the totals and the exports, not on a rate curve. The warmup is told apart
twice: its QPS points are a series of their own colour, and a
vertical marker shows where the measurement starts. Under an open model (a target arrival
rate) the QPS plot also draws the target rate of every second, and the latency plot the
schedule lag p99 (how late queries started).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual_plotext import PlotextPlot

from snowload.v1 import common_pb2
from tui import format as fmt

WARMUP_COLOR = "orange"
MEASUREMENT_COLOR = "cyan"
OTHER_COLOR = "gray"
PERCENTILE_COLORS = (("p50", "green"), ("p95", "yellow"), ("p99", "red"))
MARKER_COLOR = "magenta"
TARGET_COLOR = "green"
LAG_COLOR = "cyan"
LOAD_PHASES = (fmt.WARMUP, fmt.MEASUREMENT)
QPS_TITLE = "QPS per second"
RATE_TITLE = "QPS: achieved vs target rate"
LATENCY_TITLE = "latency ms: p50 / p95 / p99"
OPEN_LATENCY_TITLE = "latency ms (from intended start) · schedule lag p99"


@dataclass
class Line:
    label: str
    color: str
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)


def load_seconds(points: Sequence[common_pb2.SeriesPoint]) -> list[common_pb2.SeriesPoint]:
    """The seconds to plot: not a partial one (the second the load stopped in, or one that
    only drained queries in flight), which would read as a collapse of QPS and a jump of
    the tail latency. (Runs stored before seconds were marked: their trailing seconds
    without an active connection.)"""
    shown = [p for p in points if not p.partial]
    while shown and shown[-1].active_connections == 0 and shown[-1].phase in LOAD_PHASES:
        shown.pop()
    return shown


def measurement_start(points: Sequence[common_pb2.SeriesPoint]) -> float | None:
    """x of the boundary between warmup and measurement (None without a warmup)."""
    first = next((p for p in points if p.phase == fmt.MEASUREMENT), None)
    if first is None or not any(p.phase == fmt.WARMUP for p in points):
        return None
    return first.second - 0.5


def qps_lines(points: Sequence[common_pb2.SeriesPoint]) -> list[Line]:
    warm = Line("warmup", WARMUP_COLOR)
    meas = Line("measurement", MEASUREMENT_COLOR)
    other = Line("other", OTHER_COLOR)
    for p in points:
        line = warm if p.phase == fmt.WARMUP else meas if p.phase == fmt.MEASUREMENT else other
        line.xs.append(float(p.second))
        line.ys.append(p.overall.qps)
    if warm.xs and meas.xs:
        # join the two so the curve is continuous; the colour changes at the boundary
        warm.xs.append(meas.xs[0])
        warm.ys.append(meas.ys[0])
    return [line for line in (warm, meas, other) if line.xs]


def target_line(points: Sequence[common_pb2.SeriesPoint], fallback: float = 0.0) -> Line | None:
    """The target rate of every second that carries one; without any, ``fallback`` (the
    run's configured rate) over the seconds with load."""
    line = Line("target", TARGET_COLOR)
    for p in points:
        if p.target_rate > 0:
            line.xs.append(float(p.second))
            line.ys.append(p.target_rate)
    if not line.xs and fallback > 0:
        for p in points:
            if p.phase in LOAD_PHASES:
                line.xs.append(float(p.second))
                line.ys.append(fallback)
    return line if line.xs else None


def rate_lines(points: Sequence[common_pb2.SeriesPoint], target_rate: float = 0.0) -> list[Line]:
    """Achieved QPS (coloured by phase) and the target rate, per second."""
    lines = qps_lines(points)
    target = target_line(points, target_rate)
    # the target first: the achieved rate is drawn over it and shows where they part
    return [target, *lines] if target is not None else lines


def latency_lines(points: Sequence[common_pb2.SeriesPoint], *, lag: bool = False) -> list[Line]:
    """p50 / p95 / p99 per second; with ``lag``, the schedule lag p99 too (open model)."""
    lines = []
    for name, color in PERCENTILE_COLORS:
        line = Line(name, color)
        for p in points:
            if p.overall.count:
                line.xs.append(float(p.second))
                line.ys.append(float(getattr(p.overall, f"{name}_ms")))
        if line.xs:
            lines.append(line)
    if lag:
        line = Line("lag p99", LAG_COLOR)
        for p in points:
            if p.overall.count and p.target_rate > 0:
                line.xs.append(float(p.second))
                line.ys.append(p.lag_p99_ms)
        if line.xs:
            lines.append(line)
    return lines


class LinePlot(PlotextPlot):
    """A PlotextPlot drawn from :class:`Line` objects, with an optional vertical marker."""

    DEFAULT_CSS = """
    LinePlot {
        width: 1fr;
        height: 1fr;
        min-height: 8;
    }
    """

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._title = title
        self.lines: list[Line] = []
        self.marker_x: float | None = None

    def on_mount(self) -> None:
        self.show([], None)

    def show(
        self,
        lines: Sequence[Line],
        marker_x: float | None,
        *,
        title: str | None = None,
        xlabel: str = "seconds since start",
        empty: str = "no data yet",
        fit_legend: bool = False,
    ) -> None:
        """``fit_legend``: raise the y axis so that a legend of more than two lines hides
        no data (else a fixed headroom)."""
        self.lines = list(lines)
        self.marker_x = marker_x
        plt = self.plt
        plt.clear_figure()
        plt.title(title or self._title)
        plt.xlabel(xlabel)
        ys = [y for line in lines for y in line.ys]
        if not ys:
            plt.text(empty, 0.5, 0.5, alignment="center")
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            self.refresh()
            return
        for line in lines:
            plt.plot(line.xs, line.ys, color=line.color, label=line.label, marker="braille")
        top = max(ys)
        # headroom above the curve for the legend
        headroom = self._headroom(len(lines)) if fit_legend else 1.35
        plt.ylim(0, top * headroom if top > 0 else 1)
        if marker_x is not None:
            plt.vline(marker_x, MARKER_COLOR)
        self.refresh()

    def _headroom(self, entries: int) -> float:
        """How far above the highest point the y axis goes, so that the legend (a row per
        line, top left) hides no data."""
        if entries <= 2:
            return 1.35
        # the canvas is the widget less title, frame, tick labels and x label
        rows = max(entries + 2, (self.size.height or 14) - 5)
        return 1 / (1 - (entries + 0.5) / rows)


class RunPlots(Horizontal):
    """QPS and latency percentiles of one run, side by side; under an open model, the QPS
    plot is achieved vs target rate and the latency plot adds the schedule lag."""

    DEFAULT_CSS = """
    RunPlots {
        height: 14;
    }
    """

    open_model = False
    """Whether the last ``show`` drew the open-model plots."""

    def compose(self) -> ComposeResult:
        yield LinePlot(QPS_TITLE, id="qps-plot")
        yield LinePlot(LATENCY_TITLE, id="latency-plot")

    def show(
        self,
        points: Sequence[common_pb2.SeriesPoint],
        *,
        open_model: bool = False,
        target_rate: float = 0.0,
    ) -> None:
        """``open_model``: the run's mode says so (seconds that carry a target rate say so
        too); ``target_rate``: the configured rate, for seconds that carry none."""
        points = load_seconds(points)
        marker = measurement_start(points)
        self.open_model = open_model or any(p.target_rate > 0 for p in points)
        empty = "waiting for the first complete second"
        if self.open_model:
            self.query_one("#qps-plot", LinePlot).show(
                rate_lines(points, target_rate),
                marker,
                title=RATE_TITLE,
                empty=empty,
                fit_legend=True,
            )
        else:
            self.query_one("#qps-plot", LinePlot).show(qps_lines(points), marker, empty=empty)
        self.query_one("#latency-plot", LinePlot).show(
            latency_lines(points, lag=self.open_model),
            marker,
            title=OPEN_LATENCY_TITLE if self.open_model else LATENCY_TITLE,
            empty=empty,
            fit_legend=self.open_model,
        )
