"""What a report's HTML draws, read back with the standard library's HTML parser: each
polyline with its ``data-*`` attributes and vertex count, each marker group with its
circle count, the text of every table (by class)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Drawn:
    tag: str
    data: dict[str, str]
    count: int
    points: list[tuple[float, float]] = field(default_factory=list)


class ReportDom(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.drawn: list[Drawn] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.text: list[str] = []
        self._group: Drawn | None = None
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        data = {k.removeprefix("data-"): v for k, v in a.items() if k.startswith("data-")}
        if tag == "polyline":
            pts = [tuple(map(float, p.split(","))) for p in a.get("points", "").split()]
            self.drawn.append(Drawn("line", data, len(pts), pts))  # type: ignore[arg-type]
        elif tag == "g" and "markers" in a.get("class", ""):
            self._group = Drawn("markers", data, 0)
            self.drawn.append(self._group)
        elif tag == "circle" and self._group is not None:
            self._group.count += 1
        elif tag == "table":
            self._table = self.tables.setdefault(a.get("class", ""), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "g":
            self._group = None
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table:
            self._table[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def count(self, **want: str) -> int:
        """Vertices and markers drawn for the elements whose data attributes match."""
        return sum(d.count for d in self.select(**want))

    def select(self, tag: str | None = None, **want: str) -> list[Drawn]:
        return [
            d
            for d in self.drawn
            if (tag is None or d.tag == tag) and all(d.data.get(k) == v for k, v in want.items())
        ]

    def rows(self, cls: str) -> list[list[str]]:
        """A table's body rows (the header row left out)."""
        return self.tables.get(cls, [])[1:]
