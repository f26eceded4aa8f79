"""Values spelled as TOML spells them (snowload/toml_spelling.py): hand-written spellings,
and Python's own TOML reader (tomllib) reading every spelling back to the same value."""

from __future__ import annotations

import math
import tomllib
from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snowload.toml_spelling import toml_key, toml_string, toml_value


@pytest.mark.parametrize(
    ("value", "spelled"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-7, "-7"),
        (1.5, "1.5"),
        (2.0, "2.0"),
        (-0.5, "-0.5"),
        (1e20, "1e+20"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (math.nan, "nan"),
        ("2", '"2"'),
        ("", '""'),
        ("it's", '"it\'s"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("C:\\temp", '"C:\\\\temp"'),
        ("a\tb\nc\rd\be\ff", '"a\\tb\\nc\\rd\\be\\ff"'),
        ("\x00\x1f\x7f", '"\\u0000\\u001f\\u007f"'),
        ("é ✓", '"é ✓"'),
        ([], "[]"),
        ([True, 9], "[true, 9]"),
        ((1, "a", [False]), '[1, "a", [false]]'),
        ({}, "{}"),
        ({"int": [1, 9]}, "{ int = [1, 9] }"),
        ({"a b": 1, "x.y": "z", "ok_-9": {}}, '{ "a b" = 1, "x.y" = "z", ok_-9 = {} }'),
        (date(2026, 12, 3), "2026-12-03"),
        (time(7, 32, 0, 500), "07:32:00.000500"),
        (datetime(1979, 5, 27, 7, 32), "1979-05-27T07:32:00"),
        (datetime(1979, 5, 27, 7, 32, tzinfo=UTC), "1979-05-27T07:32:00+00:00"),
        (None, "None"),  # (TOML has no null or bytes: shown as Python shows them)
        (b"x", "b'x'"),
    ],
)
def test_each_kind_of_value_is_spelled_as_a_toml_file_writes_it(value: Any, spelled: str) -> None:
    assert toml_value(value) == spelled


def test_keys_are_bare_where_toml_allows_and_quoted_elsewhere() -> None:
    assert toml_key("on_worker_loss") == "on_worker_loss"
    assert toml_key("p95-ms") == "p95-ms"
    assert toml_key("") == '""'
    assert toml_key("a.b") == '"a.b"'
    assert toml_key("ü") == '"ü"'
    assert toml_string('"') == '"\\""'


def read_back(spelled: str) -> Any:
    """What a TOML file holding ``v = <spelled>`` says ``v`` is."""
    return tomllib.loads(f"v = {spelled}\n")["v"]


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(),
    st.dates(),
    st.times(),
    st.datetimes(timezones=st.none() | st.just(UTC)),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None)
@given(values)
def test_tomllib_reads_every_spelling_back_to_the_same_value(value: Any) -> None:
    assert read_back(toml_value(value)) == value


def test_nan_reads_back_as_nan() -> None:
    assert math.isnan(read_back(toml_value(math.nan)))
