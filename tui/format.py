"""Pure formatting and small computations on the public API's messages (no I/O, no Textual).

The JSON summary is ``snowload runs show --json``'s (the shared :mod:`snowload.report`);
the compare deltas follow ``snowload runs compare`` and are re-implemented here because the
TUI talks to a controller only over gRPC and never imports it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from snowload import report
from snowload.durations import format_duration
from snowload.v1 import common_pb2, control_pb2, run_pb2
from snowload.workload import Workload

PENDING = common_pb2.STATE_PENDING
PREPARING = common_pb2.STATE_PREPARING
WARMUP = common_pb2.STATE_WARMUP
MEASUREMENT = common_pb2.STATE_MEASUREMENT
PROCESSING = common_pb2.STATE_PROCESSING
COMPLETED = common_pb2.STATE_COMPLETED
FAILED = common_pb2.STATE_FAILED
CANCELLED = common_pb2.STATE_CANCELLED
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
LOAD_PHASES = frozenset({WARMUP, MEASUREMENT})
STATE_ORDER = {
    common_pb2.STATE_UNSPECIFIED: 0,
    PENDING: 1,
    PREPARING: 2,
    WARMUP: 3,
    MEASUREMENT: 4,
    PROCESSING: 5,
    COMPLETED: 6,
    FAILED: 6,
    CANCELLED: 6,
}
"""Lifecycle rank: a state never goes back to a lower rank."""

COMPARE_METRICS = ("qps", "p50_ms", "p95_ms", "p99_ms", "error_rate")
HIGHER_IS_BETTER = frozenset({"qps"})


def state_name(state: int) -> str:
    try:
        return common_pb2.State.Name(state).removeprefix("STATE_")
    except ValueError:
        return f"STATE_{state}"


def mode_name(mode: int) -> str:
    try:
        return common_pb2.LoadMode.Name(mode).removeprefix("LOAD_MODE_").lower()
    except ValueError:
        return str(mode)


def enrichment_name(status: int) -> str:
    try:
        name = common_pb2.EnrichmentStatus.Name(status)
    except ValueError:
        return str(status)
    return name.removeprefix("ENRICHMENT_STATUS_")


def worker_state_name(state: int) -> str:
    try:
        return control_pb2.WorkerState.Name(state).removeprefix("WORKER_STATE_")
    except ValueError:
        return str(state)


def is_terminal(state: int) -> bool:
    return state in TERMINAL


# ------------------------------------------------------------------------- numbers and times


def seconds_of(d: Duration) -> float:
    return d.seconds + d.nanos / 1e9


def fmt_seconds(s: float) -> str:
    """A compact elapsed time: ``0.4s``, ``12s``, ``2m05s``, ``1h02m``."""
    if not math.isfinite(s) or s < 0:
        return "-"
    if s < 10:
        return f"{s:.1f}s"
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        m, sec = divmod(int(s), 60)
        return f"{m}m{sec:02d}s"
    h, rest = divmod(int(s), 3600)
    return f"{h}h{rest // 60:02d}m"


def fmt_qps(v: float) -> str:
    if not math.isfinite(v):
        return "-"
    return f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"


def fmt_short(v: float) -> str:
    """A count or rate in at most 6 characters: ``12.5``, ``9,999``, ``12.3k``, ``1.23M``
    (for narrow screens: a figure is abbreviated, never cut)."""
    if not math.isfinite(v):
        return "-"
    a = abs(v)
    if a < 100 and v != int(v):
        return f"{v:.1f}"
    if a < 10_000:
        return f"{v:,.0f}"
    for unit, scale in (("k", 1e3), ("M", 1e6), ("G", 1e9)):
        x = v / scale
        if abs(x) < 999.5 or unit == "G":
            digits = 2 if abs(x) < 9.995 else 1 if abs(x) < 99.95 else 0
            return f"{x:.{digits}f}{unit}"
    return f"{v:.3g}"  # pragma: no cover (the loop always returns)


def fmt_ms(v: float) -> str:
    """Milliseconds with about three significant digits."""
    if not math.isfinite(v):
        return "-"
    a = abs(v)
    if a == 0:
        return "0"
    if a < 1:
        return f"{v:.3f}"
    if a < 10:
        return f"{v:.2f}"
    if a < 100:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def fmt_rate(r: float) -> str:
    if not math.isfinite(r):
        return "-"
    return f"{r:.2%}" if r >= 0.0001 or r == 0 else f"{r:.4%}"


def fmt_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def fmt_signed(v: float | None, metric: str = "") -> str:
    if v is None or not math.isfinite(v):
        return "-"
    if metric == "qps":
        return f"{v:+,.1f}"
    if metric == "error_rate":
        return f"{v * 100:+.3f} pp"
    return f"{v:+,.3f}"


def fmt_metric(v: float | None, metric: str) -> str:
    if v is None:
        return "-"
    if metric == "qps":
        return fmt_qps(v)
    if metric == "error_rate":
        return fmt_rate(v)
    return fmt_ms(v)


def fmt_relative(r: float | None) -> str:
    if r is None or not math.isfinite(r):
        return "-"
    return f"{r:+.1%}"


def fmt_time(ts: Timestamp, *, date: bool = True) -> str:
    """A timestamp in local time (``-`` when unset)."""
    if ts.seconds == 0 and ts.nanos == 0:
        return "-"
    when = datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9)
    return when.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")


def fmt_time_short(ts: Timestamp) -> str:
    """A timestamp in local time without the year and seconds: ``01-15 10:30``."""
    if ts.seconds == 0 and ts.nanos == 0:
        return "-"
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9).strftime("%m-%d %H:%M")


def fmt_clock(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s).strftime("%H:%M:%S")


def ts_seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def run_duration_s(run: run_pb2.Run) -> float | None:
    """From the start time (all workers READY) to the end, or None if either is missing."""
    if run.HasField("start_time") and run.HasField("end_time"):
        return max(0.0, ts_seconds(run.end_time) - ts_seconds(run.start_time))
    return None


def error_rate(stats: common_pb2.LatencyStats) -> float:
    return stats.errors / stats.count if stats.count else 0.0


def phase_summary(run: run_pb2.Run, phase: int) -> common_pb2.PhaseSummary | None:
    return next((p for p in run.summary.phases if p.phase == phase), None)


def measurement(run: run_pb2.Run) -> common_pb2.PhaseSummary | None:
    return phase_summary(run, MEASUREMENT)


def slo_text(run: run_pb2.Run) -> str:
    """``pass``, ``FAIL`` or ``-`` (no SLO, or not evaluated yet)."""
    if not run.slo:
        return "-"
    return "pass" if run.slo_passed else "FAIL"


def is_find_max(run: run_pb2.Run | None) -> bool:
    """A find_max run (by its mode, or because it has recorded steps)."""
    if run is None:
        return False
    return run.mode == common_pb2.LOAD_MODE_FIND_MAX or bool(run.find_max.steps)


def is_open_model(run: run_pb2.Run | None, points: Iterable[common_pb2.SeriesPoint] = ()) -> bool:
    """Load by arrival rate: open mode, or seconds that carry a target rate (find_max by
    rate steps the rate of an open model)."""
    if run is not None and run.mode == common_pb2.LOAD_MODE_OPEN:
        return True
    return any(p.target_rate > 0 for p in points)


def fmt_level(level: float, by: str, *, short: bool = False) -> str:
    """A find_max level with its unit (``short``: ``conns`` for connections)."""
    if by == "rate":
        return f"{fmt_qps(level)} q/s"
    if short:
        return f"{level:g} conns"
    return f"{level:g} connection" + ("" if level == 1 else "s")


def slo_actual(metric: str, stats: common_pb2.LatencyStats | None) -> float | None:
    """What an SLO metric is on ``stats`` (None without any query to judge by)."""
    if stats is None or not stats.count:
        return None
    if metric == "error_rate":
        return error_rate(stats)
    if metric == "min_qps":
        return stats.qps
    return float(getattr(stats, metric))


def slo_holds(metric: str, limit: float, actual: float) -> bool:
    return actual >= limit if metric == "min_qps" else actual <= limit


def state_text(run: run_pb2.Run) -> str:
    text = state_name(run.state)
    if run.reason and run.reason != "duration_elapsed":
        text += f" ({run.reason})"
    if run.degraded:
        text += " degraded"
    return text


# ----------------------------------------------------------------------------- JSON export


def summary_dict(run: run_pb2.Run) -> dict[str, Any]:
    """The run summary as ``snowload runs show --json`` writes it (the shared
    :mod:`snowload.report`: phases with the open model's figures, find_max steps, SLO,
    server timings), plus the mode, creation time, phase events and error samples."""
    out = report.summary_dict(run)
    out["mode"] = mode_name(run.mode)
    out["create_time"] = run.create_time.ToJsonString() if run.HasField("create_time") else None
    out["events"] = [
        {"state": state_name(e.state), "time": e.event_time.ToJsonString(), "reason": e.reason}
        for e in run.events
    ]
    out["error_samples"] = [
        {"category": e.category, "message": e.message} for e in run.error_samples
    ]
    return out


series_row = report.series_row


def export_json(run: run_pb2.Run, points: Iterable[common_pb2.SeriesPoint]) -> str:
    out = summary_dict(run)
    out["series"] = [series_row(p) for p in points]
    return json.dumps(out, indent=2) + "\n"


# --------------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class CompareCell:
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return self.b - self.a if self.a is not None and self.b is not None else None

    @property
    def relative(self) -> float | None:
        d = self.delta
        return d / self.a if d is not None and self.a else None


def _metric(stats: common_pb2.LatencyStats | None, metric: str) -> float | None:
    if stats is None:
        return None
    if metric == "error_rate":
        return error_rate(stats)
    return float(getattr(stats, metric))


def compare_runs(a: run_pb2.Run, b: run_pb2.Run) -> dict[str, dict[str, CompareCell]]:
    """MEASUREMENT per kind ('all' first): each metric of A and B (as ``runs compare``)."""
    ma, mb = measurement(a), measurement(b)
    kinds = ["all", *sorted(set(ma.by_kind if ma else {}) | set(mb.by_kind if mb else {}))]
    out: dict[str, dict[str, CompareCell]] = {}
    for kind in kinds:
        sa = _kind_stats(ma, kind)
        sb = _kind_stats(mb, kind)
        out[kind] = {m: CompareCell(_metric(sa, m), _metric(sb, m)) for m in COMPARE_METRICS}
    return out


def _kind_stats(
    summary: common_pb2.PhaseSummary | None, kind: str
) -> common_pb2.LatencyStats | None:
    if summary is None:
        return None
    if kind == "all":
        return summary.overall
    return summary.by_kind.get(kind)


def is_improvement(metric: str, delta: float | None) -> bool | None:
    """True if B is better than A for this metric, False if worse, None if equal/unknown."""
    if delta is None or delta == 0:
        return None
    return (delta > 0) == (metric in HIGHER_IS_BETTER)


# ------------------------------------------------------------------------------------ SLO


def describe_verdict(v: common_pb2.SloVerdict) -> str:
    scope = v.kind or "overall"
    op = ">=" if v.metric == "min_qps" else "<="
    return f"{scope} {v.metric} {v.actual:.4g} {op} {v.limit:.4g}"


def fmt_slo_value(metric: str, value: float) -> str:
    if not math.isfinite(value):
        return "-"
    if metric == "error_rate":
        return fmt_rate(value)
    if metric == "min_qps":
        return fmt_qps(value)
    return fmt_ms(value)


@dataclass(frozen=True)
class SloLimit:
    kind: str
    """'' for the whole run, else the query kind."""
    metric: str
    limit: float


def slo_limits(workload_json: str) -> list[SloLimit]:
    """The configured SLO limits of a run's resolved workload (canonical JSON)."""
    if not workload_json:
        return []
    try:
        data = json.loads(workload_json)
    except ValueError:
        return []
    slo = data.get("slo") if isinstance(data, dict) else None
    if not isinstance(slo, dict):
        return []
    out = _limits("", slo)
    per = slo.get("query")
    if isinstance(per, dict):
        for kind, sub in sorted(per.items()):
            if isinstance(sub, dict):
                out += _limits(str(kind), sub)
    return out


def _limits(kind: str, data: dict[str, Any]) -> list[SloLimit]:
    out = []
    for metric in ("p50_ms", "p95_ms", "p99_ms", "error_rate", "min_qps"):
        value = data.get(metric)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out.append(SloLimit(kind, metric, float(value)))
    return out


# ------------------------------------------------------------------------------- workload


_DSN_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def redact_dsn(dsn: str) -> str:
    """A connection string without its password (key=value or URL form)."""
    return _URL_PASSWORD.sub(r"\1***@", _DSN_PASSWORD.sub(r"\1***", dsn))


def workload_summary(w: Workload) -> list[str]:
    """A few lines describing a parsed workload (for the Launch screen)."""
    load = w.load
    target = w.target
    where = target.database or redact_dsn(target.dsn) or target.connection
    lines = [f"name         {w.name}"]
    if w.description:
        lines.append(f"description  {w.description}")
    lines += [
        f"target       {target.driver.value}" + (f" · {where}" if where else ""),
        f"load         {load.mode.value} · {load.workers} worker(s) · "
        f"{load.connections} connection(s)",
        f"phases       warmup {format_duration(load.warmup_s)} · "
        f"measurement {format_duration(load.duration_s)} · "
        f"think time {format_duration(load.think_time_s)}",
        f"setup        {len(w.setup_sql)} statement(s)",
    ]
    total = sum(q.weight for q in w.queries) or 1.0
    lines.append(f"queries      {len(w.queries)}")
    for q in w.queries:
        sql = " ".join(q.sql.split())
        if len(sql) > 70:
            sql = sql[:69] + "…"
        lines.append(f"  {q.name:<16} {q.weight / total:>4.0%}  {sql}")
    limits = slo_limits(w.to_json())
    if limits:
        lines.append(
            "slo          "
            + ", ".join(
                f"{lim.kind + ' ' if lim.kind else ''}{lim.metric} "
                f"{'>=' if lim.metric == 'min_qps' else '<='} {lim.limit:g}"
                for lim in limits
            )
        )
    else:
        lines.append("slo          none")
    return lines


def source_line(text: str, line: int | None) -> str | None:
    """The ``line``-th line of ``text`` (1-based), or None."""
    if line is None:
        return None
    lines = text.splitlines()
    if 1 <= line <= len(lines):
        return lines[line - 1]
    return None
