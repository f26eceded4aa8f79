"""DataTable helpers: update rows in place so cursor and scroll survive refreshes; on a
narrow screen, leave out the least needed columns rather than hide figures off the edge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowKey

from snowload.v1 import common_pb2, run_pb2
from tui import format as fmt


def sync_rows(table: DataTable[Any], rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """Make ``table`` show ``rows`` (key, cells) in order: cells are updated in place when
    the keys are unchanged; otherwise the table is rebuilt and the cursor stays on its row."""
    keys = [key for key, _ in rows]
    current = [rk.value for rk in table.rows]
    columns = list(table.columns)
    if keys == current:
        for key, cells in rows:
            for column, value in zip(columns, cells, strict=False):
                try:
                    if _same(table.get_cell(key, column), value):
                        continue
                except CellDoesNotExist:
                    pass
                table.update_cell(key, column, value, update_width=True)
        return
    cursor_key = cursor_row_key(table)
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if cursor_key is not None and cursor_key in keys:
        table.move_cursor(row=keys.index(cursor_key), animate=False)


@dataclass(frozen=True)
class Column:
    label: str
    key: str
    drop: int = 0
    """0: always shown; else, when the table is too narrow for its figures, the column
    with the highest ``drop`` goes first."""


CELL_PADDING = 2


def fit_rows(
    table: DataTable[Any],
    columns: Sequence[Column],
    rows: Sequence[tuple[str, Sequence[Any]]],
    width: int | None = None,
) -> list[str]:
    """Show ``rows`` (cells for every one of ``columns``) in the columns that fit the
    table's width whole, leaving out droppable ones as needed; returns the shown keys."""
    if width is None:
        # before the first layout: the screen less a frame and a margin
        width = table.scrollable_content_region.width or table.app.size.width - 4
    widths = [
        max([_text_width(c.label), *(_text_width(cells[i]) for _, cells in rows)]) + CELL_PADDING
        for i, c in enumerate(columns)
    ]
    kept = list(range(len(columns)))
    for _, i in sorted(((c.drop, i) for i, c in enumerate(columns) if c.drop), reverse=True):
        if sum(widths[j] for j in kept) <= width:
            break
        kept.remove(i)
    keys = [columns[i].key for i in kept]
    if [str(k.value) for k in table.columns] != keys:
        table.clear(columns=True)
        for i in kept:
            table.add_column(columns[i].label, key=columns[i].key)
    sync_rows(table, [(key, [cells[i] for i in kept]) for key, cells in rows])
    return keys


def _text_width(value: Any) -> int:
    if isinstance(value, Text):
        return value.cell_len
    return Text(str(value)).cell_len


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Text) and isinstance(b, Text):
        return a.plain == b.plain and a.style == b.style and a.spans == b.spans
    return bool(a == b)


def cursor_row_key(table: DataTable[Any]) -> str | None:
    if not table.row_count:
        return None
    try:
        key: RowKey = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
    except CellDoesNotExist:
        return None
    return key.value


def cell_text(table: DataTable[Any], row: str, column: str) -> str:
    value = table.get_cell(row, column)
    return value.plain if isinstance(value, Text) else str(value)


def right(text: str, style: str = "") -> Text:
    return Text(text, style=style, justify="right")


def stats_cells(s: common_pb2.LatencyStats) -> list[Any]:
    """count, errors, QPS, p50, p95, p99, max: the latency columns every screen shows."""
    return [
        right(f"{s.count:,}"),
        right(f"{s.errors:,}", "bold red" if s.errors else ""),
        right(fmt.fmt_qps(s.qps)),
        right(fmt.fmt_ms(s.p50_ms)),
        right(fmt.fmt_ms(s.p95_ms)),
        right(fmt.fmt_ms(s.p99_ms)),
        right(fmt.fmt_ms(s.max_ms)),
    ]


def verdict_rows(run: run_pb2.Run) -> list[tuple[str, list[Any]]]:
    """The run's SLO verdicts: scope, metric, limit, actual, pass/FAIL."""
    rows: list[tuple[str, list[Any]]] = []
    for i, v in enumerate(run.slo):
        op = "≥" if v.metric == "min_qps" else "≤"
        rows.append(
            (
                f"v{i}",
                [
                    v.kind or "overall",
                    v.metric,
                    right(f"{op} {fmt.fmt_slo_value(v.metric, v.limit)}"),
                    right(fmt.fmt_slo_value(v.metric, v.actual)),
                    Text("pass", "green") if v.passed else Text("FAIL", "bold red"),
                ],
            )
        )
    return rows
