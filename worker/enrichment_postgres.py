"""PostgreSQL's server-side timings: ``pg_stat_statements`` snapshots when MEASUREMENT
begins and after the load drained; the difference per statement is matched to query kinds
by the server's query identifier (or by normalised SQL)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from snowload.v1 import common_pb2
from snowload.workload import Driver as DriverName
from snowload.workload import Workload
from worker.drivers import Connection, get_driver
from worker.enrichment_base import COMPLETED, FAILED, SKIPPED, Enricher, Window, result
from worker.tags import Purpose, own_tag

_LEADING_COMMENTS = re.compile(r"^\s*(/\*.*?\*/\s*)+", re.DOTALL)


def _literal(value: Any) -> str:
    """A value as an untyped SQL literal (what a text-format parameter amounts to)."""
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def normalise_sql(sql: str) -> str:
    """Leading comments off, ``?``/``%s`` placeholders as ``$n``, whitespace collapsed."""
    sql = _LEADING_COMMENTS.sub("", sql)
    n = 0

    def number(_m: re.Match[str]) -> str:
        nonlocal n
        n += 1
        return f"${n}"

    sql = re.sub(r"\?|%s", number, sql)
    return " ".join(sql.split()).rstrip(";").lower()


@dataclass
class _Stat:
    calls: int
    total_ms: float
    sumsq: float


class PostgresEnricher(Enricher):
    SNAPSHOT = (
        "SELECT queryid, query, calls, total_exec_time, mean_exec_time, stddev_exec_time "
        "FROM pg_stat_statements WHERE toplevel AND dbid = (SELECT oid FROM pg_database "
        "WHERE datname = current_database())"
    )

    def __init__(self, workload: Workload, run_id: str = "") -> None:
        super().__init__(workload)
        self.run_id = run_id
        """Its statements are tagged as the run's telemetry (none without a run)."""
        self._conn: Connection | None = None
        self._before: dict[int, tuple[str, _Stat]] | None = None
        self._error = ""
        self.query_ids: dict[int, str] = {}
        """pg_stat_statements queryid -> query kind, from EXPLAIN (VERBOSE)."""

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = get_driver(DriverName.POSTGRES).connect(self.workload.target, 10.0)
            if self.run_id:
                self._conn.tag_own(own_tag(self.run_id, Purpose.TELEMETRY))
        return self._conn

    def _snapshot(self) -> dict[int, tuple[str, _Stat]]:
        rows = self._connection().query(self.SNAPSHOT)
        out = {}
        for queryid, query, calls, total, mean, stddev in rows:
            sumsq = (float(stddev) ** 2 + float(mean) ** 2) * int(calls)
            out[int(queryid)] = (str(query), _Stat(int(calls), float(total), sumsq))
        return out

    def _identify(self) -> None:
        """The server's own query identifier of every kind (constants in the SQL are
        normalised by the server, so identifiers beat comparing texts)."""
        import random

        from worker.drivers.postgres import to_numbered
        from worker.generators import Sequences, compile_query

        conn = self._connection()
        rnd = random.Random(0)
        for i, q in enumerate(self.workload.queries):
            if any(p.kind == "pool" for p in q.params):
                continue  # no values here to probe with: matched by text instead
            params = compile_query(i, q, rnd, Sequences(0, 1))()
            # prepared exactly as the workers prepare it (untyped parameters), so the
            # identifier is the one their executions are counted under
            probe = f"snowload_probe_{i}"
            literals = ", ".join(_literal(v) for v in params)
            try:
                conn.query(f"PREPARE {probe} AS {to_numbered(q.sql)}")
                sql = f"EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE {probe}"
                plan = conn.query(sql + (f"({literals})" if params else ""))
                conn.query(f"DEALLOCATE {probe}")
            except Exception:  # e.g. a statement EXPLAIN refuses: fall back to its text
                continue
            qid = plan[0][0][0].get("Query Identifier") if plan else None
            if qid is not None:
                self.query_ids[int(qid)] = q.name

    def before_measurement(self) -> None:
        try:
            self._identify()
        except Exception as exc:  # reported in collect
            self._error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    def on_measurement_start(self) -> None:
        try:
            if not self.query_ids and not self._error:
                self._identify()
            self._before = self._snapshot()
        except Exception as exc:  # reported in collect
            self._error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    def collect(self, window: Window, deadline: float) -> common_pb2.Enrichment:
        if self._before is None:
            why = self._error or "no snapshot at the start of MEASUREMENT"
            if "pg_stat_statements" in why:
                return result(SKIPPED, f"pg_stat_statements is not available: {why}")
            return result(FAILED, why)
        try:
            after = self._snapshot()
        except Exception as exc:
            return result(FAILED, str(exc).splitlines()[0])
        wanted = {normalise_sql(q.sql): q.name for q in self.workload.queries}
        per_kind: dict[str, _Stat] = {}
        for queryid, (text, stat) in after.items():
            kind = self.query_ids.get(queryid) or wanted.get(normalise_sql(text))
            if kind is None:
                continue
            _, before = self._before.get(queryid, ("", _Stat(0, 0.0, 0.0)))
            delta = _Stat(
                stat.calls - before.calls,
                stat.total_ms - before.total_ms,
                stat.sumsq - before.sumsq,
            )
            acc = per_kind.setdefault(kind, _Stat(0, 0.0, 0.0))
            acc.calls += delta.calls
            acc.total_ms += delta.total_ms
            acc.sumsq += delta.sumsq
        timings = []
        for kind, s in sorted(per_kind.items()):
            if s.calls <= 0:
                continue
            mean = s.total_ms / s.calls
            var = max(0.0, s.sumsq / s.calls - mean * mean)
            timings.append(
                common_pb2.ServerTiming(
                    kind=kind,
                    phase=common_pb2.STATE_MEASUREMENT,
                    calls=s.calls,
                    mean_ms=mean,
                    stddev_ms=math.sqrt(var),
                )
            )
        return result(COMPLETED, "pg_stat_statements delta across MEASUREMENT", timings)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
