"""The workload file: TOML parsed with tomllib into one typed, validated model.

Every problem is reported as a :class:`WorkloadError` naming the file, the line (where
it can be found) and the field, e.g.::

    examples/bad.toml:14: query[1].weight: must be a positive number, got -3

The canonical form (``Workload.to_dict`` / ``to_json``) is what the controller sends to
workers and stores with a run; ``parse_mapping`` reads it back unchanged. This module is
the model and the entry points; the validation itself lives in snowload.workload_parser.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from snowload.durations import format_duration


class WorkloadError(ValueError):
    """A workload file is invalid. ``str()`` is the whole, user-facing message."""

    def __init__(self, source: str, line: int | None, field_path: str, problem: str) -> None:
        self.source = source
        self.line = line
        self.field_path = field_path
        self.problem = problem
        where = f"{source}:{line}" if line else source
        prefix = f"{where}: {field_path}: " if field_path else f"{where}: "
        super().__init__(prefix + problem)


class Driver(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"
    SNOWFLAKE = "snowflake"


class StatementPath(StrEnum):
    """How the Snowflake driver sends load statements (``target.options.statement_path``)."""

    LEAN = "lean"
    """snowload's own HTTP client on the connector's session (worker/drivers/snowflake_lean.py)."""
    CONNECTOR = "connector"
    """The connector's cursor, as every statement went before."""


class Mode(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    FIND_MAX = "find_max"


class OnWorkerLoss(StrEnum):
    FAIL = "fail"
    CONTINUE = "continue"


class OnQueryFailure(StrEnum):
    """What a run does when a query kind fails on every attempt from the start (a typo in
    its SQL, a missing table or grant): ``fail`` ends the run early with the reason
    ``query_failed``, naming the kind and its error; ``continue`` runs to the end anyway."""

    FAIL = "fail"
    CONTINUE = "continue"


class Arrival(StrEnum):
    CONSTANT = "constant"
    POISSON = "poisson"


class StepBy(StrEnum):
    CONNECTIONS = "connections"
    RATE = "rate"


IMPLEMENTED_MODES = frozenset(Mode)
MAX_RATE = 10_000_000.0
PG_SECRET_KEYS = frozenset({"password", "sslpassword"})
_KEYWORD = re.compile(r"(?:^|\s)([A-Za-z_]+)\s*=")


def dsn_has_secret(dsn: str) -> bool:
    """Whether a libpq connection string (URL or key=value form) carries a password."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    keyword_secret = any(m.group(1).lower() in PG_SECRET_KEYS for m in _KEYWORD.finditer(dsn))
    if dsn.lstrip().lower().startswith(("postgresql://", "postgres://")):
        parts = urlsplit(dsn.strip())
        netloc_user = parts.netloc.rpartition("@")[0]
        if ":" in netloc_user:  # user:password@ (an empty user name too)
            return True
        keys = {unquote(k).lower() for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
        return bool(keys & PG_SECRET_KEYS)
    return keyword_secret


NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
RESERVED_QUERY_NAMES = frozenset({"all", "mode"})
"""Row names of comparisons and percentile tables ("all" is every kind merged)."""

# Limits that keep a single request from exhausting a controller or a worker.
MAX_QUERIES = 256
MAX_CONNECTIONS = 100_000
MAX_WORKERS = 10_000
MAX_DURATION_S = 7 * 24 * 3600.0
MAX_SLOW_QUERIES = 1000
"""[load] slow_queries: at most this many per phase and query kind."""
MAX_QUERY_SAMPLE = 100_000
"""[load] query_sample: at most this many per run."""


@dataclass(frozen=True)
class Target:
    """Where the load goes. Credentials never live here: Snowflake names a connection."""

    driver: Driver = Driver.SQLITE
    database: str = ""
    """sqlite: file path (relative paths live under the snowload data directory)."""
    dsn: str = ""
    """postgres: libpq connection string."""
    connection: str = ""
    """snowflake: a connection name from connections.toml on each worker host, or "spcs"
    (the service's own OAuth login inside Snowpark Container Services; also what an empty
    name means there)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Driver-specific options (e.g. sqlite busy_timeout_ms, journal_mode)."""


@dataclass(frozen=True)
class ParamSpec:
    """One bound parameter's value generator."""

    kind: str
    """int | float | sequence | string | choice"""
    args: tuple[Any, ...]

    def to_toml_value(self) -> dict[str, Any]:
        if self.kind in ("int", "float", "string", "zipf", "hotspot"):
            return {self.kind: list(self.args)}
        if self.kind in ("sequence", "pool"):
            return {self.kind: self.args[0]}
        return {"choice": list(self.args)}


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    weight: float = 1.0
    params: tuple[ParamSpec, ...] = ()


@dataclass(frozen=True)
class Stage:
    """One ramp of a [[load.stage]]: reach ``connections`` (closed) or ``rate`` (open)
    linearly over ``duration_s``, from where the previous stage ended."""

    duration_s: float
    connections: int | None = None
    rate: float | None = None


@dataclass(frozen=True)
class FindMax:
    """Step load: add ``step`` every ``step_duration_s`` from ``start`` up to ``max``."""

    start: float = 4
    step: float = 4
    step_duration_s: float = 10.0
    max: float = 64
    p95_drift: float = 0.3
    """Degraded when a step's p95 exceeds the first step's by this fraction."""
    max_error_rate: float = 0.01
    min_gain: float = 0.05
    """Degraded when throughput grows by less than this fraction over the best step."""
    by: StepBy = StepBy.CONNECTIONS


@dataclass(frozen=True)
class Load:
    mode: Mode = Mode.CLOSED
    workers: int = 1
    connections: int = 4
    """Total across workers."""
    warmup_s: float = 0.0
    duration_s: float = 30.0
    think_time_s: float = 0.0
    ready_timeout_s: float = 60.0
    max_parallel_connects: int = 128
    on_worker_loss: OnWorkerLoss = OnWorkerLoss.FAIL
    on_query_failure: OnQueryFailure = OnQueryFailure.FAIL
    enrich: bool = True
    """Fetch server-side timings in PROCESSING (PostgreSQL, Snowflake)."""
    enrichment_timeout_s: float = 120.0
    """Enrichment never holds a run longer than this."""
    rate: float = 0.0
    """Open mode: total target queries per second, split across workers."""
    arrival: Arrival = Arrival.CONSTANT
    max_lag_s: float | None = None
    """Open mode: drop a query whose start is later than this behind schedule."""
    stages: tuple[Stage, ...] = ()
    find_max: FindMax | None = None
    slow_queries: int = 20
    """The query log keeps this many slowest queries per phase and query kind."""
    query_sample: int = 1000
    """... and a uniform sample of this many queries per run."""
    record_params: bool = True
    """... with their bound parameters (false: the log holds no parameter values)."""

    @property
    def stepped_by_rate(self) -> bool:
        return self.mode is Mode.OPEN or (
            self.find_max is not None and self.find_max.by is StepBy.RATE
        )


@dataclass(frozen=True)
class Slo:
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    error_rate: float | None = None
    min_qps: float | None = None
    by_kind: Mapping[str, Slo] = field(default_factory=dict)


MAX_POOL_ROWS = 100_000


@dataclass(frozen=True)
class Workload:
    name: str
    target: Target
    queries: tuple[Query, ...]
    load: Load
    setup_sql: tuple[str, ...] = ()
    slo: Slo = field(default_factory=Slo)
    description: str = ""

    def pool_params(self) -> list[tuple[int, int, str]]:
        """(query index, param index, pool SQL) of every ``pool`` parameter."""
        return [
            (qi, pi, str(p.args[0]))
            for qi, q in enumerate(self.queries)
            for pi, p in enumerate(q.params)
            if p.kind == "pool"
        ]

    def to_dict(self) -> dict[str, Any]:
        """The canonical mapping; ``parse_mapping`` reads it back to an equal Workload."""
        target: dict[str, Any] = {"driver": self.target.driver.value}
        for key in ("database", "dsn", "connection"):
            if value := getattr(self.target, key):
                target[key] = value
        if self.target.options:
            target["options"] = dict(self.target.options)
        load = self.load
        out: dict[str, Any] = {
            "name": self.name,
            "target": target,
            "load": {
                "mode": load.mode.value,
                "workers": load.workers,
                "connections": load.connections,
                "warmup": format_duration(load.warmup_s),
                "duration": format_duration(load.duration_s),
                "think_time": format_duration(load.think_time_s),
                "ready_timeout": format_duration(load.ready_timeout_s),
                "max_parallel_connects": load.max_parallel_connects,
                "on_worker_loss": load.on_worker_loss.value,
                "on_query_failure": load.on_query_failure.value,
                "enrich": load.enrich,
                "enrichment_timeout": format_duration(load.enrichment_timeout_s),
                **_load_extras(load),
            },
            "query": [
                {
                    "name": q.name,
                    "weight": q.weight,
                    "sql": q.sql,
                    "params": [p.to_toml_value() for p in q.params],
                }
                for q in self.queries
            ],
        }
        if self.description:
            out["description"] = self.description
        if self.setup_sql:
            out["setup"] = {"sql": list(self.setup_sql)}
        slo = _slo_to_dict(self.slo)
        if slo:
            out["slo"] = slo
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


def _load_extras(load: Load) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if load.rate:
        out["rate"] = load.rate
    if load.arrival is not Arrival.CONSTANT:
        out["arrival"] = load.arrival.value
    if load.max_lag_s is not None:
        out["max_lag"] = format_duration(load.max_lag_s)
    if load.stages:
        out["stage"] = [
            {"duration": format_duration(s.duration_s)}
            | ({"connections": s.connections} if s.connections is not None else {})
            | ({"rate": s.rate} if s.rate is not None else {})
            for s in load.stages
        ]
    if load.slow_queries != 20:
        out["slow_queries"] = load.slow_queries
    if load.query_sample != 1000:
        out["query_sample"] = load.query_sample
    if not load.record_params:
        out["record_params"] = False
    if load.find_max is not None:
        f = load.find_max
        out["find_max"] = {
            "start": f.start,
            "step": f.step,
            "step_duration": format_duration(f.step_duration_s),
            "max": f.max,
            "p95_drift": f.p95_drift,
            "max_error_rate": f.max_error_rate,
            "min_gain": f.min_gain,
            "by": f.by.value,
        }
    return out


def _slo_to_dict(slo: Slo) -> dict[str, Any]:
    out: dict[str, Any] = {
        key: getattr(slo, key)
        for key in ("p50_ms", "p95_ms", "p99_ms", "error_rate", "min_qps")
        if getattr(slo, key) is not None
    }
    if slo.by_kind:
        out["query"] = {name: _slo_to_dict(s) for name, s in slo.by_kind.items()}
    return out


@dataclass(frozen=True)
class Overrides:
    """Command-line / StartRun overrides; None means "as in the file"."""

    workers: int | None = None
    connections: int | None = None
    warmup_s: float | None = None
    duration_s: float | None = None


# --------------------------------------------------------------------------- parsing


def load_file(path: str | Path, overrides: Overrides | None = None) -> Workload:
    """Read and validate a workload file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkloadError(str(p), None, "", f"cannot read file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise WorkloadError(str(p), None, "", "file is not valid UTF-8") from exc
    return parse_toml(text, source=str(p), overrides=overrides)


def parse_toml(
    text: str, source: str = "<workload>", overrides: Overrides | None = None
) -> Workload:
    """Parse workload TOML text; errors name ``source``, the line and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        found = re.search(r"\(at line (\d+), column \d+\)$", msg)
        line: int | None = int(found.group(1)) if found else None
        if msg.endswith("(at end of document)"):
            line = max(1, len(text.splitlines()))
        msg = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)$", "", msg)
        raise WorkloadError(source, line, "", f"invalid TOML: {msg}") from exc
    from snowload.workload_parser import Parser

    return Parser(source, text).workload(data, overrides or Overrides())


def parse_mapping(
    data: Mapping[str, Any], source: str = "<workload>", overrides: Overrides | None = None
) -> Workload:
    """Validate an already-decoded mapping (e.g. canonical JSON from the controller)."""
    from snowload.workload_parser import Parser

    return Parser(source, None).workload(data, overrides or Overrides())


def parse_json(text: str, source: str = "<workload json>") -> Workload:
    return parse_mapping(json.loads(text), source)


def count_placeholders(sql: str) -> int:
    """Number of ``?`` placeholders outside quotes and comments."""
    count, i, n = 0, 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"'):
            end = sql.find(ch, i + 1)
            i = n if end < 0 else end + 1
            continue
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if ch == "?":
            count += 1
        i += 1
    return count
