"""The phase timeline: PREPARING → WARMUP → MEASUREMENT → PROCESSING → done."""

from __future__ import annotations

from collections.abc import Sequence

from textual.content import Content
from textual.widgets import Static

from tui import format as fmt
from tui.live_model import Stage

SYMBOL = {"done": "✓", "current": "●", "todo": "○", "skipped": "-", "failed": "✗"}
STYLE = {
    "done": "$text-success",
    "current": "bold $text-accent",
    "todo": "$text-muted",
    "skipped": "$text-muted strike",
    "failed": "bold $text-error",
}


def timeline_content(stages: Sequence[Stage], total_s: float | None) -> Content:
    parts: list[str | Content | tuple[str, str]] = []
    for i, stage in enumerate(stages):
        if i:
            parts.append((" ─▶ ", "$text-muted"))
        style = STYLE.get(stage.status, "")
        parts.append((f"{SYMBOL.get(stage.status, '?')} {stage.name}", style))
        timing = _timing(stage)
        if timing:
            parts.append((f" {timing}", style if stage.status == "current" else "$text-muted"))
    parts.append(("    total ", "$text-muted"))
    parts.append((fmt.fmt_seconds(total_s) if total_s is not None else "-", "bold"))
    return Content.assemble(*parts)


def _timing(stage: Stage) -> str:
    if stage.status == "current":
        elapsed = fmt.fmt_seconds(stage.elapsed_s) if stage.elapsed_s is not None else "…"
        if stage.planned_s:
            return f"{elapsed} / {fmt.fmt_seconds(stage.planned_s)}"
        return elapsed
    if stage.status == "done" and stage.elapsed_s is not None:
        return fmt.fmt_seconds(stage.elapsed_s)
    if stage.status == "todo" and stage.planned_s:
        return f"({fmt.fmt_seconds(stage.planned_s)})"
    return ""


class PhaseTimeline(Static):
    """Every phase with its time, the current one highlighted, and the total: one line,
    wrapped on a narrow screen."""

    DEFAULT_CSS = """
    PhaseTimeline {
        height: auto;
        padding: 0 1;
        border: round $primary 60%;
        border-title-color: $text-muted;
    }
    """

    def on_mount(self) -> None:
        self.border_title = "phases"

    def show(self, stages: Sequence[Stage], total_s: float | None) -> None:
        self.update(timeline_content(stages, total_s))
