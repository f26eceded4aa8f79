"""Plots of a run's per-second series (textual-plotext): QPS and latency percentiles.

The warmup is told apart twice: its QPS points are a series of their own colour, and a
vertical marker shows where the measurement starts.
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


@dataclass
class Line:
    label: str
    color: str
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)


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


def latency_lines(points: Sequence[common_pb2.SeriesPoint]) -> list[Line]:
    lines = []
    for name, color in PERCENTILE_COLORS:
        line = Line(name, color)
        for p in points:
            if p.overall.count:
                line.xs.append(float(p.second))
                line.ys.append(float(getattr(p.overall, f"{name}_ms")))
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
    ) -> None:
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
        plt.ylim(0, top * 1.35 if top > 0 else 1)
        if marker_x is not None:
            plt.vline(marker_x, MARKER_COLOR)
        self.refresh()


class RunPlots(Horizontal):
    """QPS and latency percentiles of one run, side by side."""

    DEFAULT_CSS = """
    RunPlots {
        height: 14;
    }
    """

    def compose(self) -> ComposeResult:
        yield LinePlot("QPS (warmup: orange, measurement: cyan)", id="qps-plot")
        yield LinePlot("latency ms: p50 / p95 / p99", id="latency-plot")

    def show(self, points: Sequence[common_pb2.SeriesPoint]) -> None:
        marker = measurement_start(points)
        self.query_one("#qps-plot", LinePlot).show(
            qps_lines(points), marker, empty="waiting for the first complete second"
        )
        self.query_one("#latency-plot", LinePlot).show(
            latency_lines(points), marker, empty="waiting for the first complete second"
        )
