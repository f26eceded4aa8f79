"""The find_max panel: every step tried (level, throughput, latency, errors, verdict and
why), updated as steps complete, and the search's conclusion once it has one."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from snowload.v1 import common_pb2
from tui import format as fmt
from tui.widgets.tables import right, sync_rows

STEP_COLUMNS = (
    ("#", "n"),
    ("level", "level"),
    ("QPS", "qps"),
    ("p50 ms", "p50"),
    ("p95 ms", "p95"),
    ("p99 ms", "p99"),
    ("error rate", "rate"),
    ("verdict", "verdict"),
    ("reason", "reason"),
)
BEST_MARK = " ★"


def best_step(result: common_pb2.FindMaxResult) -> int | None:
    """Index of the step the search keeps as its best (a stable step at best_level)."""
    if not result.best_level:
        return None
    for i, step in enumerate(result.steps):
        if step.level == result.best_level and step.verdict == "stable":
            return i
    return None


def step_reason(step: common_pb2.FindMaxStep, by: str) -> str:
    """The step's reason without the level it names (the row's level column says it)."""
    unit = "queries/s" if by == "rate" else "connections"
    return step.reason.replace(f" at {step.level:g} {unit}", "")


def step_rows(result: common_pb2.FindMaxResult) -> list[tuple[str, list[Any]]]:
    best = best_step(result)
    rows: list[tuple[str, list[Any]]] = []
    for i, step in enumerate(result.steps):
        s = step.stats
        stable = step.verdict == "stable"
        level = fmt.fmt_level(step.level, result.by, short=True)
        rows.append(
            (
                f"s{i}",
                [
                    right(str(i + 1)),
                    right(level + BEST_MARK, "bold green") if i == best else right(level),
                    right(fmt.fmt_qps(s.qps) if s.count else "-"),
                    right(fmt.fmt_ms(s.p50_ms) if s.count else "-"),
                    right(fmt.fmt_ms(s.p95_ms) if s.count else "-"),
                    right(fmt.fmt_ms(s.p99_ms) if s.count else "-"),
                    right(fmt.fmt_rate(step.error_rate), "bold red" if step.error_rate else ""),
                    Text(step.verdict or "-", "green" if stable else "bold yellow"),
                    Text(step_reason(step, result.by), "dim" if stable else ""),
                ],
            )
        )
    return rows


def conclusion_text(
    result: common_pb2.FindMaxResult, *, current_level: float | None, ended: bool
) -> Text:
    """The conclusion (best level, its QPS and p95, the reason), or where the search is."""
    text = Text()
    if result.concluded:
        text.append("concluded: ", "bold")
        if result.best_level:
            best = result.best
            text.append(f"best {fmt.fmt_level(result.best_level, result.by)}", "bold green")
            text.append(
                f" · {fmt.fmt_qps(best.qps)} QPS · p95 {fmt.fmt_ms(best.p95_ms)} ms",
                "bold",
            )
        else:
            text.append("no stable level", "bold red")
        if result.reason:
            text.append(f" · {result.reason}")
        return text
    if not ended:
        text.append("searching… ", "bold cyan")
        steps = result.steps
        text.append(f"step {len(steps) + 1}")
        # right after a step the level is still the one just measured: the next is not set
        if current_level and not (steps and steps[-1].level == current_level):
            text.append(f" at {fmt.fmt_level(current_level, result.by)}")
    else:
        text.append("the search ended without a conclusion", "bold yellow")
    if result.best_level:
        text.append(
            f" · best so far {fmt.fmt_level(result.best_level, result.by)}"
            f" ({fmt.fmt_qps(result.best.qps)} QPS)",
            "dim",
        )
    return text


class FindMaxPanel(Vertical):
    """The step table and the conclusion line of a find_max run."""

    DEFAULT_CSS = """
    FindMaxPanel {
        height: auto;
        max-height: 10;
        border: round $primary 50%;
        border-title-color: $text-muted;
    }
    FindMaxPanel > DataTable {
        height: auto;
        max-height: 7;
    }
    FindMaxPanel > #findmax-conclusion {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None, hidden: bool = False) -> None:
        super().__init__(id=id)
        self.display = not hidden  # hidden from the start: no empty panel flashes by

    def compose(self) -> ComposeResult:
        yield DataTable(id="findmax-steps", cursor_type="row", show_cursor=False)
        yield Static("", id="findmax-conclusion", markup=False)

    def on_mount(self) -> None:
        self.border_title = "find max"
        table = self.query_one("#findmax-steps", DataTable)
        for label, key in STEP_COLUMNS:
            table.add_column(label, key=key)

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#findmax-steps", DataTable)

    @property
    def conclusion(self) -> str:
        content = self.query_one("#findmax-conclusion", Static).content
        return content.plain if isinstance(content, Text) else str(content)

    def show(
        self,
        result: common_pb2.FindMaxResult,
        *,
        current_level: float | None = None,
        ended: bool = False,
    ) -> None:
        count = len(result.steps)
        by = result.by or "connections"
        self.border_title = f"find max · by {by} · {count} step" + ("" if count == 1 else "s")
        table = self.table
        before = table.row_count
        sync_rows(table, step_rows(result))
        if table.row_count > before:
            # the newest step in view, once the table has laid out its new rows
            table.call_after_refresh(table.scroll_end, animate=False)
        self.query_one("#findmax-conclusion", Static).update(
            conclusion_text(result, current_level=current_level, ended=ended)
        )
