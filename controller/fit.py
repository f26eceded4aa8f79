"""Tables that fit the terminal: the first layout whose natural width fits is printed, so
a number is never cut to ``12,3…``; the last resort is plain lines, which wrap.

Layouts go from the widest (every column, full figures) to the narrowest (fewer or
stacked columns, counts and rates in k/M). Output that goes to a pipe or a file, not a
terminal, has no width to fit: it gets the widest layout (``$COLUMNS`` still rules).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from controller.console import StdoutConsole

UNBOUNDED = 10_000
PIPE_WIDTH = 200
"""The width of output that is not a terminal (without $COLUMNS)."""

Layout = Callable[[], RenderableType]


def stdout_console() -> Console:
    """The console for a command's report on stdout: the terminal's width, or a wide one
    for a pipe or a file."""
    console: Console = StdoutConsole()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = StdoutConsole(width=PIPE_WIDTH)
    return console


def measure(console: Console, renderable: RenderableType) -> Measurement:
    """How wide ``renderable`` is with as much room as it wants (maximum), and with its
    text columns wrapped at spaces (minimum); figures never wrap."""
    return Measurement.get(console, console.options.update_width(UNBOUNDED), renderable)


def fitting(console: Console, layouts: Sequence[Layout]) -> RenderableType:
    """The first layout that fits ``console``'s width as it is; else the narrowest that
    fits with its text columns wrapped; else the last one (make it one that wraps)."""
    candidates = [layout() for layout in layouts[:-1]]
    widths = [measure(console, r) for r in candidates]
    for renderable, width in zip(candidates, widths, strict=True):
        if width.maximum <= console.width:
            return renderable
    for renderable, width in reversed(list(zip(candidates, widths, strict=True))):
        if width.minimum <= console.width:
            return renderable
    return layouts[-1]()


def print_fitting(console: Console, layouts: Sequence[Layout]) -> None:
    console.print(fitting(console, layouts))


def short_count(n: float) -> str:
    """A count in at most 6 characters: ``9,999``, ``12.3k``, ``123k``, ``1.23M``."""
    if not math.isfinite(n):
        return "-"
    a = abs(n)
    if a < 10_000:
        return f"{n:,.0f}"
    for unit, scale in (("k", 1e3), ("M", 1e6), ("G", 1e9)):
        v = n / scale
        if abs(v) < 999.5 or unit == "G":
            digits = 2 if abs(v) < 9.995 else 1 if abs(v) < 99.95 else 0
            return f"{v:.{digits}f}{unit}"
    return f"{n:.3g}"  # pragma: no cover (the loop always returns)


def short_rate(v: float) -> str:
    """A rate in at most 6 characters: ``12.5``, ``9,999``, ``34.5k``."""
    if not math.isfinite(v):
        return "-"
    if abs(v) < 100:
        return f"{v:.1f}"
    return short_count(v)


@dataclass
class Grid:
    """Rows of figures, laid out three ways (:meth:`layouts`): every column in full; a
    narrower table (the grouping column as a row above its group, ``short`` figures,
    ``narrow_drop`` columns left out, no vertical rules); plain lines that wrap."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    short: list[list[str]] = field(default_factory=list)
    """The same cells in fewer characters (k/M), row for row; empty: as ``rows``."""
    styles: list[str | None] = field(default_factory=list)
    left: frozenset[str] = frozenset()
    """Left-justified columns (the others are figures, right-justified)."""
    grouped: bool = False
    """The first column names a group of rows (shown on its first row only)."""
    narrow_drop: frozenset[str] = frozenset()
    caption: str = ""
    sections: list[int] = field(default_factory=list)
    """Rows (indexes) that start a new section in the full table."""

    def add(
        self, cells: list[str], short: list[str] | None = None, style: str | None = None
    ) -> None:
        self.rows.append(cells)
        self.short.append(short if short is not None else cells)
        self.styles.append(style)

    def layouts(self) -> list[Layout]:
        return [self.full, self.narrow, self.lines]

    def _table(self, columns: list[str], **kwargs: object) -> Table:
        table = Table(title=self.title or None, title_justify="left", **kwargs)  # type: ignore[arg-type]
        for col in columns:
            if col in self.left:
                table.add_column(col, overflow="fold")
            else:
                table.add_column(col, justify="right", no_wrap=True)
        if self.caption:
            table.caption = Text(self.caption)  # notes quote messages: no markup
            table.caption_justify = "left"
        return table

    def full(self) -> Table:
        table = self._table(self.columns)
        group = None
        for i, (cells, style) in enumerate(zip(self.rows, self.styles, strict=True)):
            if i in self.sections and i:
                table.add_section()
            shown = list(cells)
            if self.grouped:
                if cells[0] == group:
                    shown[0] = ""
                group = cells[0]
            table.add_row(*shown, style=style)
        return table

    def narrow(self) -> Table:
        keep = [
            i
            for i, col in enumerate(self.columns)
            if col not in self.narrow_drop and not (self.grouped and i == 0)
        ]
        table = self._table(
            [self.columns[i] for i in keep],
            box=box.SIMPLE_HEAD,
            show_edge=False,
            padding=(0, 1, 0, 0),
        )
        group = None
        for cells, short, style in zip(self.rows, self.short, self.styles, strict=True):
            if self.grouped and cells[0] != group:
                group = cells[0]
                table.add_row(Text(group, style="bold underline"))
            table.add_row(*(short[i] for i in keep), style=style)
        return table

    def lines(self) -> RenderableType:
        out: list[RenderableType] = [Text(self.title, style="bold")] if self.title else []
        group = None
        first = 1 if self.grouped else 0
        for cells, style in zip(self.rows, self.styles, strict=True):
            if self.grouped and cells[0] != group:
                group = cells[0]
                out.append(Text(group, style="bold underline"))
            pairs = [
                f"{col} {value}"
                for col, value in zip(self.columns[first + 1 :], cells[first + 1 :], strict=True)
                if value
            ]
            head = cells[first]
            out.append(Text(f"  {head}: " + ", ".join(pairs), style=style or ""))
        if self.caption:
            out.append(Text(self.caption))
        return Group(*out)
