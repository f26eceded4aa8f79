"""The value generators of a query's ``params`` (``{ int = [1, 100] }``, ``{ zipf = ... }``,
...) checked into ParamSpecs, each problem raised as the caller's error for the field."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from snowload.field_messages import did_you_mean, type_name
from snowload.toml_spelling import toml_value
from snowload.workload import ParamSpec, WorkloadError

Fail = Callable[[str, str], WorkloadError]
"""(field path, problem) -> the error to raise (it names the file and line)."""


def param_spec(raw: Any, path: str, fail: Fail) -> ParamSpec:
    kinds = ("int", "float", "sequence", "string", "choice", "zipf", "hotspot", "pool")
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise fail(path, "must be an inline table with one generator, e.g. { int = [1, 100] }")
    ((kind, value),) = raw.items()
    if kind not in kinds:
        raise fail(path, f"unknown generator {kind!r}{did_you_mean(kind, kinds)}")
    if kind in ("int", "float"):
        num = int if kind == "int" else (int, float)
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, num) and not isinstance(v, bool) for v in value)
            or not all(math.isfinite(v) for v in value if isinstance(v, float))
        ):
            raise fail(path, f"{kind} takes [low, high], got {toml_value(value)}")
        if value[0] > value[1]:
            raise fail(path, f"{kind} range is empty: low {value[0]} > high {value[1]}")
        return ParamSpec(kind, (value[0], value[1]))
    if kind == "pool":
        if not isinstance(value, str) or not value.strip():
            raise fail(
                path, 'pool takes a query whose first column is sampled, e.g. "SELECT id ..."'
            )
        return ParamSpec(kind, (value,))
    if kind == "zipf":
        if (
            not isinstance(value, list)
            or len(value) != 3
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            or not isinstance(value[0], int)
            or not isinstance(value[1], int)
            or value[0] > value[1]
            or not 0 < value[2] <= 10
        ):
            raise fail(path, f"zipf takes [low, high, s] with 0 < s <= 10, got {toml_value(value)}")
        return ParamSpec(kind, (value[0], value[1], float(value[2])))
    if kind == "hotspot":
        if (
            not isinstance(value, list)
            or len(value) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            or not isinstance(value[0], int)
            or not isinstance(value[1], int)
            or value[0] > value[1]
            or not 0 < value[2] < 1
            or not 0 < value[3] < 1
        ):
            raise fail(
                path,
                "hotspot takes [low, high, hot_fraction_of_keys, hot_fraction_of_traffic], "
                f"e.g. [1, 100000, 0.1, 0.9], got {toml_value(value)}",
            )
        return ParamSpec(kind, (value[0], value[1], float(value[2]), float(value[3])))
    if kind == "sequence":
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(path, f"sequence takes a start integer, got {toml_value(value)}")
        return ParamSpec(kind, (value,))
    if kind == "string":
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or not 0 <= value[0] <= value[1] <= 1_000_000
        ):
            raise fail(
                path, f"string takes a length or [min, max] lengths, got {toml_value(value)}"
            )
        return ParamSpec(kind, (value[0], value[1]))
    if not isinstance(value, list) or not value:
        raise fail(path, "choice takes a non-empty list of values")
    for v in value:
        if not isinstance(v, str | int | float):  # bool is an int
            raise fail(
                path, f"choice values must be strings, numbers or booleans, got {type_name(v)}"
            )
    return ParamSpec(kind, tuple(value))
