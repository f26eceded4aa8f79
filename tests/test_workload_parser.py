"""Messages of the workload parser that the bad-file table of test_workload.py does not
reach: type names, override bounds, quoted keys, suggestions."""

from __future__ import annotations

import pytest

from snowload.workload import Overrides, WorkloadError, parse_json, parse_toml
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


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("slow_queries = -1", "load.slow_queries: must be between 0 and 1000, got -1"),
        ("slow_queries = 1001", "load.slow_queries: must be between 0 and 1000, got 1001"),
        ("slow_queries = 2.5", "load.slow_queries: must be an integer, got a number"),
        ("slow_queries = true", "load.slow_queries: must be an integer, got a boolean"),
        ("query_sample = -1", "load.query_sample: must be between 0 and 100000, got -1"),
        ("query_sample = 100001", "load.query_sample: must be between 0 and 100000, got 100001"),
        ("query_sample = '5'", "load.query_sample: must be an integer, got a string"),
        ("record_params = 0", "load.record_params: must be true or false, got an integer"),
        ("record_params = 'no'", "load.record_params: must be true or false, got a string"),
    ],
)
def test_query_log_fields_name_file_line_and_field(line: str, message: str) -> None:
    text = edit("workers = 2", f"workers = 2\n{line}")
    with pytest.raises(WorkloadError) as info:
        parse_toml(text, source="load.toml")
    workers_line = 1 + VALID.splitlines().index("workers = 2")
    assert str(info.value) == f"load.toml:{workers_line + 1}: {message}"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("", (20, 1000, True)),
        ("slow_queries = 0\nquery_sample = 0\nrecord_params = false", (0, 0, False)),
        ("slow_queries = 1000\nquery_sample = 100000\nrecord_params = true", (1000, 100000, True)),
        ("slow_queries = 1\nquery_sample = 1", (1, 1, True)),
    ],
)
def test_query_log_fields_at_their_bounds_round_trip(
    lines: str, expected: tuple[int, int, bool]
) -> None:
    workload = parse_toml(edit("workers = 2", f"workers = 2\n{lines}"))
    load = workload.load
    assert (load.slow_queries, load.query_sample, load.record_params) == expected
    assert parse_json(workload.to_json()) == workload
    written = workload.to_dict()["load"]
    assert ("slow_queries" in written) == (expected[0] != 20)
    assert ("query_sample" in written) == (expected[1] != 1000)
    assert ("record_params" in written) == (not expected[2])
