"""Values as a TOML file spells them (``true``, ``"2"``, ``[1, 2]``, ``{ int = [1, 9] }``),
for messages about what a workload file says: the user reads back what they wrote, not
Python's spelling of it (``True``, ``'2'``)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, time
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_value(value: Any) -> str:
    """``value`` in TOML's inline spelling (arrays and tables inline, strings as basic
    strings). Anything TOML has no spelling for is shown with ``repr``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value)  # 1.5, 1e+20, inf, -inf: TOML spells them alike
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, date | time):  # (datetime is a date)
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        pairs = ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }"
    return repr(value)


def toml_string(text: str) -> str:
    """A basic string: ``"`` and ``\\`` escaped, control characters as escapes."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    """A key bare where TOML allows it (letters, digits, ``_``, ``-``), else quoted."""
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)
