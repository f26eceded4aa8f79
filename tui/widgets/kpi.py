"""A row of key figures, each a small box with its label as the border title."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from tui.live_model import Kpi

KPI_COUNT = 9
"""Boxes made; a list of fewer KPIs hides the rest."""


class KpiBar(Horizontal):
    DEFAULT_CSS = """
    KpiBar {
        height: 3;
    }
    KpiBar > .kpi {
        width: 1fr;
        height: 3;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        content-align: center middle;
        text-style: bold;
    }
    """

    def compose(self) -> ComposeResult:
        for i in range(KPI_COUNT):
            yield Static("-", classes="kpi", id=f"kpi-{i}")

    def show(self, kpis: Sequence[Kpi]) -> None:
        for i, box in enumerate(self.query(".kpi").results(Static)):
            if i < len(kpis):
                box.border_title = kpis[i].label
                box.update(kpis[i].value)
                box.display = True
            else:
                box.display = False

    def values(self) -> dict[str, str]:
        """label -> shown value (for tests and screen readers of the DOM)."""
        return {
            str(box.border_title): str(box.content)
            for box in self.query(".kpi").results(Static)
            if box.display
        }
