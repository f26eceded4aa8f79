"""A run as JSON-ready dicts: the summary that `snowload run --json`, `runs show --json`,
exports and the TUI's export all share (the controller and the TUI both use it)."""

from __future__ import annotations

from typing import Any

from snowload.v1 import common_pb2, run_pb2


def state_name(state: int) -> str:
    return common_pb2.State.Name(state).removeprefix("STATE_")


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
            "phase": state_name(t.phase),
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


def plan_dict(run: run_pb2.Run) -> dict[str, Any]:
    """The phase plan's instants, and per worker its clock and how late its planned
    commands arrived (a plan it could not honour shows here)."""
    plan = run.plan

    def at(field: str) -> str | None:
        return getattr(plan, field).ToJsonString() if plan.HasField(field) else None

    return {
        "decide_time": at("decide_time"),
        "load_start_time": at("load_start_time"),
        "measurement_start_time": at("measurement_start_time"),
        "measurement_end_time": at("measurement_end_time"),
        "workers": [
            {
                "worker_id": w.worker_id,
                "clock_offset_ms": round(w.clock_offset.ToNanoseconds() / 1e6, 3),
                "clock_uncertainty_ms": round(w.clock_uncertainty.ToNanoseconds() / 1e6, 3),
                "max_lateness_ms": round(w.max_lateness.ToNanoseconds() / 1e6, 3),
                "late_commands": w.late_commands,
            }
            for w in run.run_workers
        ],
    }


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
        phases[state_name(ps.phase)] = entry
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
        "state": state_name(run.state),
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
    if run.HasField("plan"):
        out["plan"] = plan_dict(run)
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
