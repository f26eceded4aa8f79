"""Where a field is written in a TOML file: the line of a field path such as
``query[1].weight`` or ``slo.query.insert``, found by scanning the text for table headers
and keys (tomllib keeps no positions)."""

from __future__ import annotations

import re
from collections.abc import Sequence

_PATH_SEG = re.compile(r"([^.\[\]]+)(?:\[(\d+)\])?")
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_DOTTED_KEY = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED_KEY})\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(rf"^\s*({_DOTTED_KEY})\s*=")
_KEY_WORD = re.compile(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)")


def _split_key(dotted: str) -> list[str]:
    """``a."b.c".d`` -> ``["a", "b.c", "d"]``."""
    return [q1 or q2 or bare for q1, q2, bare in _KEY_WORD.findall(dotted)]


def _common_prefix(
    found: Sequence[tuple[str, int | None]], want: Sequence[tuple[str, int | None]]
) -> int:
    """How many leading path segments agree (an unknown array index agrees with any)."""
    n = 0
    for (name, idx), (want_name, want_idx) in zip(found, want, strict=False):
        if name != want_name or (idx is not None and want_idx is not None and idx != want_idx):
            break
        n += 1
    return n


def field_line(lines: Sequence[str], path: str) -> int:
    """Line of a field path such as ``query[1].weight`` or ``slo.query.insert``.

    The line whose key (or table header) matches the longest leading part of the path
    wins, the first one on a tie; a field that is absent from the file entirely is
    reported at line 1.
    """
    want = [(name, int(idx) if idx else None) for name, idx in _PATH_SEG.findall(path)]
    best_line, best_score = 1, 0
    table: list[tuple[str, int | None]] = []
    # the last index of each array of tables, under the array entries of its parents
    # ([[query.params]] counts from 0 again in every [[query]])
    array_index: dict[tuple[tuple[str, int | None], ...], int] = {}
    in_string: str | None = None  # the closing quotes of an open multi-line string
    for lineno, raw in enumerate(lines, start=1):
        if in_string is not None:
            if in_string in raw:
                in_string = None
            continue
        found: list[tuple[str, int | None]] | None = None
        key = None
        if header := _HEADER.match(raw):
            names = _split_key(header.group(2))
            table = []
            for name in names[:-1]:
                table.append((name, array_index.get((*table, (name, None)))))
            last = (*table, (names[-1], None))
            if header.group(1) == "[[":
                array_index[last] = array_index.get(last, -1) + 1
            table.append((names[-1], array_index.get(last)))
            found = table
        elif key := _KEY.match(raw):
            found = table + [(n, None) for n in _split_key(key.group(1))]
        if not header and not raw.lstrip().startswith("#"):
            rest = raw[key.end() :] if key else raw
            for quotes in ('"""', "'''"):
                if rest.count(quotes) % 2:
                    in_string = quotes
                    break
        if found:
            score = _common_prefix(found, want)
            if score > best_score:
                best_line, best_score = lineno, score
    return best_line
