"""Human durations as written in workload files and on the command line: 500ms, 5s, 1m30s, 2h.

A bare number means seconds, the same in a file (``duration = 15``, ``duration = "15"``)
and on the command line (``--duration 15``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | int | float, spell: Callable[[Any], str] = repr) -> float:
    """Seconds for a duration such as ``"1m30s"``; plain numbers (or numeric strings) are
    seconds.

    Raises ValueError with a short explanation for anything else, showing ``text`` as
    ``spell`` writes it (a workload file's messages spell it as TOML does).
    """
    if isinstance(text, bool):
        raise ValueError("expected a duration such as '30s', got a boolean")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"duration must not be negative, got {text}")
        return float(text)
    value = text.strip().replace(" ", "")
    if not value:
        raise ValueError("empty duration")
    if value.startswith("-"):
        raise ValueError(f"duration must not be negative, got {spell(text)}")
    if _NUMBER.fullmatch(value):
        return float(value)
    pos, total = 0, 0.0
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) or pos == 0:
        raise ValueError(f"invalid duration {spell(text)}; use e.g. '500ms', '15s', '1m30s', '2h'")
    return total


def format_duration(seconds: float) -> str:
    """Inverse of parse_duration for display and canonical files: 90.0 -> '1m30s'."""
    if seconds < 0:
        raise ValueError("negative duration")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs:
        out += f"{secs}s"
    if ms:
        out += f"{ms}ms"
    return out
