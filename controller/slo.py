"""SLO evaluation on the MEASUREMENT phase: overall and per query kind."""

from __future__ import annotations

from snowload.v1 import common_pb2
from snowload.workload import Slo

LATENCY = ("p50_ms", "p95_ms", "p99_ms")


def evaluate(slo: Slo, measurement: common_pb2.PhaseSummary | None) -> list[common_pb2.SloVerdict]:
    """One verdict per limit. With no measurement at all, every limit fails."""
    verdicts = _check("", slo, measurement.overall if measurement else None)
    for kind, kind_slo in sorted(slo.by_kind.items()):
        stats = measurement.by_kind.get(kind) if measurement else None
        verdicts += _check(kind, kind_slo, stats)
    return verdicts


def _check(
    kind: str, slo: Slo, stats: common_pb2.LatencyStats | None
) -> list[common_pb2.SloVerdict]:
    """Every limit is inclusive (latency and error rate pass at <= the limit, QPS at >=);
    a scope in which nothing was measured fails every limit, however loose."""
    out: list[common_pb2.SloVerdict] = []
    measured = stats is not None and stats.count > 0
    for metric in LATENCY:
        limit = getattr(slo, metric)
        if limit is not None:
            actual = getattr(stats, metric) if measured else float("inf")
            out.append(_verdict(kind, metric, limit, actual, measured and actual <= limit))
    if slo.error_rate is not None:
        rate = stats.errors / stats.count if stats is not None and measured else 1.0
        passed = measured and rate <= slo.error_rate
        out.append(_verdict(kind, "error_rate", slo.error_rate, rate, passed))
    if slo.min_qps is not None:
        qps = stats.qps if stats is not None and measured else 0.0
        out.append(_verdict(kind, "min_qps", slo.min_qps, qps, measured and qps >= slo.min_qps))
    return out


def _verdict(
    kind: str, metric: str, limit: float, actual: float, passed: bool
) -> common_pb2.SloVerdict:
    return common_pb2.SloVerdict(
        kind=kind, metric=metric, limit=limit, actual=actual, passed=passed
    )


def describe(v: common_pb2.SloVerdict) -> str:
    scope = v.kind or "overall"
    op = ">=" if v.metric == "min_qps" else "<="
    mark = "pass" if v.passed else "FAIL"
    return f"{mark} {scope} {v.metric} {v.actual:.4g} {op} {v.limit:.4g}"
