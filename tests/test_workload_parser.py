"""Messages of the workload parser that the bad-file table of test_workload.py does not
reach: type names, override bounds, quoted keys, suggestions."""

from __future__ import annotations

import pytest

from snowload.workload import Overrides, WorkloadError, parse_toml
from tests.test_workload import VALID, edit


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ("true", "a boolean"),
        ("7", "an integer"),
        ("7.5", "a number"),
        ("[1]", "an array"),
        ("{ a = 1 }", "a table"),
        ("2024-01-01", "date"),
    ],
)
def test_wrong_types_are_named_in_plain_words(value: str, type_name: str) -> None:
    with pytest.raises(WorkloadError) as info:
        parse_toml(edit('name = "orders"', f"name = {value}"))
    assert str(info.value) == f"<workload>:1: name: must be a string, got {type_name}"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (Overrides(workers=0), "workers: must be between 1 and 10000, got 0"),
        (Overrides(workers=10_001), "workers: must be between 1 and 10000, got 10001"),
        (Overrides(connections=0), "connections: must be between 1 and 100000, got 0"),
        (Overrides(connections=100_001), "connections: must be between 1 and 100000, got 100001"),
        (Overrides(duration_s=0.0), "duration: must be between 1ms and 168h"),
        (Overrides(duration_s=7 * 24 * 3600.0 + 1), "duration: must be between 1ms and 168h"),
        (Overrides(warmup_s=-1.0), "warmup: must be between 0s and 168h"),
        (Overrides(warmup_s=7 * 24 * 3600.0 + 1), "warmup: must be between 0s and 168h"),
    ],
)
def test_overrides_out_of_range_name_the_override(overrides: Overrides, message: str) -> None:
    with pytest.raises(WorkloadError) as info:
        parse_toml(VALID, overrides=overrides)
    assert str(info.value) == f"overrides: {message}"
    assert info.value.line is None


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (Overrides(workers=1, connections=1), (1, 1, 0.0, 1.0)),
        (Overrides(workers=10_000, connections=100_000), (10_000, 100_000, 0.0, 1.0)),
        (Overrides(warmup_s=0.0, duration_s=0.001), (2, 4, 0.0, 0.001)),
        (Overrides(warmup_s=604_800.0, duration_s=604_800.0), (2, 4, 604_800.0, 604_800.0)),
    ],
)
def test_overrides_at_their_bounds_are_taken(
    overrides: Overrides, expected: tuple[int, int, float, float]
) -> None:
    load = parse_toml(VALID, overrides=overrides).load
    assert (load.workers, load.connections, load.warmup_s, load.duration_s) == expected


def test_a_quoted_table_name_is_located() -> None:
    text = VALID + '\n[slo.query."insert"]\nerror_rate = 3\n'
    with pytest.raises(WorkloadError) as info:
        parse_toml(text)
    assert (info.value.line, info.value.field_path) == (33, "slo.query.insert.error_rate")


def test_the_deepest_matching_key_wins_over_its_table() -> None:
    """error_rate of [slo] is on line 30, below the [slo] header on line 28."""
    with pytest.raises(WorkloadError) as info:
        parse_toml(edit("error_rate = 0.001", "error_rate = 4"))
    assert info.value.line == 30


def test_one_suggestion_for_a_misspelt_field() -> None:
    with pytest.raises(WorkloadError) as info:
        parse_toml(edit("workers = 2", "worker = 2"))
    assert "unknown field (did you mean 'workers'?); allowed:" in str(info.value)
