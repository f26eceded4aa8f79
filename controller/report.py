"""Turning a finished run into what people read: a JSON summary and a terminal table."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from controller import lifecycle as lc
from controller.slo import describe
from snowload.v1 import common_pb2, run_pb2

STAT_FIELDS = ("count", "errors", "qps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms")


def stats_dict(stats: common_pb2.LatencyStats) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in STAT_FIELDS:
        value = getattr(stats, name)
        out[name] = int(value) if name in ("count", "errors") else round(float(value), 4)
    out["error_rate"] = round(stats.errors / stats.count, 6) if stats.count else 0.0
    return out


def _latency(stats: common_pb2.LatencyStats) -> dict[str, float]:
    return {k: round(getattr(stats, k), 4) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")}


def find_max_dict(result: common_pb2.FindMaxResult) -> dict[str, Any]:
    return {
        "by": result.by,
        "concluded": result.concluded,
        "best_level": result.best_level,
        "best": stats_dict(result.best) if result.HasField("best") else None,
        "reason": result.reason,
        "steps": [
            {
                "level": s.level,
                "qps": round(s.stats.qps, 3),
                "p50_ms": round(s.stats.p50_ms, 4),
                "p95_ms": round(s.stats.p95_ms, 4),
                "p99_ms": round(s.stats.p99_ms, 4),
                "error_rate": round(s.error_rate, 6),
                "verdict": s.verdict,
                "reason": s.reason,
            }
            for s in result.steps
        ],
    }


def server_dict(server: common_pb2.Enrichment) -> dict[str, Any]:
    """Server-side timings per kind and phase (what was set; Postgres has means only)."""
    timings = []
    for t in server.timings:
        row: dict[str, Any] = {
            "kind": t.kind,
            "phase": lc.state_name(t.phase),
            "calls": t.calls,
            "mean_ms": round(t.mean_ms, 4),
        }
        if t.stddev_ms:
            row["stddev_ms"] = round(t.stddev_ms, 4)
        for name in ("total", "compilation", "execution", "queued", "blocked", "app_overhead"):
            stats = getattr(t, name)
            if stats.count:
                row[name] = {
                    k: round(getattr(stats, k), 4) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")
                }
        if t.matched:
            row["matched"] = t.matched
        timings.append(row)
    return {"message": server.message, "timings": timings}


def summary_dict(run: run_pb2.Run) -> dict[str, Any]:
    phases: dict[str, Any] = {}
    for ps in run.summary.phases:
        entry = stats_dict(ps.overall)
        entry["duration_s"] = round(ps.duration.ToTimedelta().total_seconds(), 3)
        entry["errors_by_category"] = dict(ps.errors_by_category)
        entry["by_kind"] = {k: stats_dict(v) for k, v in sorted(ps.by_kind.items())}
        if ps.HasField("lag"):
            entry["open"] = {
                "target_rate": round(ps.target_rate, 3),
                "achieved_rate": round(ps.achieved_rate, 3),
                "service": _latency(ps.service),
                "lag": _latency(ps.lag),
                "late": ps.late,
                "dropped": ps.dropped,
            }
        phases[lc.state_name(ps.phase)] = entry
    out: dict[str, Any] = {
        "slo": {
            "passed": run.slo_passed,
            "verdicts": [
                {
                    "kind": v.kind or None,
                    "metric": v.metric,
                    "limit": v.limit,
                    "actual": v.actual,
                    "passed": v.passed,
                }
                for v in run.slo
            ],
        },
        "enrichment": common_pb2.EnrichmentStatus.Name(run.enrichment).removeprefix(
            "ENRICHMENT_STATUS_"
        ),
        "server": server_dict(run.server),
        "run_id": run.run_id,
        "name": run.name,
        "state": lc.state_name(run.state),
        "reason": run.reason,
        "message": run.message,
        "target": run.target,
        "workers": run.workers,
        "connections": run.connections,
        "start_time": run.start_time.ToJsonString() if run.HasField("start_time") else None,
        "end_time": run.end_time.ToJsonString() if run.HasField("end_time") else None,
        "phases": phases,
        "degraded": run.degraded,
        "warnings": list(run.warnings),
    }
    if run.HasField("find_max"):
        out["find_max"] = find_max_dict(run.find_max)
    if run.HasField("warehouse"):
        out["warehouse"] = {
            "name": run.warehouse.name,
            "size": run.warehouse.size,
            "max_cluster_count": run.warehouse.max_cluster_count,
            "credits": round(run.credits, 6),
            "cost": round(run.cost, 4),
        }
    order = ["run_id", "name", "state", "reason", "message"]
    return {k: out[k] for k in order} | {k: v for k, v in out.items() if k not in order}


def summary_table(run: run_pb2.Run) -> Table:
    title = f"{run.name} · run {run.run_id} · {lc.state_name(run.state)}"
    if run.reason:
        title += f" ({run.reason})"
    table = Table(title=title, title_justify="left")
    table.add_column("phase")
    table.add_column("query")
    for col in ("count", "errors", "QPS", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(col, justify="right")
    for ps in run.summary.phases:
        phase = lc.state_name(ps.phase)
        rows = [("all", ps.overall), *sorted(ps.by_kind.items())]
        for i, (kind, s) in enumerate(rows):
            table.add_row(
                phase if i == 0 else "",
                kind,
                f"{s.count:,}",
                f"{s.errors:,}",
                f"{s.qps:,.1f}",
                f"{s.p50_ms:.3f}",
                f"{s.p95_ms:.3f}",
                f"{s.p99_ms:.3f}",
                f"{s.max_ms:.3f}",
                style="bold" if i == 0 else None,
            )
        table.add_section()
    if run.server.timings:
        table.add_row()
        for t in run.server.timings:
            table.add_row(
                "server",
                t.kind,
                f"{t.calls:,}",
                "",
                "",
                f"{t.total.p50_ms:.3f}" if t.total.count else f"mean {t.mean_ms:.3f}",
                f"{t.total.p95_ms:.3f}" if t.total.count else f"sd {t.stddev_ms:.3f}",
                f"{t.total.p99_ms:.3f}" if t.total.count else "",
                f"{t.total.max_ms:.3f}" if t.total.count else "",
                style="dim",
            )
    if run.find_max.steps:
        table.add_row()
        for step in run.find_max.steps:
            table.add_row(
                "find_max",
                f"{step.level:g} {step.verdict}",
                f"{step.stats.count:,}",
                f"{step.stats.errors:,}",
                f"{step.stats.qps:,.1f}",
                f"{step.stats.p50_ms:.3f}",
                f"{step.stats.p95_ms:.3f}",
                f"{step.stats.p99_ms:.3f}",
                f"{step.stats.max_ms:.3f}",
            )
    notes = []
    if run.find_max.concluded:
        notes.append(
            f"find_max: best {run.find_max.best_level:g} {run.find_max.by} "
            f"at {run.find_max.best.qps:,.0f} queries/s: {run.find_max.reason}"
        )
    for ps in run.summary.phases:
        if ps.HasField("lag"):
            notes.append(
                f"{lc.state_name(ps.phase)} open model: target {ps.target_rate:,.0f}/s, "
                f"achieved {ps.achieved_rate:,.0f}/s, lag p99 {ps.lag.p99_ms:.2f} ms, "
                f"uncorrected p99 {ps.service.p99_ms:.3f} ms, late {ps.late:,}, "
                f"dropped {ps.dropped:,}"
            )
    notes.extend(f"warning: {w}" for w in run.warnings)
    if run.slo:
        verdicts = ", ".join(describe(v) for v in run.slo)
        notes.append(f"SLO {'passed' if run.slo_passed else 'FAILED'}: {verdicts}")
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table
