"""Statement parameters in the connector's qmark binding format, for the lean statement path.

Snowflake binds ``?`` placeholders server side from ``bindings``: ``{"1": {"type": "FIXED",
"value": "42"}, ...}``, every value as text. The types snowload's generators produce (int,
float, str, bool, None) are translated here exactly as the connector translates them
(``SnowflakeConverter.snowflake_type`` + ``to_snowflake_bindings``); anything else (dates,
decimals, bytes, ``(type, value)`` pairs, lists) goes through the connector's own converter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Binding = dict[str, Any]
Fallback = Callable[[Sequence[Any]], "dict[str, Binding] | None"]


def _bool(value: bool) -> tuple[str, Any]:
    return "BOOLEAN", "true" if value else "false"


_FAST: dict[type, Callable[[Any], tuple[str, Any]]] = {
    int: lambda v: ("FIXED", str(v)),
    float: lambda v: ("REAL", str(v)),
    str: lambda v: ("TEXT", v),
    bool: _bool,
    type(None): lambda v: ("ANY", None),
}


def connector_fallback(conn: Any) -> Fallback:
    """The connector's own qmark translation of a whole parameter list (for lists with a
    value of a type the table above does not cover)."""

    def whole(params: Sequence[Any]) -> dict[str, Binding] | None:
        out: dict[str, Binding] | None = conn._process_params_qmarks(list(params))
        return out

    return whole


def qmark_bindings(params: Sequence[Any], fallback: Fallback) -> dict[str, Binding] | None:
    """``bindings`` for ``params`` (None when there are none, as the connector sends)."""
    if not params:
        return None
    out: dict[str, Binding] = {}
    fast = _FAST
    for i, value in enumerate(params, 1):
        translate = fast.get(type(value))
        if translate is None:
            return fallback(params)
        kind, text = translate(value)
        out[str(i)] = {"type": kind, "value": text}
    return out
