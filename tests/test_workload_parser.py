"""Messages of the workload parser that the bad-file table of test_workload.py does not
reach: type names, override bounds, quoted keys, suggestions."""

from __future__ import annotations

import pytest

from snowload.workload import (
    Arrival,
    Driver,
    FindMax,
    Load,
    Mode,
    OnQueryFailure,
    OnWorkerLoss,
    Overrides,
    ParamSpec,
    Query,
    Slo,
    Stage,
    StepBy,
    Target,
    WorkloadError,
    parse_json,
    parse_toml,
)
from snowload.workload_parser import Parser
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


# -- every message of the parser, with its line and field ------------------------------------
#
# A small valid file; each case below edits one mistake into it, so the expected line can be
# read off here (1 name, 3 [target], 4 database, 6 [load], 7 workers, 9 [[query]], 10 name,
# 11 sql, 12 params; a section appended starts on line 14, its first key on line 15).
BASE = """\
name = "w"

[target]
database = "w.db"

[load]
workers = 1

[[query]]
name = "q"
sql = "SELECT ?"
params = [{ int = [1, 9] }]
"""
PARAM = "{ int = [1, 9] }"
QUERY_BLOCK = '[[query]]\nname = "q"\nsql = "SELECT ?"\nparams = [{ int = [1, 9] }]\n'
HOTSPOT = (
    "hotspot takes [low, high, hot_fraction_of_keys, hot_fraction_of_traffic], "
    "e.g. [1, 100000, 0.1, 0.9], got "
)
PG_CREDENTIALS = (
    "credentials do not belong in workload files; workers read them from PGPASSWORD or ~/.pgpass"
)
SF_CREDENTIALS = "credentials do not belong in workload files; keep them in connections.toml"
NAME_RULE = "must be 1-64 characters of letters, digits, '_', '-', '.'"


def sub(old: str, new: str) -> str:
    assert BASE.count(old) == 1, f"{old!r} must occur exactly once"
    return BASE.replace(old, new)


def load_line(line: str) -> str:
    """BASE with ``workers = 1`` of [load] (line 7) replaced by ``line``."""
    return sub("workers = 1", line)


def param(spec: str) -> str:
    """BASE with the generator of query[0] (line 12) replaced by ``spec``."""
    return sub(PARAM, spec)


def find_max(table: str) -> str:
    """find_max mode with ``find_max = table`` on line 8."""
    return load_line(f'mode = "find_max"\nfind_max = {table}')


def top_level_query(value: str) -> str:
    """``query = value`` on line 2 instead of the [[query]] tables."""
    return sub(QUERY_BLOCK, "").replace('name = "w"\n', f'name = "w"\nquery = {value}\n')


STAGE = '\n[[load.stage]]\nduration = "1s"\n'
OPEN = load_line('mode = "open"')
P0 = "query[0].params[0]"

# fmt: off
MESSAGES = [  # (id, text, line, field, problem)
    # typed getters: wrong types, bounds, missing values
    ("target_not_a_table", sub('[target]\ndatabase = "w.db"\n', "target = 5\n"),
     3, "target", "must be a table, got an integer"),
    ("slo_not_a_table", sub('name = "w"\n', 'name = "w"\nslo = "fast"\n'),
     2, "slo", "must be a table, got a string"),
    ("unknown_target_field", sub('database = "w.db"', 'database = "w.db"\nfile = "x"'),
     5, "target.file", "unknown field; allowed: driver, database, dsn, connection, options"),
    ("unknown_query_field", sub('sql = "SELECT ?"', 'sql = "SELECT ?"\nwieght = 2'),
     12, "query[0].wieght",
     "unknown field (did you mean 'weight'?); allowed: name, sql, weight, params"),
    ("per_kind_slo_has_no_query_table", BASE + "\n[slo.query.q]\nquery = 1\n",
     15, "slo.query.q.query",
     "unknown field; allowed: p50_ms, p95_ms, p99_ms, error_rate, min_qps"),
    ("name_with_a_space", sub('name = "w"', 'name = "w x"'), 1, "name", NAME_RULE),
    ("empty_query_name", sub('name = "q"', 'name = ""'), 10, "query[0].name", NAME_RULE),
    ("reserved_query_name", sub('name = "q"', 'name = "mode"'), 10, "query[0].name",
     "\"mode\" is reserved (it names the every-kind row in comparisons): choose another name"),
    ("boolean_workers", load_line("workers = true"),
     7, "load.workers", "must be an integer, got a boolean"),
    ("zero_workers", load_line("workers = 0"),
     7, "load.workers", "must be between 1 and 10000, got 0"),
    ("too_many_workers", load_line("workers = 10001"),
     7, "load.workers", "must be between 1 and 10000, got 10001"),
    ("too_many_connections", load_line("connections = 100001"),
     7, "load.connections", "must be between 1 and 100000, got 100001"),
    ("zero_parallel_connects", load_line("max_parallel_connects = 0"),
     7, "load.max_parallel_connects", "must be between 1 and 4096, got 0"),
    ("too_many_parallel_connects", load_line("max_parallel_connects = 4097"),
     7, "load.max_parallel_connects", "must be between 1 and 4096, got 4097"),
    ("string_for_boolean", load_line('enrich = "yes"'),
     7, "load.enrich", "must be true or false, got a string"),
    ("boolean_rate", load_line("rate = true"), 7, "load.rate", "must be a number, got a boolean"),
    ("negative_rate", load_line("rate = -1"), 7, "load.rate", "must not be negative, got -1"),
    ("infinite_rate", load_line("rate = inf"), 7, "load.rate", "must be a finite number, got inf"),
    ("rate_above_the_maximum", load_line("rate = 10000001"),
     7, "load.rate", "must be at most 10,000,000 queries per second"),
    ("negative_p95", BASE + "\n[slo]\np95_ms = -0.5\n",
     15, "slo.p95_ms", "must not be negative, got -0.5"),
    ("string_p50", BASE + '\n[slo]\np50_ms = "5"\n',
     15, "slo.p50_ms", "must be a number, got a string"),
    ("nan_p99", BASE + "\n[slo]\np99_ms = nan\n",
     15, "slo.p99_ms", "must be a finite number, got nan"),
    ("nan_min_qps", BASE + "\n[slo]\nmin_qps = nan\n",
     15, "slo.min_qps", "must be a finite number, got nan"),
    ("per_kind_error_rate_above_one", BASE + "\n[slo.query.q]\nerror_rate = 1.01\n",
     15, "slo.query.q.error_rate", "is a fraction between 0 and 1, got 1.01"),
    ("per_kind_slo_not_a_table", BASE + "\n[slo.query]\nq = 5\n",
     15, "slo.query.q", "must be a table"),
    ("slo_query_not_a_table", BASE + "\n[slo]\nquery = 5\n",
     15, "slo.query", "must be a table, got an integer"),
    # durations
    ("boolean_duration", load_line("duration = true"),
     7, "load.duration", "expected a duration such as '30s', got a boolean"),
    ("table_duration", load_line("duration = { s = 1 }"),
     7, "load.duration", "must be a duration such as '30s', got a table"),
    ("nan_duration", load_line("duration = nan"),
     7, "load.duration", "must be a duration such as '30s', got nan"),
    ("zero_duration", load_line('duration = "0s"'), 7, "load.duration", "must be at least 1ms"),
    ("duration_above_a_week", load_line('duration = "169h"'),
     7, "load.duration", "must be at most 168h"),
    ("negative_warmup", load_line("warmup = -1"),
     7, "load.warmup", "duration must not be negative, got -1"),
    ("short_ready_timeout", load_line('ready_timeout = "99ms"'),
     7, "load.ready_timeout", "must be at least 100ms"),
    ("short_enrichment_timeout", load_line('enrichment_timeout = "999ms"'),
     7, "load.enrichment_timeout", "must be at least 1s"),
    ("bad_think_time", load_line('think_time = "soon"'),
     7, "load.think_time", "invalid duration \"soon\"; use e.g. '500ms', '15s', '1m30s', '2h'"),
    ("max_lag_above_a_week", load_line('max_lag = "200h"'),
     7, "load.max_lag", "must be at most 168h"),
    # choices
    ("integer_mode", load_line("mode = 1"),
     7, "load.mode", "must be one of closed, open, find_max, got 1"),
    ("unknown_driver", sub('database = "w.db"', 'driver = "mysql"'),
     4, "target.driver", "must be one of sqlite, postgres, snowflake, got \"mysql\""),
    ("unknown_arrival", load_line('arrival = "burst"'),
     7, "load.arrival", "must be one of constant, poisson, got \"burst\""),
    ("unknown_worker_loss_policy", load_line('on_worker_loss = "retry"'),
     7, "load.on_worker_loss", "must be one of fail, continue, got \"retry\""),
    ("unknown_query_failure_policy", load_line('on_query_failure = "retry"'),
     7, "load.on_query_failure", "must be one of fail, continue, got \"retry\""),
    ("unknown_step_unit", find_max('{ by = "qps" }'),
     8, "load.find_max.by", "must be one of connections, rate, got \"qps\""),
    # targets
    ("postgres_dsn_with_password",
     sub('database = "w.db"', 'driver = "postgres"\ndsn = "host=db password=x"'), 5, "target.dsn",
     "must not contain a password; workers read it from PGPASSWORD or ~/.pgpass"),
    ("postgres_password_option_in_any_case",
     sub('database = "w.db"', 'driver = "postgres"\ndsn = "h"\noptions = { PassWord = "x" }'),
     6, "target.options.PassWord", PG_CREDENTIALS),
    ("postgres_sslpassword_option",
     sub('database = "w.db"', 'driver = "postgres"\ndsn = "h"\noptions = { sslpassword = "x" }'),
     6, "target.options.sslpassword", PG_CREDENTIALS),
    ("snowflake_private_key",
     sub('database = "w.db"', 'driver = "snowflake"\nconnection = "c"\n'
         'options = { private_key = "k" }'),
     6, "target.options.private_key", SF_CREDENTIALS),
    ("snowflake_token",
     sub('database = "w.db"', 'driver = "snowflake"\nconnection = "c"\noptions = { token = "k" }'),
     6, "target.options.token", SF_CREDENTIALS),
    ("setup_sql_of_numbers", BASE + "\n[setup]\nsql = [1]\n",
     15, "setup.sql", "must be a string or a list of strings"),
    ("setup_sql_number", BASE + "\n[setup]\nsql = 5\n",
     15, "setup.sql", "must be a string or a list of strings"),
    # stages
    ("stage_not_an_array", load_line("stage = 5"),
     7, "load.stage", "must be an array of tables ([[load.stage]])"),
    ("stage_not_a_table", load_line("stage = [5]"), 7, "load.stage[0]", "must be a table"),
    ("unknown_stage_field", load_line('stage = [{ duration = "1s", connections = 1, qps = 3 }]'),
     7, "load.stage[0].qps", "unknown field; allowed: duration, connections, rate"),
    ("stage_without_duration", BASE + "\n[[load.stage]]\nconnections = 1\n",
     14, "load.stage[0].duration", "is required"),
    ("stage_of_no_time", BASE + '\n[[load.stage]]\nduration = "0s"\nconnections = 1\n',
     15, "load.stage[0].duration", "must be at least 1ms"),
    ("closed_stage_with_a_rate", BASE + STAGE + "connections = 1\n" + STAGE + "rate = 5\n",
     18, "load.stage[1]", "a closed-mode stage sets connections"),
    ("closed_stage_without_connections", BASE + STAGE,
     14, "load.stage[0]", "a closed-mode stage sets connections"),
    ("open_stage_with_connections", OPEN + STAGE + "rate = 5\nconnections = 1\n",
     14, "load.stage[0]", "an open-mode stage sets a rate"),
    ("open_stage_without_rate", OPEN + STAGE,
     14, "load.stage[0]", "an open-mode stage sets a rate"),
    ("open_stage_negative_rate", OPEN + STAGE + "rate = -2\n",
     16, "load.stage[0].rate", "must not be negative, got -2"),
    ("stage_above_the_connections", BASE + STAGE + "connections = 5\n",
     16, "load.stage[0].connections", "must be between 0 and 4, got 5"),
    # find_max
    ("find_max_with_stages", load_line('mode = "find_max"') + STAGE + "connections = 1\n",
     14, "load.stage", "find_max chooses its own steps; drop [[load.stage]]"),
    ("find_max_in_closed_mode", load_line("find_max = { start = 2 }"),
     7, "load.find_max", 'needs mode = "find_max"'),
    ("find_max_not_a_table", find_max("3"), 8, "load.find_max", "must be a table"),
    ("unknown_find_max_field", find_max("{ stop = 3 }"), 8, "load.find_max.stop",
     "unknown field (did you mean 'step'?); allowed: "
     "start, step, step_duration, max, p95_drift, max_error_rate, min_gain, by"),
    ("find_max_from_zero", find_max("{ start = 0 }"),
     8, "load.find_max", "start and step must be positive"),
    ("find_max_step_zero", find_max("{ step = 0 }"),
     8, "load.find_max", "start and step must be positive"),
    ("find_max_above_the_connections", find_max("{ max = 100001 }"),
     8, "load.find_max.max", "must be at most 100000"),
    ("find_max_short_steps", find_max('{ step_duration = "1999ms" }'),
     8, "load.find_max.step_duration", "must be at least 2s"),
    ("find_max_negative_drift", find_max("{ p95_drift = -1 }"),
     8, "load.find_max.p95_drift", "must not be negative, got -1"),
    ("find_max_negative_error_rate", find_max("{ max_error_rate = -1 }"),
     8, "load.find_max.max_error_rate", "must not be negative, got -1"),
    ("find_max_negative_gain", find_max("{ min_gain = -1 }"),
     8, "load.find_max.min_gain", "must not be negative, got -1"),
    # queries
    ("query_not_an_array", top_level_query("3"),
     2, "query", "must be an array of tables ([[query]]) with at least one entry"),
    ("no_queries_in_the_array", top_level_query("[]"),
     2, "query", "must be an array of tables ([[query]]) with at least one entry"),
    ("query_not_a_table", top_level_query("[1]"),
     2, "query[0]", "must be a table, got an integer"),
    ("too_many_queries",
     BASE + "".join(f'\n[[query]]\nname = "q{i}"\nsql = "SELECT 1"\n' for i in range(256)),
     9, "query", "at most 256 queries, got 257"),
    ("blank_sql", sub('sql = "SELECT ?"', 'sql = "  "'), 11, "query[0].sql", "must not be empty"),
    ("no_sql", sub('sql = "SELECT ?"\n', ""), 9, "query[0].sql", "is required"),
    ("boolean_weight", sub('sql = "SELECT ?"', 'sql = "SELECT ?"\nweight = true'),
     12, "query[0].weight", "must be a positive number, got true"),
    ("string_weight", sub('sql = "SELECT ?"', 'sql = "SELECT ?"\nweight = "2"'),
     12, "query[0].weight", "must be a positive number, got \"2\""),
    ("infinite_weight", sub('sql = "SELECT ?"', 'sql = "SELECT ?"\nweight = inf'),
     12, "query[0].weight", "must be a positive number, got inf"),
    ("params_not_a_list", sub(f"params = [{PARAM}]", "params = 5"),
     12, "query[0].params", "must be a list of generators, got an integer"),
    # generators
    ("two_generators_in_one", param("{ int = [1, 9], float = [1, 2] }"), 12, P0,
     "must be an inline table with one generator, e.g. { int = [1, 100] }"),
    ("generator_not_a_table", param("5"), 12, P0,
     "must be an inline table with one generator, e.g. { int = [1, 100] }"),
    ("misspelt_generator", param("{ zipff = [1, 9, 1] }"),
     12, P0, "unknown generator 'zipff' (did you mean 'zipf'?)"),
    ("int_of_floats", param("{ int = [1.0, 9] }"), 12, P0, "int takes [low, high], got [1.0, 9]"),
    ("int_of_three", param("{ int = [1, 9, 10] }"),
     12, P0, "int takes [low, high], got [1, 9, 10]"),
    ("int_of_booleans", param("{ int = [true, 9] }"),
     12, P0, "int takes [low, high], got [true, 9]"),
    ("int_not_a_list", param("{ int = 5 }"), 12, P0, "int takes [low, high], got 5"),
    ("float_to_infinity", param("{ float = [1.0, inf] }"),
     12, P0, "float takes [low, high], got [1.0, inf]"),
    ("empty_float_range", param("{ float = [2.5, 1.5] }"),
     12, P0, "float range is empty: low 2.5 > high 1.5"),
    ("float_of_booleans", param("{ float = [false, 1.5] }"),
     12, P0, "float takes [low, high], got [false, 1.5]"),
    ("blank_pool", param('{ pool = " " }'),
     12, P0, 'pool takes a query whose first column is sampled, e.g. "SELECT id ..."'),
    ("pool_not_a_string", param("{ pool = 5 }"),
     12, P0, 'pool takes a query whose first column is sampled, e.g. "SELECT id ..."'),
    *[
        (f"zipf_{name}", param(f"{{ zipf = {value} }}"), 12, P0,
         f"zipf takes [low, high, s] with 0 < s <= 10, got {shown}")
        for name, value, shown in (
            ("exponent_above_10", "[1, 9, 10.5]", "[1, 9, 10.5]"),
            ("float_low", "[1.0, 9, 1]", "[1.0, 9, 1]"),
            ("float_high", "[1, 9.0, 1]", "[1, 9.0, 1]"),
            ("empty_range", "[9, 1, 1]", "[9, 1, 1]"),
            ("of_two", "[1, 9]", "[1, 9]"),
            ("boolean_exponent", "[1, 9, true]", "[1, 9, true]"),
            ("not_a_list", "5", "5"),
        )
    ],
    *[
        (f"hotspot_{name}", param(f"{{ hotspot = {value} }}"), 12, P0, HOTSPOT + shown)
        for name, value, shown in (
            ("no_hot_keys", "[1, 9, 0, 0.5]", "[1, 9, 0, 0.5]"),
            ("all_keys_hot", "[1, 9, 1, 0.5]", "[1, 9, 1, 0.5]"),
            ("no_hot_traffic", "[1, 9, 0.5, 0]", "[1, 9, 0.5, 0]"),
            ("all_traffic_hot", "[1, 9, 0.5, 1]", "[1, 9, 0.5, 1]"),
            ("float_low", "[1.0, 9, 0.5, 0.5]", "[1.0, 9, 0.5, 0.5]"),
            ("float_high", "[1, 9.0, 0.5, 0.5]", "[1, 9.0, 0.5, 0.5]"),
            ("empty_range", "[9, 1, 0.5, 0.5]", "[9, 1, 0.5, 0.5]"),
            ("boolean_low", "[true, 9, 0.5, 0.5]", "[true, 9, 0.5, 0.5]"),
            ("of_three", "[1, 9, 0.5]", "[1, 9, 0.5]"),
            ("boolean_fraction", "[1, 9, 0.5, true]", "[1, 9, 0.5, true]"),
            ("not_a_list", "5", "5"),
        )
    ],
    ("boolean_sequence", param("{ sequence = true }"),
     12, P0, "sequence takes a start integer, got true"),
    ("float_sequence", param("{ sequence = 1.5 }"),
     12, P0, "sequence takes a start integer, got 1.5"),
    ("sequence_of_two", param("{ sequence = [1, 2] }"),
     12, P0, "sequence takes a start integer, got [1, 2]"),
    *[
        (f"string_{name}", param(f"{{ string = {value} }}"), 12, P0,
         f"string takes a length or [min, max] lengths, got {shown}")
        for name, value, shown in (
            ("boolean_length", "true", "true"),
            ("empty_range", "[3, 2]", "[3, 2]"),
            ("negative_length", "[-1, 2]", "[-1, 2]"),
            ("above_a_million", "[1, 1000001]", "[1, 1000001]"),
            ("of_three", "[1, 2, 3]", "[1, 2, 3]"),
            ("float_length", "[1, 2.0]", "[1, 2.0]"),
            ("boolean_in_range", "[1, true]", "[1, true]"),
        )
    ],
    ("empty_choice", param("{ choice = [] }"), 12, P0, "choice takes a non-empty list of values"),
    ("choice_not_a_list", param("{ choice = 5 }"),
     12, P0, "choice takes a non-empty list of values"),
    ("choice_of_a_table", param('{ choice = ["a", { b = 1 }] }'),
     12, P0, "choice values must be strings, numbers or booleans, got a table"),
    ("choice_of_an_array", param("{ choice = [[1]] }"),
     12, P0, "choice values must be strings, numbers or booleans, got an array"),
    # sections and fields of the wrong type, required fields, mixed modes
    ("setup_not_a_table", sub('name = "w"\n', 'name = "w"\nsetup = 5\n'),
     2, "setup", "must be a table, got an integer"),
    ("load_not_a_table",
     sub("[load]\nworkers = 1\n", "").replace('name = "w"\n', 'name = "w"\nload = 5\n'),
     2, "load", "must be a table, got an integer"),
    ("description_number", sub('name = "w"\n', 'name = "w"\ndescription = 5\n'),
     2, "description", "must be a string, got an integer"),
    ("unknown_setup_field", BASE + '\n[setup]\nsqll = "x"\n',
     15, "setup.sqll", "unknown field (did you mean 'sql'?); allowed: sql"),
    ("database_number", sub('database = "w.db"', "database = 5"),
     4, "target.database", "must be a string, got an integer"),
    ("dsn_number", sub('database = "w.db"', "dsn = 5"),
     4, "target.dsn", "must be a string, got an integer"),
    ("connection_number", sub('database = "w.db"', 'database = "w.db"\nconnection = 5'),
     5, "target.connection", "must be a string, got an integer"),
    ("options_number", sub('database = "w.db"', 'database = "w.db"\noptions = 5'),
     5, "target.options", "must be a table, got an integer"),
    ("sqlite_without_database", sub('database = "w.db"\n', ""),
     3, "target.database", "is required for the sqlite driver"),
    ("postgres_without_dsn", sub('database = "w.db"', 'driver = "postgres"'),
     3, "target.dsn", "is required for the postgres driver"),
    ("open_without_rate", OPEN,
     6, "load.rate", "open mode needs a target rate (queries per second)"),
    ("no_query", sub(QUERY_BLOCK, ""), 1, "query", "at least one [[query]] is required"),
    ("closed_stage_with_rate", BASE + STAGE + "connections = 1\nrate = 5\n",
     14, "load.stage[0]", "a closed-mode stage sets connections"),
    ("slo_error_rate_string", BASE + '\n[slo]\nerror_rate = "x"\n',
     15, "slo.error_rate", "must be a number, got a string"),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "line", "field", "problem"),
    [case[1:] for case in MESSAGES],
    ids=[case[0] for case in MESSAGES],
)
def test_each_message_names_its_line_and_field(
    text: str, line: int, field: str, problem: str
) -> None:
    with pytest.raises(WorkloadError) as info:
        parse_toml(text, source="w.toml")
    assert str(info.value) == f"w.toml:{line}: {field}: {problem}"
    assert (info.value.line, info.value.field_path, info.value.problem) == (line, field, problem)


def test_the_message_cases_are_distinct() -> None:
    assert len({case[0] for case in MESSAGES}) == len(MESSAGES)
    assert len({case[1] for case in MESSAGES}) == len(MESSAGES)


# -- what the parser accepts: defaults and values at the edges of each range ------------------


def test_a_minimal_file_takes_every_default() -> None:
    w = parse_toml(sub("workers = 1", ""))
    assert w.load == Load(
        mode=Mode.CLOSED,
        workers=1,
        connections=4,
        warmup_s=0.0,
        duration_s=30.0,
        think_time_s=0.0,
        ready_timeout_s=60.0,
        max_parallel_connects=128,
        on_worker_loss=OnWorkerLoss.FAIL,
        on_query_failure=OnQueryFailure.FAIL,
        enrich=True,
        enrichment_timeout_s=120.0,
        rate=0.0,
        arrival=Arrival.CONSTANT,
        max_lag_s=None,
        stages=(),
        find_max=None,
    )
    assert w.target == Target(Driver.SQLITE, "w.db", "", "", {})
    assert (w.description, w.setup_sql, w.slo) == ("", (), Slo())
    assert w.queries == (Query("q", "SELECT ?", 1.0, (ParamSpec("int", (1, 9)),)),)


def test_the_default_connections_follow_the_workers() -> None:
    assert parse_toml(load_line("workers = 6")).load.connections == 6
    assert parse_toml(load_line("workers = 3")).load.connections == 4


def test_every_load_field_is_read() -> None:
    text = load_line(
        'mode = "open"\nworkers = 2\nconnections = 8\nwarmup = "2s"\nduration = "9s"\n'
        'think_time = "5ms"\nready_timeout = "100ms"\nmax_parallel_connects = 4096\n'
        'on_worker_loss = "continue"\non_query_failure = "continue"\nenrich = false\n'
        'enrichment_timeout = "1s"\nrate = 10000000\narrival = "poisson"\nmax_lag = "50ms"'
    )
    assert parse_toml(text).load == Load(
        mode=Mode.OPEN,
        workers=2,
        connections=8,
        warmup_s=2.0,
        duration_s=9.0,
        think_time_s=0.005,
        ready_timeout_s=0.1,
        max_parallel_connects=4096,
        on_worker_loss=OnWorkerLoss.CONTINUE,
        on_query_failure=OnQueryFailure.CONTINUE,
        enrich=False,
        enrichment_timeout_s=1.0,
        rate=10_000_000.0,
        arrival=Arrival.POISSON,
        max_lag_s=0.05,
    )


@pytest.mark.parametrize(
    ("line", "field", "value"),
    [
        ("workers = 10000", "workers", 10_000),
        ("connections = 1", "connections", 1),
        ("connections = 100000", "connections", 100_000),
        ("max_parallel_connects = 1", "max_parallel_connects", 1),
        ('duration = "1ms"', "duration_s", 0.001),
        ('duration = "168h"', "duration_s", 604_800.0),
        ("duration = 2.5", "duration_s", 2.5),
        ('warmup = "168h"', "warmup_s", 604_800.0),
        ('max_lag = "0s"', "max_lag_s", None),
    ],
)
def test_load_values_at_the_edges_are_taken(line: str, field: str, value: object) -> None:
    assert getattr(parse_toml(load_line(line)).load, field) == value


def test_stages_set_the_duration_and_take_zero_to_all_connections() -> None:
    closed = parse_toml(
        BASE + STAGE + "connections = 0\n" + '\n[[load.stage]]\nduration = "2s"\nconnections = 4\n'
    ).load
    assert closed.stages == (Stage(1.0, connections=0), Stage(2.0, connections=4))
    assert closed.duration_s == 3.0
    opened = parse_toml(
        OPEN + STAGE + "rate = 0\n" + '\n[[load.stage]]\nduration = "1ms"\nrate = 7\n'
    )
    assert opened.load.stages == (Stage(1.0, rate=0.0), Stage(0.001, rate=7.0))
    assert opened.load.duration_s == 1.001 and opened.load.rate == 0.0
    overridden = parse_toml(BASE + STAGE + "connections = 1\n", overrides=Overrides(duration_s=5.0))
    assert overridden.load.duration_s == 5.0


def test_find_max_defaults_and_the_duration_its_steps_need() -> None:
    load = parse_toml(load_line('mode = "find_max"')).load
    assert load.find_max == FindMax()
    # 4 to 64 by 4: 16 levels; 10 s a step, for up to 2 x 16 + 8 steps
    assert (load.duration_s, load.connections) == (400.0, 64)
    given = parse_toml(find_max('{ start = 2, step = 3, max = 11, step_duration = "2s" }')).load
    assert given.find_max == FindMax(start=2, step=3, max=11, step_duration_s=2.0)
    assert (given.duration_s, given.connections) == (2.0 * (2 * 4 + 8), 11)
    assert given.find_max is not None and given.find_max.max == 11
    # a table that leaves a field out takes its default
    assert parse_toml(find_max("{ start = 2 }")).load.find_max == FindMax(start=2)


def test_the_most_queries_allowed_are_taken() -> None:
    text = BASE + "".join(f'\n[[query]]\nname = "q{i}"\nsql = "SELECT 1"\n' for i in range(255))
    assert len(parse_toml(text).queries) == 256


def test_find_max_reads_every_field_and_keeps_a_given_duration() -> None:
    text = load_line(
        'mode = "find_max"\nduration = "7s"\nconnections = 20\nfind_max = { start = 100, '
        "step = 50, max = 200000, step_duration = 3, p95_drift = 0, max_error_rate = 0.2, "
        'min_gain = 0, by = "rate" }'
    )
    load = parse_toml(text).load
    assert load.find_max == FindMax(
        start=100,
        step=50,
        step_duration_s=3.0,
        max=200_000,
        p95_drift=0.0,
        max_error_rate=0.2,
        min_gain=0.0,
        by=StepBy.RATE,
    )
    # stepped by rate: the connections stay, and the given duration is kept
    assert (load.duration_s, load.connections) == (7.0, 20)
    capped = parse_toml(find_max("{ start = 1, step = 1, max = 100000 }")).load
    assert capped.duration_s == 604_800.0 and capped.connections == 100_000
    equal = parse_toml(find_max("{ start = 5, max = 5 }")).load
    assert equal.find_max is not None and (equal.find_max.start, equal.find_max.max) == (5, 5)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("{ int = [5, 5] }", ParamSpec("int", (5, 5))),
        ("{ float = [-1, 2.5] }", ParamSpec("float", (-1, 2.5))),
        ('{ pool = "SELECT id FROM t" }', ParamSpec("pool", ("SELECT id FROM t",))),
        ("{ zipf = [3, 3, 10] }", ParamSpec("zipf", (3, 3, 10.0))),
        ("{ zipf = [1, 9, 0.01] }", ParamSpec("zipf", (1, 9, 0.01))),
        ("{ hotspot = [1, 9, 0.01, 0.99] }", ParamSpec("hotspot", (1, 9, 0.01, 0.99))),
        ("{ hotspot = [4, 4, 0.5, 0.5] }", ParamSpec("hotspot", (4, 4, 0.5, 0.5))),
        ("{ sequence = [7] }", ParamSpec("sequence", (7,))),
        ("{ sequence = -3 }", ParamSpec("sequence", (-3,))),
        ("{ string = 5 }", ParamSpec("string", (5, 5))),
        ("{ string = [0, 1000000] }", ParamSpec("string", (0, 1_000_000))),
        ('{ choice = [true, 1, 2.5, "a"] }', ParamSpec("choice", (True, 1, 2.5, "a"))),
    ],
)
def test_generators_at_the_edges_of_their_ranges_are_taken(spec: str, expected: ParamSpec) -> None:
    assert parse_toml(param(spec)).queries[0].params == (expected,)


def test_targets_setup_description_weights_and_slos_are_read() -> None:
    text = (
        sub(
            'database = "w.db"',
            'driver = "postgres"\ndsn = "host=db user=u"\noptions = { application_name = "x" }',
        )
        .replace('name = "w"\n', 'name = "w"\ndescription = "about"\n')
        .replace('sql = "SELECT ?"', 'sql = "SELECT ?"\nweight = 0.5')
    )
    text += '\n[setup]\nsql = "CREATE TABLE t (a)"\n'
    text += "\n[slo]\np50_ms = 0\np95_ms = 2\np99_ms = 3\nerror_rate = 1\nmin_qps = 4\n"
    text += "\n[slo.query.q]\nerror_rate = 0\n"
    w = parse_toml(text)
    assert w.target == Target(Driver.POSTGRES, "", "host=db user=u", "", {"application_name": "x"})
    assert (w.description, w.setup_sql, w.queries[0].weight) == (
        "about",
        ("CREATE TABLE t (a)",),
        0.5,
    )
    assert w.slo == Slo(
        p50_ms=0.0,
        p95_ms=2.0,
        p99_ms=3.0,
        error_rate=1.0,
        min_qps=4.0,
        by_kind={"q": Slo(error_rate=0.0)},
    )
    snowflake = parse_toml(
        sub('database = "w.db"', 'driver = "snowflake"\nconnection = "c"\noptions = { role = "r" }')
    )
    assert snowflake.target == Target(Driver.SNOWFLAKE, "", "", "c", {"role": "r"})


def test_line_of_locates_a_field_only_with_the_source_text() -> None:
    assert Parser("w.toml", BASE).line_of("query[0].sql") == 11
    assert Parser("w.toml", BASE).line_of("load") == 6
    assert Parser("w.toml", None).line_of("query[0].sql") is None


# -- locating a field past strings, comments and arrays of tables ----------------------------

QUERY_PARAMS_TABLES = """\
name = "w"

[target]
database = "w.db"

[[query]]
name = "a"
sql = "SELECT ?"

[[query.params]]
int = [1, 9]

[[query]]
name = "b"
sql = "SELECT ?"

[[query.params]]
int = [9, 1]
"""


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        pytest.param(
            'description = """\nname = "x"\nmore text\n"""\nname = "w x"\n',
            5,
            "name",
            id="multi_line_string_on_the_first_line",
        ),
        pytest.param(
            "name = \"w\"\ndescription = '''\n[load]\nworkers = 0\n'''\n"
            '[target]\ndatabase = "w.db"\n\n[load]\nworkers = 0\n',
            10,
            "load.workers",
            id="multi_line_literal_string",
        ),
        pytest.param(
            'name = "w"\n\n[target]\n  # use """ for SQL over several lines\n'
            'database = "w.db"\n\n[load]\nworkers = 0\n',
            8,
            "load.workers",
            id="triple_quotes_in_an_indented_comment",
        ),
        pytest.param(
            'name = "w"\ndescription = """one line"""\n[target]\ndatabase = "w.db"\n\n'
            "[load]\nworkers = 0\n",
            7,
            "load.workers",
            id="triple_quoted_string_on_one_line",
        ),
        pytest.param(
            '# orders\n[target]\ndatabase = "w.db"\n', 1, "name", id="absent_field_after_a_comment"
        ),
        pytest.param(
            QUERY_PARAMS_TABLES, 17, "query[1].params[0]", id="params_as_arrays_of_tables"
        ),
    ],
)
def test_a_field_is_located_past_strings_comments_and_arrays(
    text: str, line: int, field: str
) -> None:
    with pytest.raises(WorkloadError) as info:
        parse_toml(text)
    assert (info.value.line, info.value.field_path) == (line, field)


def test_overriding_the_workers_moves_the_default_connections_along() -> None:
    """Connections the file leaves to their default follow an overridden worker count."""
    no_connections = sub("workers = 1", "")
    assert parse_toml(no_connections, overrides=Overrides(workers=8)).load.connections == 8
    assert parse_toml(no_connections, overrides=Overrides(workers=2)).load.connections == 4
    given = load_line("connections = 9")
    assert parse_toml(given, overrides=Overrides(workers=3)).load.connections == 9
    with pytest.raises(WorkloadError) as info:
        parse_toml(given, overrides=Overrides(workers=10))
    assert str(info.value) == (
        "overrides: connections: must be at least load.workers (10) so every worker has a "
        "connection"
    )
    assert info.value.line is None
