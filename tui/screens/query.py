"""One entry of a run's query log in full (drilled into from the Run detail's Queries
tab): its parameters one per line, the statement of its kind, where it ran, and the
command that fetches its server-side profile."""

from __future__ import annotations

import json

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from snowload.v1 import common_pb2, run_pb2
from tui.screens.base import AppScreen
from tui.widgets.queries import detail_lines


def statement_of(run: run_pb2.Run, kind: str) -> str:
    """The SQL of ``kind`` in the run's resolved workload ('' if it is not there)."""
    try:
        data = json.loads(run.workload_json) if run.workload_json else {}
    except ValueError:
        return ""
    for query in data.get("query", []):
        if query.get("name") == kind:
            return str(query.get("sql", ""))
    return ""


class QueryScreen(AppScreen):
    DEFAULT_CSS = """
    QueryScreen #query-detail {
        padding: 1 2;
    }
    """
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, run: run_pb2.Run, entry: common_pb2.QueryEntry) -> None:
        super().__init__()
        self.run = run
        self.entry = entry

    def compose(self) -> ComposeResult:
        yield Header()
        lines = detail_lines(self.entry, statement_of(self.run, self.entry.kind), self.run.run_id)
        with VerticalScroll():
            yield Static(Text("\n".join(lines)), id="query-detail")
        yield Footer()
