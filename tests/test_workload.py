"""The workload file model: validation messages, the CLI's bad-input path, the canonical
form, placeholders, durations, and the workers' value generators."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snowload.durations import format_duration, parse_duration
from snowload.workload import (
    ParamSpec,
    Query,
    WorkloadError,
    count_placeholders,
    load_file,
    parse_json,
    parse_toml,
)
from worker.generators import Sequences, compile_param, compile_query, weighted_picker

REPO = Path(__file__).resolve().parent.parent

# A valid workload; every bad file below is this text with one mistake edited in, so the
# expected line numbers can be read off here.
QUERIES = """\
[[query]]
name = "point_lookup"
weight = 80
sql = "SELECT * FROM orders WHERE id = ?"
params = [{ int = [1, 1000] }]

[[query]]
name = "insert"
weight = 20
sql = "INSERT INTO orders (id, total) VALUES (?, ?)"
params = [{ sequence = 1000001 }, { float = [1.0, 500.0] }]
"""
VALID = (
    """\
name = "orders"

[target]
driver = "sqlite"
database = "orders.db"

[setup]
sql = ["CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, total REAL)"]

[load]
workers = 2
connections = 4
warmup = "0s"
duration = "1s"

"""
    + QUERIES
    + """
[slo]
p95_ms = 20
error_rate = 0.001
"""
)
# line  1 name            line 16 [[query]]        line 22 [[query]]
# line  3 [target]        line 17   name           line 23   name
# line  4   driver        line 18   weight = 80    line 24   weight = 20
# line  5   database      line 19   sql            line 25   sql
# line 10 [load]          line 20   params         line 26   params
# line 11   workers       line 28 [slo]
# line 12   connections   line 29   p95_ms
# line 14   duration      line 30   error_rate
SQLITE_TARGET = 'driver = "sqlite"\ndatabase = "orders.db"'


def edit(old: str, new: str, then: tuple[str, str] | None = None) -> str:
    """VALID with ``old`` (which must occur exactly once) replaced, then ``then`` likewise."""
    assert VALID.count(old) == 1, f"{old!r} must occur exactly once"
    text = VALID.replace(old, new)
    if then is not None:
        assert text.count(then[0]) == 1, f"{then[0]!r} must occur exactly once"
        text = text.replace(*then)
    return text


@dataclass(frozen=True)
class Bad:
    id: str
    text: str
    line: int
    field: str
    problem: str
    """A fragment of the message after the field."""


BAD_FILES = [
    Bad("invalid_toml", edit("[load]", "[load"), 10, "", "invalid TOML: Expected ']'"),
    Bad("missing_name", edit('name = "orders"\n\n', ""), 1, "name", "is required"),
    Bad(
        "unknown_top_level_field",
        edit('name = "orders"\n', 'name = "orders"\ntimeout = "5s"\n'),
        2,
        "timeout",
        "unknown field; allowed: name, description, target, setup, load, query, slo",
    ),
    Bad(
        "misspelled_load_field",
        edit("connections = 4", "conections = 4"),
        12,
        "load.conections",
        "unknown field (did you mean 'connections'?); allowed: mode, workers, connections",
    ),
    Bad(
        "string_for_integer",
        edit("workers = 2", 'workers = "2"'),
        11,
        "load.workers",
        "must be an integer, got a string",
    ),
    Bad(
        "negative_weight",
        edit("weight = 20", "weight = -3"),
        24,
        "query[1].weight",
        "must be a positive number, got -3",
    ),
    Bad(
        "zero_weight",
        edit("weight = 80", "weight = 0"),
        18,
        "query[0].weight",
        "must be a positive number, got 0",
    ),
    Bad(
        "nan_weight",
        edit("weight = 20", "weight = nan"),
        24,
        "query[1].weight",
        "must be a positive number, got nan",
    ),
    Bad(
        "duplicate_query_name",
        edit('name = "insert"', 'name = "point_lookup"'),
        23,
        "query[1].name",
        'duplicate query name "point_lookup"',
    ),
    Bad(
        "reserved_query_name",
        edit('name = "insert"', 'name = "all"'),
        23,
        "query[1].name",
        '"all" is reserved (it names the every-kind row in comparisons): choose another name',
    ),
    Bad(
        "query_without_name",
        edit('name = "insert"', "# no name"),
        22,
        "query[1].name",
        "is required",
    ),
    Bad(
        "placeholder_count_mismatch",
        edit("VALUES (?, ?)", "VALUES (?, ?, ?)"),
        26,
        "query[1].params",
        "sql has 3 '?' placeholder(s) but 2 param(s) are given",
    ),
    Bad(
        "unknown_generator",
        edit("{ int = [1, 1000] }", "{ uniform = [1, 1000] }"),
        20,
        "query[0].params[0]",
        "unknown generator 'uniform'",
    ),
    Bad(
        "empty_int_range",
        edit("{ int = [1, 1000] }", "{ int = [1000, 1] }"),
        20,
        "query[0].params[0]",
        "int range is empty: low 1000 > high 1",
    ),
    Bad(
        "choice_of_dates",
        edit("{ int = [1, 1000] }", "{ choice = [2024-01-01] }"),
        20,
        "query[0].params[0]",
        "choice values must be strings, numbers or booleans, got date",
    ),
    Bad(
        "bad_duration_string",
        edit('duration = "1s"', 'duration = "5 seconds"'),
        14,
        "load.duration",
        'invalid duration "5 seconds"',
    ),
    Bad(
        "array_for_duration",
        edit('duration = "1s"', 'duration = [1, "s"]'),
        14,
        "load.duration",
        "must be a duration such as '30s', got an array",
    ),
    Bad(
        "connections_below_workers",
        edit("connections = 4", "connections = 1"),
        12,
        "load.connections",
        "must be at least load.workers (2) so every worker has a connection",
    ),
    Bad("no_query", edit(QUERIES, ""), 1, "query", "at least one [[query]] is required"),
    Bad(
        "unknown_mode",
        edit("workers = 2", 'mode = "turbo"\nworkers = 2'),
        11,
        "load.mode",
        'must be one of closed, open, find_max, got "turbo"',
    ),
    Bad(
        "open_mode_without_rate",
        edit("workers = 2", 'mode = "open"\nworkers = 2'),
        10,
        "load.rate",
        "open mode needs a target rate (queries per second)",
    ),
    Bad(
        "find_max_max_below_start",
        edit("workers = 2", 'mode = "find_max"\nfind_max = { start = 8, max = 4 }\nworkers = 2'),
        12,
        "load.find_max.max",
        "must be at least start (8)",
    ),
    Bad(
        "zipf_exponent_out_of_range",
        edit("{ int = [1, 1000] }", "{ zipf = [1, 1000, 0] }"),
        20,
        "query[0].params[0]",
        "zipf takes [low, high, s] with 0 < s <= 10, got [1, 1000, 0]",
    ),
    Bad(
        "sqlite_without_database",
        edit('database = "orders.db"', ""),
        3,
        "target.database",
        "is required for the sqlite driver",
    ),
    Bad(
        "postgres_without_dsn",
        edit(SQLITE_TARGET, 'driver = "postgres"'),
        3,
        "target.dsn",
        "is required for the postgres driver",
    ),
    Bad(
        "snowflake_password_inline",
        edit(
            SQLITE_TARGET,
            'driver = "snowflake"\nconnection = "loadtest"\n'
            'options = { warehouse = "LOAD_WH", password = "hunter2" }',
        ),
        6,
        "target.options.password",
        "credentials do not belong in workload files; keep them in connections.toml",
    ),
    Bad(
        "snowflake_key_file_table",
        edit(
            SQLITE_TARGET,
            'driver = "snowflake"\nconnection = "loadtest"\n\n'
            '[target.options]\nprivate_key_file = "~/.ssh/load.p8"',
        ),
        8,
        "target.options.private_key_file",
        "credentials do not belong in workload files",
    ),
    Bad(
        "slo_for_unknown_query",
        VALID + "\n[slo.query.lookup]\np95_ms = 5\n",
        32,
        "slo.query.lookup",
        'no query named "lookup"',
    ),
    Bad(
        "error_rate_above_one",
        edit("error_rate = 0.001", "error_rate = 2.5"),
        30,
        "slo.error_rate",
        "is a fraction between 0 and 1, got 2.5",
    ),
    Bad(
        "per_query_error_rate_above_one",
        VALID + "\n[slo.query.insert]\nerror_rate = 1.5\n",
        33,
        "slo.query.insert.error_rate",
        "is a fraction between 0 and 1, got 1.5",
    ),
    Bad(
        # lines of a multi-line string that look like TOML must not be mistaken for TOML
        "located_past_multiline_string",
        edit(
            'sql = ["CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, total REAL)"]',
            'sql = """\n[load]\nworkers = 1\n"""',
            then=("workers = 2", "workers = 0"),
        ),
        14,
        "load.workers",
        "must be between 1 and 10000, got 0",
    ),
]
BAD_BY_ID = {bad.id: bad for bad in BAD_FILES}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_valid_base_file_parses(tmp_path: Path) -> None:
    w = load_file(write(tmp_path, "valid.toml", VALID))
    assert [q.name for q in w.queries] == ["point_lookup", "insert"]
    assert (w.load.workers, w.load.connections, w.load.duration_s) == (2, 4, 1.0)


def test_the_bad_files_are_distinct() -> None:
    assert len(BAD_FILES) >= 14
    assert len(BAD_BY_ID) == len(BAD_FILES)
    assert len({bad.text for bad in BAD_FILES}) == len(BAD_FILES)


@pytest.mark.parametrize("bad", BAD_FILES, ids=lambda bad: bad.id)
def test_bad_file_names_file_line_and_field(tmp_path: Path, bad: Bad) -> None:
    path = write(tmp_path, f"{bad.id}.toml", bad.text)
    with pytest.raises(WorkloadError) as info:
        load_file(path)
    message = str(info.value)
    prefix = f"{path}:{bad.line}: {bad.field}: " if bad.field else f"{path}:{bad.line}: "
    assert message.startswith(prefix), message
    assert bad.problem in message
    assert (info.value.line, info.value.field_path) == (bad.line, bad.field)
    assert "\n" not in message


def test_parse_toml_names_the_given_source() -> None:
    with pytest.raises(WorkloadError, match=r"^orders\.toml:24: query\[1\]\.weight: "):
        parse_toml(BAD_BY_ID["negative_weight"].text, source="orders.toml")


def test_unreadable_file_is_a_workload_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(WorkloadError, match="cannot read file"):
        load_file(missing)


# ------------------------------------------------------------------ the CLI's bad-input path


def run_cli(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "snowload.cli", "run", *args],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("SNOWLOAD_")},
            "SNOWLOAD_HOME": str(home),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc, home


def assert_nothing_ran(home: Path) -> None:
    # the workload's target is the relative sqlite path orders.db, which a worker would
    # create under SNOWLOAD_HOME/targets when it connects; a run also records its results
    # under SNOWLOAD_HOME. Bad input must leave no file there at all.
    assert not (home / "targets" / "orders.db").exists(), "a worker opened the target"
    created = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert created == [], f"bad input still wrote {created}"


@pytest.mark.parametrize(
    "bad_id",
    [
        "misspelled_load_field",
        "negative_weight",
        "bad_duration_string",
        "connections_below_workers",
        "slo_for_unknown_query",
    ],
)
def test_cli_rejects_bad_file_with_exit_2(tmp_path: Path, bad_id: str) -> None:
    bad = BAD_BY_ID[bad_id]
    path = write(tmp_path, f"{bad.id}.toml", bad.text)
    proc, home = run_cli(tmp_path, str(path))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert f"error: {path}:{bad.line}: {bad.field}: " in proc.stderr
    assert bad.problem in proc.stderr
    assert_nothing_ran(home)


def test_cli_prints_brackets_in_the_message_verbatim(tmp_path: Path) -> None:
    path = write(tmp_path, "no[query].toml", BAD_BY_ID["no_query"].text)
    proc, home = run_cli(tmp_path, str(path))
    assert proc.returncode == 2
    assert_nothing_ran(home)
    assert f"{path}:1: query: at least one [[query]] is required" in proc.stderr


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--workers", "0", "workers: must be between 1 and 10000, got 0"),
        ("--connections", "1", "connections: must be at least load.workers (2)"),
        ("--duration", "nonsense", "argument --duration: invalid duration 'nonsense'"),
        ("--warmup", "-5s", "argument --warmup: duration must not be negative, got '-5s'"),
    ],
)
def test_cli_rejects_bad_override_with_exit_2(
    tmp_path: Path, option: str, value: str, expected: str
) -> None:
    path = write(tmp_path, "valid.toml", VALID)
    proc, home = run_cli(tmp_path, str(path), f"{option}={value}")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert_nothing_ran(home)


# ------------------------------------------------------------------------ canonical form


def test_quickstart_round_trips_through_canonical_json() -> None:
    w = load_file(REPO / "examples" / "quickstart.toml")
    assert len(w.queries) == 4 and w.setup_sql
    again = parse_json(w.to_json())
    assert again == w
    assert again.to_json() == w.to_json()


def test_every_field_round_trips_through_canonical_json() -> None:
    text = """\
name = "everything"
description = "all the optional parts"

[target]
driver = "snowflake"
connection = "loadtest"
options = { warehouse = "LOAD_WH", role = "LOADER" }

[setup]
sql = "CREATE TABLE IF NOT EXISTS t (id INTEGER, tag TEXT)"

[load]
workers = 3
connections = 12
warmup = "1m30s"
duration = "2h"
think_time = "5ms"
ready_timeout = "45s"
max_parallel_connects = 8
on_worker_loss = "continue"

[[query]]
name = "insert"
weight = 2.5
sql = "INSERT INTO t (id, tag) VALUES (?, ?) -- why?"
params = [{ sequence = [7] }, { string = 12 }]

[[query]]
name = "read"
sql = "SELECT * FROM t WHERE id BETWEEN ? AND ? AND tag IN (?, '?')"
params = [{ int = [1, 10] }, { float = [0, 1.5] }, { choice = ["a", 2, 3.5, true] }]

[slo]
p50_ms = 1
min_qps = 100

[slo.query.insert]
p99_ms = 40
error_rate = 0
"""
    w = parse_toml(text)
    assert w.load.warmup_s == 90.0 and w.load.duration_s == 7200.0
    assert w.load.think_time_s == 0.005 and w.load.on_worker_loss == "continue"
    assert w.queries[0].params == (ParamSpec("sequence", (7,)), ParamSpec("string", (12, 12)))
    assert w.queries[1].weight == 1.0
    assert w.slo.by_kind["insert"].error_rate == 0.0
    again = parse_json(w.to_json())
    assert again == w
    assert again.to_json() == w.to_json()


# ---------------------------------------------------------------------------- placeholders


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", 0),
        ("SELECT ?", 1),
        ("SELECT * FROM t WHERE a = ? AND b = ?", 2),
        ("SELECT '?' , ?", 1),
        ('SELECT "weird?col" FROM t WHERE id = ?', 1),
        ("SELECT 'it''s ?', ?", 1),
        ("SELECT ? -- is this right?\n, ?", 2),
        ("SELECT ? -- trailing comment with ?", 1),
        ("SELECT /* ? ? */ ?", 1),
        ("SELECT ? /* unterminated ?", 1),
        ("SELECT ?/* a */?", 2),
        ("SELECT 'unterminated ?", 0),
    ],
)
def test_count_placeholders_ignores_quotes_and_comments(sql: str, expected: int) -> None:
    assert count_placeholders(sql) == expected


def test_question_mark_in_a_literal_needs_no_param() -> None:
    text = edit(
        "SELECT * FROM orders WHERE id = ?",
        "SELECT * FROM orders WHERE id = ? AND note <> 'why?' -- or not?",
    )
    w = parse_toml(text)
    assert len(w.queries[0].params) == 1


# ------------------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("15s", 15.0),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("1h2m3s4ms", 3723.004),
        ("1.5s", 1.5),
        (" 5s ", 5.0),
        ("0s", 0.0),
        (30, 30.0),
        (0.25, 0.25),
        ("5", 5.0),  # a bare number is seconds, in a file and on the command line alike
        ("2.5", 2.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (0.0004, "0s"), (0.5, "500ms"), (90.0, "1m30s"), (7200.0, "2h"), (3601, "1h1s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**12))
def test_duration_round_trip_in_milliseconds(millis: int) -> None:
    text = format_duration(millis / 1000)
    assert re.fullmatch(r"0s|(\d+h)?(\d+m)?(\d+s)?(\d+ms)?", text)
    assert round(parse_duration(text) * 1000) == millis
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("text", ["5 seconds", "five", "s", "5d", "1.5.5s", "5s5", "ms5", "1m 30"])
def test_bad_duration_strings(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"invalid duration {text!r}")):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "problem"),
    [("", "empty"), ("  ", "empty"), (-1, "negative"), ("-5s", "negative"), ("-5", "negative")],
)
def test_empty_or_negative_durations(value: str | int, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_duration(value)


def test_boolean_is_not_a_duration() -> None:
    with pytest.raises(ValueError, match="boolean"):
        parse_duration(True)
    with pytest.raises(ValueError, match="negative"):
        format_duration(-0.5)


# ----------------------------------------------------------------------------- generators


def test_sequences_are_disjoint_across_slots_and_threads() -> None:
    slots, threads, draws, start = 3, 4, 5_000, 1_000_001
    query = Query(
        name="insert",
        sql="INSERT INTO t VALUES (?, ?)",
        params=(ParamSpec("sequence", (start,)), ParamSpec("int", (1, 10))),
    )
    sequences = [Sequences(slot, slots) for slot in range(slots)]
    results: dict[tuple[int, int], list[int]] = {}
    barrier = threading.Barrier(slots * threads)

    def draw(slot: int, thread: int) -> None:
        make = compile_query(0, query, random.Random(slot * threads + thread), sequences[slot])
        barrier.wait()
        results[slot, thread] = [make()[0] for _ in range(draws)]

    workers = [
        threading.Thread(target=draw, args=(slot, thread))
        for slot in range(slots)
        for thread in range(threads)
    ]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over as often as possible
    try:
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    finally:
        sys.setswitchinterval(interval)

    assert len(results) == slots * threads
    everything = [v for values in results.values() for v in values]
    assert len(everything) == slots * threads * draws
    assert len(set(everything)) == len(everything), "a sequence value was issued twice"
    for slot in range(slots):
        mine = [v for (s, _), values in results.items() if s == slot for v in values]
        assert all((v - start) % slots == slot for v in mine)
        # the threads of one worker share one counter: together they leave no gaps
        assert sorted(mine) == [start + slot + slots * k for k in range(threads * draws)]


def test_each_sequence_parameter_has_its_own_counter() -> None:
    query = Query(
        name="q",
        sql="SELECT ?, ?",
        params=(ParamSpec("sequence", (1,)), ParamSpec("sequence", (100,))),
    )
    seqs = Sequences(1, 4)
    make = compile_query(0, query, random.Random(0), seqs)
    other = compile_query(1, query, random.Random(0), seqs)
    assert [make() for _ in range(3)] == [(2, 101), (6, 105), (10, 109)]
    assert other() == (2, 101)


def test_sequence_slot_must_be_in_range() -> None:
    with pytest.raises(ValueError, match=re.escape("slot 3 outside 0..2")):
        Sequences(3, 3)


@pytest.mark.parametrize(
    ("low", "high"),
    [(5, 5), (-5, 5), (1, 100_000), (0, 2**53 - 1), (0, 2**60), (-(2**63), 2**63 - 1)],
)
def test_int_generator_stays_within_bounds(low: int, high: int) -> None:
    gen = compile_param(ParamSpec("int", (low, high)), random.Random(7), Sequences(0, 1), (0, 0))
    values = [gen() for _ in range(20_000)]
    assert all(type(v) is int and low <= v <= high for v in values)
    span = high - low + 1
    if span <= 100:
        assert set(values) == set(range(low, high + 1))
        return
    assert min(values) < low + span // 4 and max(values) > high - span // 4
    # wide ranges must use the low bits too (a float draw times a span > 2**53 cannot)
    assert {v % 8 for v in values} == set(range(8))
    if span > 10**12:
        assert len(set(values)) == len(values)  # a repeat has probability < 1e-3


def test_float_string_and_choice_generators_stay_within_their_specs() -> None:
    rnd, seqs = random.Random(11), Sequences(0, 1)
    real = compile_param(ParamSpec("float", (1.0, 2.5)), rnd, seqs, (0, 0))
    text = compile_param(ParamSpec("string", (2, 5)), rnd, seqs, (0, 1))
    pick = compile_param(ParamSpec("choice", ("a", 2, None)), rnd, seqs, (0, 2))
    floats = [real() for _ in range(10_000)]
    strings = [text() for _ in range(10_000)]
    picks = [pick() for _ in range(10_000)]
    assert all(1.0 <= f <= 2.5 for f in floats)
    assert {len(s) for s in strings} == {2, 3, 4, 5}
    assert all(re.fullmatch(r"[A-Za-z0-9]+", s) for s in strings)
    assert set(picks) == {"a", 2, None}


@pytest.mark.parametrize("weights", [[60, 20, 10, 10], [0.5, 1.5], [1, 1, 1], [1, 1000]])
def test_weighted_picker_frequencies_follow_the_weights(weights: list[float]) -> None:
    n = 100_000
    pick = weighted_picker(weights, random.Random(20240601))
    counts = Counter(pick() for _ in range(n))
    assert set(counts) <= set(range(len(weights)))
    total = sum(weights)
    for i, w in enumerate(weights):
        p = w / total
        sigma = (n * p * (1 - p)) ** 0.5
        assert abs(counts[i] - n * p) <= 6 * sigma + 1, (i, counts[i], n * p)


def test_weighted_picker_with_one_query_always_picks_it() -> None:
    pick = weighted_picker([3.0], random.Random(1))
    assert {pick() for _ in range(100)} == {0}
