"""The command line as a newcomer meets it: help for everything, the sub-command's own usage
on a mistake, options where people put them, durations that mean the same everywhere,
and pipes that close early (real processes, a real closed pipe)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.cli import build_parser
from snowload.exit_codes import ExitCode
from worker.cli import build_parser as worker_parser

WORKLOAD = """
name = "conv"
[target]
database = "conv.db"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT)",
       "INSERT OR IGNORE INTO t WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 \
FROM n WHERE i < 50) SELECT i, printf('%0100d', i) FROM n"]
[load]
workers = 1
connections = 2
warmup = 0
duration = 2
think_time = "1ms"
[[query]]
name = "read"
sql = "SELECT v FROM t WHERE k = ?"
params = [{ int = [1, 50] }]
"""


def env_for(tmp: Path) -> dict[str, str]:
    return dict(os.environ, SNOWLOAD_HOME=str(tmp / "home"), SNOWLOAD_DB=str(tmp / "results.db"))


def cli(tmp: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snowload.cli", *args],
        env=env_for(tmp),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kw,  # type: ignore[arg-type]
    )


def into_closed_pipe(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run with stdout on a pipe whose reading end is already closed (``| head`` that has
    exited): every write to it fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "snowload.cli", *args],
            env=env_for(tmp),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A results database with one finished run: (tmp dir, run id)."""
    tmp = tmp_path_factory.mktemp("conv")
    (tmp / "w.toml").write_text(WORKLOAD)
    done = cli(tmp, "run", str(tmp / "w.toml"), "--json")
    assert done.returncode == 0, done.stderr
    yield tmp, json.loads(done.stdout)["run_id"]


# ------------------------------------------------------------------------------ help


def _actions(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_option_and_positional_has_help() -> None:
    missing = [
        f"{path}: {'/'.join(a.option_strings) or a.dest}"
        for parser, root in ((build_parser(), "snowload"), (worker_parser(), "snowload worker"))
        for path, a in _actions(parser, root)
        if not a.help or a.help == argparse.SUPPRESS
    ]
    assert missing == []


def test_run_help_gives_the_exit_codes_and_where_the_summary_goes(tmp_path: Path) -> None:
    out = cli(tmp_path, "run", "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "exit codes:" in text
    for code in ExitCode:
        assert f" {code.value} " in text, code
    assert "stderr" in text and "--json" in text and "stdout" in text


def test_worker_help_is_plain_text(tmp_path: Path) -> None:
    out = cli(tmp_path, "worker", "--help")
    assert out.returncode == 0
    assert "``" not in out.stdout and ":class:" not in out.stdout
    assert "--controller HOST:PORT" in out.stdout


# ------------------------------------------------------------------------ mistakes


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (("runs", "list", "--bogus"), "usage: snowload runs list"),
        (("runs", "show"), "usage: snowload runs show"),
        (("run", "w.toml", "--bogus"), "usage: snowload run "),
        (("check",), "usage: snowload check"),
    ],
)
def test_argument_errors_print_the_subcommands_own_usage(
    tmp_path: Path, args: tuple[str, ...], usage: str
) -> None:
    out = cli(tmp_path, *args)
    assert out.returncode == ExitCode.BAD_INPUT
    assert out.stderr.startswith(usage), out.stderr
    assert "usage: snowload [-h]" not in out.stderr
    assert "Traceback" not in out.stderr


def test_store_options_are_accepted_after_the_verb(stored: tuple[Path, str]) -> None:
    tmp, run_id = stored
    db = str(tmp / "results.db")
    env = {k: v for k, v in env_for(tmp).items() if k != "SNOWLOAD_DB"}
    before = subprocess.run(
        [sys.executable, "-m", "snowload.cli", "runs", "--db", db, "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    after = subprocess.run(
        [sys.executable, "-m", "snowload.cli", "runs", "list", "--db", db, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert before.returncode == after.returncode == 0, after.stderr
    assert [r["run_id"] for r in json.loads(after.stdout)] == [run_id]
    assert after.stdout == before.stdout
    # a value after the verb wins over one before it
    other = subprocess.run(
        [
            sys.executable,
            "-m",
            "snowload.cli",
            "runs",
            "--db",
            db,
            "list",
            "--db",
            str(tmp / "empty.db"),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert other.returncode == 0 and json.loads(other.stdout) == []


def test_a_bare_number_is_seconds_in_files_and_on_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(WORKLOAD)  # warmup = 0, duration = 2 (bare numbers)
    from_file = cli(tmp_path, "check", str(path), "--json")
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["phases"] == [{"phase": "MEASUREMENT", "duration": "2s"}]
    flags = cli(tmp_path, "check", str(path), "--json", "--duration", "5", "--warmup", "1.5")
    assert flags.returncode == 0, flags.stderr
    assert json.loads(flags.stdout)["phases"] == [
        {"phase": "WARMUP", "duration": "1s500ms"},
        {"phase": "MEASUREMENT", "duration": "5s"},
    ]


@pytest.mark.parametrize("value", ["-5s", "-5"])
def test_a_negative_duration_gets_a_real_message(tmp_path: Path, value: str) -> None:
    path = tmp_path / "w.toml"
    path.write_text(WORKLOAD)
    out = cli(tmp_path, "run", str(path), "--duration", value)
    assert out.returncode == ExitCode.BAD_INPUT
    assert f"argument --duration: duration must not be negative, got '{value}'" in out.stderr
    assert "expected one argument" not in out.stderr
    assert out.stderr.startswith("usage: snowload run ")


# --------------------------------------------------------------------------- pipes


@pytest.mark.parametrize(
    "args",
    [
        ("runs", "show", "{id}", "--json"),
        ("runs", "show", "{id}"),
        ("runs", "list", "--json"),
        ("runs", "compare", "{id}", "{id}", "--json"),
        ("runs", "export", "{id}"),
        ("runs", "export", "{id}", "--format", "csv"),
        ("runs", "export", "{id}", "--format", "hlog"),
        ("check", "{toml}", "--json"),
    ],
)
def test_a_closed_pipe_ends_output_quietly(stored: tuple[Path, str], args: tuple[str, ...]) -> None:
    tmp, run_id = stored
    argv = [a.format(id=run_id, toml=tmp / "w.toml") for a in args]
    out = into_closed_pipe(tmp, *argv)
    assert out.returncode == ExitCode.PIPE_CLOSED, out.stderr
    assert out.stderr == "", out.stderr  # no traceback, no "Exception ignored"


def test_run_json_into_a_closed_pipe_still_stores_the_run(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(WORKLOAD)
    out = into_closed_pipe(tmp_path, "run", str(path), "--json")
    assert out.returncode == ExitCode.PIPE_CLOSED
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr
    assert "COMPLETED" in out.stderr  # the summary on stderr was complete
    listed = cli(tmp_path, "runs", "list", "--json")
    assert [r["state"] for r in json.loads(listed.stdout)] == ["COMPLETED"]


# ---------------------------------------------------------------------- the docs


def test_the_readme_lists_every_exit_code_once() -> None:
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1].split("\n### ", 1)[0]
    assert [int(c) for c in re.findall(r"^\| (\d+) \|", section, re.M)] == [
        c.value for c in ExitCode
    ]


def test_grpcio_tools_is_only_a_dev_dependency() -> None:
    import tomllib

    project = tomllib.loads(
        (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    )["project"]
    assert not any(d.startswith("grpcio-tools") for d in project["dependencies"])
    assert any(d.startswith("grpcio-tools") for d in project["optional-dependencies"]["dev"])
