"""The CI gate of ``snowload run --baseline RUN_OR_NAME --max-regression 10%``: is the run
significantly worse than its baseline, beyond the margin, on p95, p99, QPS or error rate?

"Significantly worse beyond the margin" means the whole interval of the change lies beyond
the margin (docs/compare.md): the run's p95 is worse by more than 10 % if even the low end
of the interval of B / A - 1 exceeds +10 %; QPS if even the high end is below -10 %; the
error rate if the low end of B - A exceeds 10 % of the baseline's rate (any significant
increase when the baseline had no errors)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from snowload.bootstrap import MIN_SECONDS, Difference, Metric
from snowload.verdicts import ALL, Comparison

GATED = (Metric.P95, Metric.P99, Metric.QPS, Metric.ERROR_RATE)
IGNORED_FIELDS = frozenset(
    {
        "description",
        "slo",
        "load.warmup",
        "load.duration",
        "load.ready_timeout",
        "load.max_parallel_connects",
        "load.on_worker_loss",
        "load.on_query_failure",
        "load.enrich",
        "load.enrichment_timeout",
    }
)
"""Fields in which a baseline may differ from the run it gates (how long, what to do on
trouble, what passes): the rest say what load hits what, and must match."""


def margin_arg(text: str) -> float:
    """'10%' or 0.1."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a percentage such as 10% (or a fraction such as 0.1), got {text!r}"
        ) from None
    if not 0 <= value < 10:
        raise argparse.ArgumentTypeError(f"must be between 0% and 1000%, got {text!r}")
    return value


def workload_differences(baseline_json: str, workload: dict[str, Any]) -> list[str]:
    """Dotted fields in which two resolved workloads differ (IGNORED_FIELDS aside)."""
    try:
        base = json.loads(baseline_json) if baseline_json else {}
    except ValueError:
        base = {}
    out: list[str] = []
    _diff(base, workload, "", out)
    return out


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if path in IGNORED_FIELDS:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            _diff(a.get(key), b.get(key), f"{path}.{key}" if path else key, out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(path)


def too_short_for_gate(duration_s: float) -> str | None:
    if duration_s < MIN_SECONDS + 1:
        return (
            f"a comparison with the baseline needs at least {MIN_SECONDS} full seconds of "
            f"MEASUREMENT: --duration {MIN_SECONDS + 1}s or more (this run would measure "
            f"{duration_s:g}s)"
        )
    return None


def regressed(diff: Difference, margin: float) -> bool:
    if diff.metric is Metric.ERROR_RATE:
        return diff.low is not None and diff.a is not None and diff.low > margin * diff.a
    if diff.relative_low is None or diff.relative_high is None:
        return False
    if diff.metric is Metric.QPS:
        return diff.relative_high < -margin
    return diff.relative_low > margin


@dataclass
class GateResult:
    baseline: str
    margin: float
    comparison: Comparison
    regressions: list[Metric]

    @property
    def passed(self) -> bool:
        return not self.regressions

    def as_dict(self) -> dict[str, Any]:
        found = self.comparison.as_dict()
        return {
            "baseline": self.baseline,
            "max_regression": self.margin,
            "passed": self.passed,
            "regressions": [m.value for m in self.regressions],
            "verdicts": found["verdicts"],
            "method": found["method"],
            "by_kind": found["by_kind"],
            "notes": found["notes"],
        }

    def lines(self) -> list[str]:
        out = [f"against baseline {self.baseline} (max regression {self.margin:.0%}):"]
        for metric, diff in self.comparison.by_kind[ALL].items():
            mark = (
                "REGRESSION"
                if metric in self.regressions
                else ("ok" if metric in GATED else "(not gated)")
            )
            rel = f"{diff.relative:+.1%}" if diff.relative is not None else "-"
            ci = (
                f"[{diff.relative_low:+.1%} .. {diff.relative_high:+.1%}]"
                if diff.relative_low is not None and diff.relative_high is not None
                else ""
            )
            out.append(
                f"  {metric.value:<10} {_fig(diff.a):>12} -> {_fig(diff.b):<12} {rel:>8} "
                f"{ci:<22} {diff.verdict.value:<26} {mark}"
            )
        return out


def _fig(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4g}"


def gate(baseline: str, comparison: Comparison, margin: float) -> GateResult:
    overall = comparison.by_kind[ALL]
    worse = [m for m in GATED if regressed(overall[m], margin)]
    return GateResult(baseline, margin, comparison, worse)
