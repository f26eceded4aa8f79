"""Line charts as inline SVG, drawn on the Python side: no script runs when the report is
opened, and a test can count what was drawn (each line is one ``<polyline>`` whose
``points`` hold one vertex per value, each marker one ``<circle>``).

Axes are linear, or logarithmic (base 10) for the latency spectrum. Tick values are
"nice" numbers (1, 2, 5 times a power of ten); a log axis may name its ticks itself
(the spectrum labels ``1/(1-p)`` with the percentile p).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = (
    *("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9"),
    *("#8c564b", "#999999", "#17becf"),
)
"""Okabe and Ito's palette (told apart with any common colour blindness), black left
out (it draws "all kinds"), two more so that nine lines differ."""
BLACK = "#000000"

Point = tuple[float, float]


@dataclass(frozen=True)
class Axis:
    label: str
    log: bool = False
    ticks: Sequence[tuple[float, str]] = ()
    """Fixed ticks (value, label); empty: nice numbers over the data's range."""
    floor: float | None = 0.0
    """A linear axis starts here at most (0: rates and latencies start at zero)."""


@dataclass(frozen=True)
class Line:
    name: str
    points: Sequence[Point]
    color: str
    dashed: bool = False
    data: dict[str, str] = field(default_factory=dict)
    """``data-*`` attributes of the polyline (what it draws, for readers and tests)."""


@dataclass(frozen=True)
class Markers:
    """Points drawn on their own, not joined to a line (seconds the load did not cover
    in full: their rate is over the part covered, so joining them would draw a dip)."""

    name: str
    points: Sequence[Point]
    color: str
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Band:
    """A shaded span of the x axis (the warmup, set apart from the measurement)."""

    x0: float
    x1: float
    label: str


WIDTH = 880
HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 64, 30, 44, 40


def chart(
    title: str,
    x: Axis,
    y: Axis,
    lines: Sequence[Line],
    markers: Sequence[Markers] = (),
    bands: Sequence[Band] = (),
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """One chart; 'no data' in its frame when there is nothing to draw."""
    drawn: list[Line | Markers] = [*lines, *markers]
    xs = [p[0] for s in drawn for p in s.points]
    ys = [p[1] for s in drawn for p in s.points]
    xs += [v for b in bands for v in (b.x0, b.x1)]
    out = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        f'<text class="title" x="{LEFT}" y="16">{escape(title)}</text>',
    ]
    if not ys:
        out.append(
            f'<text class="empty" x="{width / 2:.0f}" y="{height / 2:.0f}" '
            f'text-anchor="middle">no data</text></svg>'
        )
        return "".join(out)
    sx = _scale(x, xs, LEFT, width - RIGHT, headroom=0.0)
    sy = _scale(y, ys, height - BOTTOM, TOP, headroom=0.04)
    plot_bottom, plot_top = height - BOTTOM, TOP
    for band in bands:
        x0, x1 = sx.at(band.x0), sx.at(band.x1)
        out.append(
            f'<rect class="band" x="{x0:.1f}" y="{plot_top}" width="{max(x1 - x0, 0.5):.1f}" '
            f'height="{plot_bottom - plot_top}"><title>{escape(band.label)}</title></rect>'
            f'<text class="band-label" x="{x0 + 3:.1f}" y="{plot_top + 11}">'
            f"{escape(band.label)}</text>"
        )
    out.extend(_x_axis(sx, x, plot_bottom, plot_top, height))
    out.extend(_y_axis(sy, y, width))
    for line in lines:
        if not line.points:
            continue
        pts = " ".join(f"{sx.at(px):.1f},{sy.at(py):.1f}" for px, py in line.points)
        dash = ' stroke-dasharray="4 3"' if line.dashed else ""
        out.append(
            f'<polyline class="series"{_data(line.data)} points="{pts}" fill="none" '
            f'stroke="{line.color}"{dash}><title>{escape(line.name)}</title></polyline>'
        )
    for group in markers:
        if not group.points:
            continue
        out.append(f'<g class="markers"{_data(group.data)}><title>{escape(group.name)}</title>')
        out.extend(
            f'<circle cx="{sx.at(px):.1f}" cy="{sy.at(py):.1f}" r="2.5" fill="none" '
            f'stroke="{group.color}"/>'
            for px, py in group.points
        )
        out.append("</g>")
    out.append(_legend([*lines, *markers], width))
    out.append("</svg>")
    return "".join(out)


def _data(attrs: dict[str, str]) -> str:
    return "".join(f' data-{k}="{escape(v)}"' for k, v in attrs.items())


@dataclass(frozen=True)
class _Scale:
    lo: float
    hi: float
    px_lo: float
    px_hi: float
    log: bool

    def at(self, value: float) -> float:
        v, lo, hi = value, self.lo, self.hi
        if self.log:
            v, lo, hi = math.log10(max(v, 1e-12)), math.log10(lo), math.log10(hi)
        frac = (v - lo) / (hi - lo) if hi > lo else 0.5
        return self.px_lo + frac * (self.px_hi - self.px_lo)


def _scale(axis: Axis, values: list[float], px_lo: float, px_hi: float, headroom: float) -> _Scale:
    if axis.log:
        positive = [v for v in values if v > 0] or [1.0]
        lo = 10 ** math.floor(math.log10(min(positive)))
        hi = 10 ** math.ceil(math.log10(max(positive)))
        return _Scale(lo, hi if hi > lo else lo * 10, px_lo, px_hi, log=True)
    lo, hi = min(values), max(values)
    if axis.floor is not None:
        lo = min(lo, axis.floor)
    if hi <= lo:
        hi = lo + 1.0
    hi += (hi - lo) * headroom  # (a line at the maximum stays off the frame)
    step = nice_step(hi - lo)
    return _Scale(
        math.floor(lo / step) * step, math.ceil(hi / step) * step, px_lo, px_hi, log=False
    )


def nice_step(span: float, target: int = 5) -> float:
    """A tick step of 1, 2 or 5 times a power of ten giving about ``target`` ticks."""
    raw = span / target
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0):
        if raw <= m * power:
            return m * power
    return 10.0 * power


def _ticks(scale: _Scale, axis: Axis) -> list[tuple[float, str]]:
    if axis.ticks:
        return [(v, t) for v, t in axis.ticks if scale.lo <= v <= scale.hi]
    if scale.log:
        out = []
        v = scale.lo
        while v <= scale.hi * 1.0001:
            out.append((v, f"{v:g}"))
            v *= 10
        return out
    step = nice_step(scale.hi - scale.lo)
    n = round((scale.hi - scale.lo) / step)
    return [(scale.lo + i * step, number(scale.lo + i * step)) for i in range(n + 1)]


def number(value: float) -> str:
    """A tick label: 1.5k, 2M, 0.25."""
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:g}M"
    if a >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:.6g}"


def _x_axis(scale: _Scale, axis: Axis, bottom: float, top: float, height: int) -> list[str]:
    out = [
        f'<line class="axis" x1="{scale.px_lo}" y1="{bottom}" x2="{scale.px_hi}" y2="{bottom}"/>'
    ]
    for v, label in _ticks(scale, axis):
        px = scale.at(v)
        out.append(
            f'<line class="grid" x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}"/>'
            f'<text class="tick" x="{px:.1f}" y="{bottom + 14}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    out.append(
        f'<text class="axis-label" x="{(scale.px_lo + scale.px_hi) / 2:.0f}" y="{height - 6}" '
        f'text-anchor="middle">{escape(axis.label)}</text>'
    )
    return out


def _y_axis(scale: _Scale, axis: Axis, width: int) -> list[str]:
    out = [f'<line class="axis" x1="{LEFT}" y1="{scale.px_lo}" x2="{LEFT}" y2="{scale.px_hi}"/>']
    for v, label in _ticks(scale, axis):
        py = scale.at(v)
        out.append(
            f'<line class="grid" x1="{LEFT}" y1="{py:.1f}" x2="{width - RIGHT}" y2="{py:.1f}"/>'
            f'<text class="tick" x="{LEFT - 4}" y="{py + 4:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
    mid = (scale.px_lo + scale.px_hi) / 2
    out.append(
        f'<text class="axis-label" x="12" y="{mid:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {mid:.0f})">{escape(axis.label)}</text>'
    )
    return out


def _legend(items: Sequence[Line | Markers], width: int) -> str:
    """Names and colours on the line under the title, left to right: a swatch per line,
    a hollow circle for markers (one entry per name)."""
    seen: dict[str, Line | Markers] = {}
    for item in items:
        if item.points and item.name not in seen:
            seen[item.name] = item
    out = []
    x = float(LEFT)
    for name, item in seen.items():
        if isinstance(item, Markers):
            out.append(f'<circle cx="{x + 5:.0f}" cy="28" r="3.5" fill="none" stroke="#555"/>')
        else:
            out.append(f'<rect x="{x:.0f}" y="23" width="10" height="10" fill="{item.color}"/>')
        out.append(f'<text class="legend" x="{x + 14:.0f}" y="32">{escape(name)}</text>')
        x += 14 + 6.2 * len(name) + 12
        if x > width:
            break
    return "".join(out)
