"""Words of the workload parser's messages: a value's TOML type in prose ("a boolean"),
and a "did you mean" hint for a misspelt name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    import difflib  # (only when a name is wrong)

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
