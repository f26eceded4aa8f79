"""Validation of a decoded workload mapping into the typed model (snowload.workload).

Every problem becomes a :class:`~snowload.workload.WorkloadError` naming the source, the
line where the field is written (found by scanning the TOML text for the field's table
and key) and the field path. Use the functions of snowload.workload; this module is their
engine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from snowload.durations import format_duration, parse_duration
from snowload.field_messages import did_you_mean, type_name
from snowload.param_specs import param_spec
from snowload.toml_lines import field_line
from snowload.toml_spelling import toml_value
from snowload.workload import (
    MAX_CONNECTIONS,
    MAX_DURATION_S,
    MAX_QUERIES,
    MAX_QUERY_SAMPLE,
    MAX_RATE,
    MAX_SLOW_QUERIES,
    MAX_WORKERS,
    NAME_RE,
    PG_SECRET_KEYS,
    RESERVED_QUERY_NAMES,
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
    StatementPath,
    StepBy,
    Target,
    Workload,
    WorkloadError,
    count_placeholders,
    dsn_has_secret,
)

_E = TypeVar("_E", bound=StrEnum)


class Parser:
    """Validates a decoded mapping, locating fields in the source text for messages."""

    def __init__(self, source: str, text: str | None) -> None:
        self.source = source
        self.lines = text.splitlines() if text is not None else None

    # -- error helpers -------------------------------------------------------------

    def error(self, path: str, problem: str) -> WorkloadError:
        return WorkloadError(self.source, self._locate(path), path, problem)

    def line_of(self, path: str) -> int | None:
        """Line of a field path such as ``query[2]`` (None without the source text)."""
        return self._locate(path)

    def _locate(self, path: str) -> int | None:
        """Line of a field path (snowload/toml_lines.py); None without the source text."""
        if self.lines is None or not path:
            return None
        return field_line(self.lines, path)

    # -- typed getters ---------------------------------------------------------------

    def table(self, data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, Mapping):
            raise self.error(path, f"must be a table, got {type_name(value)}")
        return value

    def only_keys(self, data: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
        for key in data:
            if key not in allowed:
                where = f"{path}.{key}" if path else key
                hint = did_you_mean(key, allowed)
                raise self.error(where, f"unknown field{hint}; allowed: {', '.join(allowed)}")

    def string(
        self, data: Mapping[str, Any], key: str, path: str, default: str | None = None
    ) -> str:
        if key not in data:
            if default is None:
                raise self.error(path, "is required")
            return default
        value = data[key]
        if not isinstance(value, str):
            raise self.error(path, f"must be a string, got {type_name(value)}")
        return value

    def integer(
        self, data: Mapping[str, Any], key: str, path: str, default: int, lo: int, hi: int
    ) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(path, f"must be an integer, got {type_name(value)}")
        if not lo <= value <= hi:
            raise self.error(path, f"must be between {lo} and {hi}, got {value}")
        return value

    def boolean(self, data: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(path, f"must be true or false, got {type_name(value)}")
        return value

    def number(self, data: Mapping[str, Any], key: str, path: str) -> float | None:
        if key not in data:
            return None
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(path, f"must be a number, got {type_name(value)}")
        if value < 0:
            raise self.error(path, f"must not be negative, got {value}")
        if not math.isfinite(value):
            raise self.error(path, f"must be a finite number, got {value}")
        return float(value)

    def duration(
        self, data: Mapping[str, Any], key: str, path: str, default: float, minimum: float = 0.0
    ) -> float:
        if key not in data:
            return default
        value = data[key]
        if not isinstance(value, str | int | float):
            raise self.error(path, f"must be a duration such as '30s', got {type_name(value)}")
        try:
            seconds = parse_duration(value, toml_value)
        except (ValueError, TypeError) as exc:
            raise self.error(path, str(exc)) from exc
        if math.isnan(seconds):
            raise self.error(path, "must be a duration such as '30s', got nan")
        if seconds < minimum:
            raise self.error(path, f"must be at least {format_duration(minimum)}")
        if seconds > MAX_DURATION_S:
            raise self.error(path, f"must be at most {format_duration(MAX_DURATION_S)}")
        return seconds

    def enum(self, data: Mapping[str, Any], key: str, path: str, enum: type[_E], default: _E) -> _E:
        value = data.get(key, default.value)
        choices = [e.value for e in enum]
        if not isinstance(value, str) or value not in choices:
            raise self.error(path, f"must be one of {', '.join(choices)}, got {toml_value(value)}")
        return enum(value)

    # -- sections ------------------------------------------------------------------------

    def workload(self, data: Mapping[str, Any], ov: Overrides) -> Workload:
        self.only_keys(data, ("name", "description", "target", "setup", "load", "query", "slo"), "")
        name = self.string(data, "name", "name")
        if not NAME_RE.match(name):
            raise self.error("name", "must be 1-64 characters of letters, digits, '_', '-', '.'")
        target = self.target(self.table(data, "target", "target"))
        setup = self.setup(self.table(data, "setup", "setup"))
        load = self.load(self.table(data, "load", "load"), ov)
        queries = self.queries(data.get("query"))
        slo = self.slo(self.table(data, "slo", "slo"), "slo", {q.name for q in queries})
        return Workload(
            name=name,
            description=self.string(data, "description", "description", ""),
            target=target,
            queries=queries,
            load=load,
            setup_sql=setup,
            slo=slo,
        )

    def target(self, data: Mapping[str, Any]) -> Target:
        self.only_keys(data, ("driver", "database", "dsn", "connection", "options"), "target")
        driver = self.enum(data, "driver", "target.driver", Driver, Driver.SQLITE)
        database = self.string(data, "database", "target.database", "")
        dsn = self.string(data, "dsn", "target.dsn", "")
        connection = self.string(data, "connection", "target.connection", "")
        options = self.table(data, "options", "target.options")
        if driver is Driver.SQLITE and not database:
            raise self.error("target.database", "is required for the sqlite driver")
        if driver is Driver.POSTGRES and not dsn:
            raise self.error("target.dsn", "is required for the postgres driver")
        if driver is Driver.POSTGRES and dsn_has_secret(dsn):
            raise self.error(
                "target.dsn",
                "must not contain a password; workers read it from PGPASSWORD or ~/.pgpass",
            )
        if driver is Driver.POSTGRES:
            for key in options:
                if str(key).lower() in PG_SECRET_KEYS:
                    raise self.error(
                        f"target.options.{key}",
                        "credentials do not belong in workload files; "
                        "workers read them from PGPASSWORD or ~/.pgpass",
                    )
        if driver is Driver.SNOWFLAKE:
            # no connection: "spcs" (the service's own login inside Snowpark Container
            # Services); a worker elsewhere says what it lacks for that
            for secret in ("password", "private_key", "token", "private_key_file"):
                if secret in options:
                    raise self.error(
                        f"target.options.{secret}",
                        "credentials do not belong in workload files; "
                        "keep them in connections.toml",
                    )
            if "statement_path" in options:
                self.enum(
                    options,
                    "statement_path",
                    "target.options.statement_path",
                    StatementPath,
                    StatementPath.LEAN,
                )
        return Target(driver, database, dsn, connection, dict(options))

    def setup(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        self.only_keys(data, ("sql",), "setup")
        sql = data.get("sql", [])
        if isinstance(sql, str):
            sql = [sql]
        if not isinstance(sql, list) or not all(isinstance(s, str) for s in sql):
            raise self.error("setup.sql", "must be a string or a list of strings")
        return tuple(sql)

    def load(self, data: Mapping[str, Any], ov: Overrides) -> Load:
        allowed = (
            "mode",
            "workers",
            "connections",
            "warmup",
            "duration",
            "think_time",
            "ready_timeout",
            "max_parallel_connects",
            "on_worker_loss",
            "on_query_failure",
            "enrich",
            "enrichment_timeout",
            "rate",
            "arrival",
            "max_lag",
            "stage",
            "find_max",
            "slow_queries",
            "query_sample",
            "record_params",
        )
        self.only_keys(data, allowed, "load")
        mode = self.enum(data, "mode", "load.mode", Mode, Mode.CLOSED)
        workers = self.integer(data, "workers", "load.workers", 1, 1, MAX_WORKERS)
        connections = self.integer(
            data, "connections", "load.connections", max(4, workers), 1, MAX_CONNECTIONS
        )
        warmup = self.duration(data, "warmup", "load.warmup", 0.0)
        duration = self.duration(data, "duration", "load.duration", 30.0, minimum=0.001)
        if ov.workers is not None:
            workers = _check_override("workers", ov.workers, 1, MAX_WORKERS)
            if "connections" not in data:  # the default follows the workers it serves
                connections = max(4, workers)
        if ov.connections is not None:
            connections = _check_override("connections", ov.connections, 1, MAX_CONNECTIONS)
        if ov.warmup_s is not None:
            warmup = _check_override_s("warmup", ov.warmup_s, 0.0)
        if ov.duration_s is not None:
            duration = _check_override_s("duration", ov.duration_s, 0.001)
        if connections < workers:
            path = "load.connections"
            problem = f"must be at least load.workers ({workers}) so every worker has a connection"
            if ov.connections is not None or ov.workers is not None:
                raise WorkloadError("overrides", None, "connections", problem)
            raise self.error(path, problem)
        rate = self.number(data, "rate", "load.rate") or 0.0
        if rate > MAX_RATE:
            raise self.error("load.rate", f"must be at most {MAX_RATE:,.0f} queries per second")
        stages = self.stages(data.get("stage"), mode, connections)
        find_max = self.find_max(data.get("find_max"), mode)
        if mode is Mode.OPEN and not rate and not stages:
            raise self.error("load.rate", "open mode needs a target rate (queries per second)")
        if find_max is not None and stages:
            raise self.error("load.stage", "find_max chooses its own steps; drop [[load.stage]]")
        if stages and ov.duration_s is None:
            duration = sum(s.duration_s for s in stages)
        if find_max is not None:
            if find_max.by is StepBy.CONNECTIONS:
                connections = max(connections, int(find_max.max))
            if ov.duration_s is None and "duration" not in data:
                levels = int((find_max.max - find_max.start) / find_max.step) + 1
                duration = min(MAX_DURATION_S, find_max.step_duration_s * (2 * levels + 8))
        return Load(
            mode=mode,
            workers=workers,
            connections=connections,
            warmup_s=warmup,
            duration_s=duration,
            think_time_s=self.duration(data, "think_time", "load.think_time", 0.0),
            ready_timeout_s=self.duration(
                data, "ready_timeout", "load.ready_timeout", 60.0, minimum=0.1
            ),
            max_parallel_connects=self.integer(
                data, "max_parallel_connects", "load.max_parallel_connects", 128, 1, 4096
            ),
            on_worker_loss=self.enum(
                data, "on_worker_loss", "load.on_worker_loss", OnWorkerLoss, OnWorkerLoss.FAIL
            ),
            on_query_failure=self.enum(
                data,
                "on_query_failure",
                "load.on_query_failure",
                OnQueryFailure,
                OnQueryFailure.FAIL,
            ),
            enrich=self.boolean(data, "enrich", "load.enrich", True),
            enrichment_timeout_s=self.duration(
                data, "enrichment_timeout", "load.enrichment_timeout", 120.0, minimum=1.0
            ),
            rate=rate,
            arrival=self.enum(data, "arrival", "load.arrival", Arrival, Arrival.CONSTANT),
            max_lag_s=self.duration(data, "max_lag", "load.max_lag", 0.0) or None,
            stages=stages,
            find_max=find_max,
            slow_queries=self.integer(
                data, "slow_queries", "load.slow_queries", 20, 0, MAX_SLOW_QUERIES
            ),
            query_sample=self.integer(
                data, "query_sample", "load.query_sample", 1000, 0, MAX_QUERY_SAMPLE
            ),
            record_params=self.boolean(data, "record_params", "load.record_params", True),
        )

    def stages(self, raw: Any, mode: Mode, connections: int) -> tuple[Stage, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise self.error("load.stage", "must be an array of tables ([[load.stage]])")
        out = []
        for i, item in enumerate(raw):
            path = f"load.stage[{i}]"
            if not isinstance(item, Mapping):
                raise self.error(path, "must be a table")
            self.only_keys(item, ("duration", "connections", "rate"), path)
            if "duration" not in item:
                raise self.error(f"{path}.duration", "is required")
            duration = self.duration(item, "duration", f"{path}.duration", 0.0, minimum=0.001)
            if mode is Mode.OPEN:
                if "connections" in item or "rate" not in item:
                    raise self.error(path, "an open-mode stage sets a rate")
                out.append(Stage(duration, rate=self.number(item, "rate", f"{path}.rate")))
            else:
                if "rate" in item or "connections" not in item:
                    raise self.error(path, "a closed-mode stage sets connections")
                n = self.integer(item, "connections", f"{path}.connections", 0, 0, connections)
                out.append(Stage(duration, connections=n))
        return tuple(out)

    def find_max(self, raw: Any, mode: Mode) -> FindMax | None:
        if raw is None:
            if mode is Mode.FIND_MAX:
                return FindMax()
            return None
        path = "load.find_max"
        if mode is not Mode.FIND_MAX:
            raise self.error(path, 'needs mode = "find_max"')
        if not isinstance(raw, Mapping):
            raise self.error(path, "must be a table")
        keys = ("start", "step", "step_duration", "max", "p95_drift", "max_error_rate")
        self.only_keys(raw, (*keys, "min_gain", "by"), path)
        d = FindMax()

        def num(key: str, default: float) -> float:
            value = self.number(raw, key, f"{path}.{key}")
            return default if value is None else value

        found = FindMax(
            start=num("start", d.start),
            step=num("step", d.step),
            step_duration_s=self.duration(
                raw, "step_duration", f"{path}.step_duration", d.step_duration_s, minimum=2.0
            ),
            max=num("max", d.max),
            p95_drift=num("p95_drift", d.p95_drift),
            max_error_rate=num("max_error_rate", d.max_error_rate),
            min_gain=num("min_gain", d.min_gain),
            by=self.enum(raw, "by", f"{path}.by", StepBy, StepBy.CONNECTIONS),
        )
        if found.start <= 0 or found.step <= 0:
            raise self.error(path, "start and step must be positive")
        if found.max < found.start:
            raise self.error(f"{path}.max", f"must be at least start ({found.start:g})")
        if found.by is StepBy.CONNECTIONS and found.max > MAX_CONNECTIONS:
            raise self.error(f"{path}.max", f"must be at most {MAX_CONNECTIONS}")
        return found

    def queries(self, raw: Any) -> tuple[Query, ...]:
        if raw is None:
            raise self.error("query", "at least one [[query]] is required")
        if not isinstance(raw, list) or not raw:
            raise self.error(
                "query", "must be an array of tables ([[query]]) with at least one entry"
            )
        if len(raw) > MAX_QUERIES:
            raise self.error("query", f"at most {MAX_QUERIES} queries, got {len(raw)}")
        out: list[Query] = []
        names: set[str] = set()
        for i, item in enumerate(raw):
            path = f"query[{i}]"
            if not isinstance(item, Mapping):
                raise self.error(path, f"must be a table, got {type_name(item)}")
            self.only_keys(item, ("name", "sql", "weight", "params"), path)
            name = self.string(item, "name", f"{path}.name")
            if not NAME_RE.match(name):
                raise self.error(
                    f"{path}.name", "must be 1-64 characters of letters, digits, '_', '-', '.'"
                )
            if name in RESERVED_QUERY_NAMES:
                raise self.error(
                    f"{path}.name",
                    f"{toml_value(name)} is reserved (it names the every-kind row in comparisons): "
                    "choose another name",
                )
            if name in names:
                raise self.error(f"{path}.name", f"duplicate query name {toml_value(name)}")
            names.add(name)
            sql = self.string(item, "sql", f"{path}.sql")
            if not sql.strip():
                raise self.error(f"{path}.sql", "must not be empty")
            weight = item.get("weight", 1)
            positive = f"must be a positive number, got {toml_value(weight)}"
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise self.error(f"{path}.weight", positive)
            if not 0 < weight < math.inf:
                raise self.error(f"{path}.weight", positive)
            params = self.params(item.get("params", []), f"{path}.params")
            expected = count_placeholders(sql)
            if expected != len(params):
                raise self.error(
                    f"{path}.params",
                    f"sql has {expected} '?' placeholder(s) but {len(params)} param(s) are given",
                )
            out.append(Query(name=name, sql=sql, weight=float(weight), params=params))
        return tuple(out)

    def params(self, raw: Any, path: str) -> tuple[ParamSpec, ...]:
        if not isinstance(raw, list):
            raise self.error(path, f"must be a list of generators, got {type_name(raw)}")
        return tuple(self.param(p, f"{path}[{i}]") for i, p in enumerate(raw))

    def param(self, raw: Any, path: str) -> ParamSpec:
        return param_spec(raw, path, self.error)

    def slo(self, data: Mapping[str, Any], path: str, names: set[str]) -> Slo:
        keys = ("p50_ms", "p95_ms", "p99_ms", "error_rate", "min_qps")
        self.only_keys(data, (*keys, "query") if path == "slo" else keys, path)
        by_kind: dict[str, Slo] = {}
        if path == "slo":
            per = self.table(data, "query", "slo.query")
            for name, sub in per.items():
                if name not in names:
                    raise self.error(f"slo.query.{name}", f"no query named {toml_value(name)}")
                if not isinstance(sub, Mapping):
                    raise self.error(f"slo.query.{name}", "must be a table")
                by_kind[name] = self.slo(sub, f"slo.query.{name}", names)
        rate = self.number(data, "error_rate", f"{path}.error_rate")
        if rate is not None and rate > 1:
            raise self.error(f"{path}.error_rate", f"is a fraction between 0 and 1, got {rate}")
        return Slo(
            p50_ms=self.number(data, "p50_ms", f"{path}.p50_ms"),
            p95_ms=self.number(data, "p95_ms", f"{path}.p95_ms"),
            p99_ms=self.number(data, "p99_ms", f"{path}.p99_ms"),
            error_rate=rate,
            min_qps=self.number(data, "min_qps", f"{path}.min_qps"),
            by_kind=by_kind,
        )


def _check_override(name: str, value: int, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise WorkloadError("overrides", None, name, f"must be between {lo} and {hi}, got {value}")
    return value


def _check_override_s(name: str, value: float, minimum: float) -> float:
    if value < minimum or value > MAX_DURATION_S:
        raise WorkloadError(
            "overrides",
            None,
            name,
            f"must be between {format_duration(minimum)} and {format_duration(MAX_DURATION_S)}",
        )
    return value
