"""The report's tables and text: the run's header with its SLO verdicts, per-kind figures,
errors with their text, the slowest queries, server-side timings, the warehouse, the open
model's figures, find_max steps, and the deltas between runs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from controller import lifecycle as lc
from controller import run_verdicts
from controller.report_html.model import QueryEntry, ReportRun
from snowload import verdicts
from snowload.v1 import common_pb2, run_pb2


class Rate(float):
    """A rate: two decimals in a table (latencies have three)."""


Cell = str | int | float | None


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], cls: str = "") -> str:
    """An HTML table; numbers right-aligned, every cell escaped."""
    attr = f' class="{cls}"' if cls else ""
    out = [f"<table{attr}><thead><tr>"]
    out.extend(f"<th>{escape(h)}</th>" for h in headers)
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for cell in row:
            num = isinstance(cell, int | float) and not isinstance(cell, bool)
            out.append(f'<td class="num">{_fmt(cell)}</td>' if num else f"<td>{_fmt(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _fmt(cell: Cell) -> str:
    if cell is None:
        return "-"
    if isinstance(cell, Rate):
        return f"{cell:,.2f}"
    if isinstance(cell, float):
        return f"{cell:,.3f}"
    if isinstance(cell, int):
        return f"{cell:,}"
    return escape(cell)


def _time(ts_field: str, run: run_pb2.Run) -> str:
    return getattr(run, ts_field).ToJsonString() if run.HasField(ts_field) else "-"


def mode_name(run: run_pb2.Run) -> str:
    return common_pb2.LoadMode.Name(run.mode).removeprefix("LOAD_MODE_").lower()


def header(rr: ReportRun) -> str:
    run = rr.run
    state = lc.state_name(run.state)
    verdict = (
        ("passed" if run.slo_passed else "FAILED") if run.HasField("slo_passed") else "no verdict"
    )
    facts: list[tuple[str, str]] = [
        ("run", run.run_id),
        ("workload", run.name),
        ("mode", mode_name(run)),
        ("target", run.target),
        ("workers", f"{run.workers} ({run.connections} connections)"),
        ("state", state + (f" ({run.reason})" if run.reason else "")),
        ("started", _time("start_time", run)),
        ("ended", _time("end_time", run)),
        ("SLO", verdict),
    ]
    if run.message:
        facts.append(("message", run.message))
    out = ['<dl class="facts">']
    for key, value in facts:
        cls = ' class="bad"' if value.startswith("FAILED") or value == "FAILED" else ""
        out.append(f"<dt>{escape(key)}</dt><dd{cls}>{escape(value)}</dd>")
    out.append("</dl>")
    if rr.active:
        out.append(f'<p class="active-banner">{escape(rr.banner)}</p>')
    if run.degraded or run.warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in run.warnings)
        out.append(f'<div class="warn"><b>degraded run</b><ul>{items}</ul></div>')
    if run.slo:
        out.append(
            table(
                ("kind", "figure", "limit", "actual", "verdict"),
                (
                    (
                        v.kind or "all",
                        v.metric,
                        (">= " if v.metric == "min_qps" else "<= ") + f"{v.limit:g}",
                        round(v.actual, 6),
                        "pass" if v.passed else "FAIL",
                    )
                    for v in run.slo
                ),
                "slo",
            )
        )
    return "".join(out)


KIND_HEADERS = (
    *("phase", "kind", "count", "errors", "error rate", "queries/s"),
    *("p50 ms", "p95 ms", "p99 ms", "max ms", "mean ms"),
)


def per_kind(rr: ReportRun) -> str:
    rows: list[Sequence[Cell]] = []
    for ps in rr.run.summary.phases:
        phase = lc.state_name(ps.phase)
        for kind, s in [("all", ps.overall), *sorted(ps.by_kind.items())]:
            rate = f"{s.errors / s.count:.4%}" if s.count else "-"
            rows.append(
                (
                    phase,
                    kind,
                    s.count,
                    s.errors,
                    rate,
                    Rate(s.qps),
                    s.p50_ms,
                    s.p95_ms,
                    s.p99_ms,
                    s.max_ms,
                    s.mean_ms,
                )
            )
    if not rows:
        return '<p class="empty">no phase summary</p>'
    return table(KIND_HEADERS, rows, "kinds")


ERRORS_PER_KIND = 5


def errors(rr: ReportRun) -> str:
    run = rr.run
    out = []
    counts = [
        (lc.state_name(ps.phase), category, n)
        for ps in run.summary.phases
        for category, n in sorted(ps.errors_by_category.items())
    ]
    if counts:
        out.append(table(("phase", "category", "errors"), counts, "error-counts"))
    if run.error_samples:
        out.append(
            table(
                ("kind", "category", "message"),
                ((e.kind, e.category, e.message) for e in run.error_samples),
                "error-samples",
            )
        )
    failed = [q for q in rr.queries if q.error]
    if failed:
        shown: dict[str, int] = {}
        rows = []
        for q in failed:
            if shown.get(q.kind, 0) < ERRORS_PER_KIND:
                shown[q.kind] = shown.get(q.kind, 0) + 1
                rows.append((q.kind, q.phase, q.started_at, q.worker, q.server_id, q.error))
        out.append("<h4>Failed queries from the query log</h4>")
        out.append(
            table(("kind", "phase", "started", "worker", "server id", "error"), rows, "failed")
        )
    return "".join(out) or '<p class="empty">no errors</p>'


SLOWEST_PER_KIND = 10
NO_QUERY_LOG = "no query log recorded for this run"


def slowest_queries(entries: Sequence[QueryEntry]) -> str:
    """The slowest queries of each kind (any phase), slowest first; the text
    :data:`NO_QUERY_LOG` when the run has none."""
    if not entries:
        return f'<p class="empty">{NO_QUERY_LOG}</p>'
    taken: dict[str, int] = {}
    rows = []
    for q in sorted(entries, key=lambda e: (-e.latency_ms, e.kind, e.started_at)):
        if taken.get(q.kind, 0) >= SLOWEST_PER_KIND:
            continue
        taken[q.kind] = taken.get(q.kind, 0) + 1
        params = "(not recorded)" if q.params is None else json.dumps(q.params, default=str)
        rows.append(
            (
                q.kind,
                q.phase,
                q.latency_ms,
                q.started_at,
                q.worker,
                q.connection,
                q.server_id or "-",
                params,
                q.error or "",
            )
        )
    headers = ("kind", "phase", "latency ms", "started", "worker", "connection")
    return table((*headers, "server id", "params", "error"), rows, "slowest")


STAGES = ("total", "compilation", "execution", "queued", "blocked", "app_overhead")


def server_timings(rr: ReportRun) -> str:
    run = rr.run
    status = common_pb2.EnrichmentStatus.Name(run.enrichment).removeprefix("ENRICHMENT_STATUS_")
    out = [f"<p>enrichment: {escape(status)}"]
    if run.server.message:
        out.append(f" — {escape(run.server.message)}")
    out.append("</p>")
    rows = []
    for t in run.server.timings:
        for stage in STAGES:
            s = getattr(t, stage)
            if s.count:
                rows.append(
                    (
                        t.kind,
                        lc.state_name(t.phase),
                        stage,
                        t.calls,
                        s.p50_ms,
                        s.p95_ms,
                        s.p99_ms,
                        s.max_ms,
                    )
                )
        if not any(getattr(t, stage).count for stage in STAGES):
            rows.append(
                (t.kind, lc.state_name(t.phase), "mean", t.calls, t.mean_ms, None, None, None)
            )
    if rows:
        out.append(
            table(
                ("kind", "phase", "stage", "calls", "p50 ms", "p95 ms", "p99 ms", "max ms"),
                rows,
                "server",
            )
        )
    return "".join(out)


def warehouse(rr: ReportRun) -> str:
    w = rr.run.warehouse
    if not rr.run.HasField("warehouse"):
        return ""
    return (
        f'<p class="warehouse">warehouse {escape(w.name)} ({escape(w.size)}, up to '
        f"{w.max_cluster_count} clusters): {rr.run.credits:.6f} credits, "
        f"cost {rr.run.cost:.4f}</p>"
    )


def open_model(rr: ReportRun) -> str:
    rows = [
        (
            lc.state_name(ps.phase),
            Rate(ps.target_rate),
            Rate(ps.achieved_rate),
            ps.lag.p99_ms,
            ps.service.p99_ms,
            ps.late,
            ps.dropped,
        )
        for ps in rr.run.summary.phases
        if ps.HasField("lag")
    ]
    if not rows:
        return ""
    headers = ("phase", "target queries/s", "achieved queries/s", "lag p99 ms")
    return table((*headers, "service p99 ms", "late", "dropped"), rows, "open")


def find_max(rr: ReportRun) -> str:
    result = rr.run.find_max
    if not result.steps:
        return ""
    out = []
    if result.concluded:
        out.append(
            f"<p>best: {result.best_level:g} {escape(result.by)} at "
            f"{result.best.qps:,.0f} queries/s — {escape(result.reason)}</p>"
        )
    out.append(
        table(
            ("level", "queries/s", "p50 ms", "p95 ms", "p99 ms", "error rate", "verdict", "reason"),
            (
                (
                    f"{s.level:g}",
                    Rate(s.stats.qps),
                    s.stats.p50_ms,
                    s.stats.p95_ms,
                    s.stats.p99_ms,
                    f"{s.error_rate:.4%}",
                    s.verdict,
                    s.reason,
                )
                for s in result.steps
            ),
            "find-max",
        )
    )
    return "".join(out)


def deltas(base: ReportRun, other: ReportRun) -> str:
    """Per kind, each figure of A (the first run) and B with B's change relative to A;
    then the open model's and find_max's figures, if any, with their differences."""
    from controller.runs_cli import METRICS, compare

    result = compare(base.run, other.run)
    mode = result.pop("mode", {})
    words, notes = _verdicts(base, other, result)
    rows = [
        [kind, *(_change(metrics[m]) for m in METRICS), words.get(kind, "-")]
        for kind, metrics in result.items()
    ]
    out = table(("kind", *METRICS, "verdict"), rows, "deltas")
    out += "".join(f'<p class="note">{escape(n)}</p>' for n in notes)
    if mode:
        out += table(
            ("figure", "A", "B", "B - A", "relative"),
            (
                (name, d["a"], d["b"], d["delta"], _relative(d["relative"]))
                for name, d in mode.items()
            ),
            "mode-deltas",
        )
    return out


def _verdicts(
    base: ReportRun, other: ReportRun, result: dict[str, dict[str, Any]]
) -> tuple[dict[str, str], list[str]]:
    """B against A with 95 % intervals (what ``runs compare`` says): merged into
    ``result``'s cells; the one word per kind, and notes."""
    if base.seconds is None or other.seconds is None:
        return {}, ["no verdicts: a run that has not ended has no full seconds to compare"]
    try:
        found = verdicts.compare(base.seconds, other.seconds)
    except verdicts.TooShort as exc:
        return {}, [f"no verdicts: {exc}"]
    run_verdicts.merge_into(result, found)
    method = found.as_dict()["method"]
    assert isinstance(method, dict)
    notes = [
        *found.notes,
        f"95% intervals: bootstrap over {method['seconds_a']} and {method['seconds_b']} "
        f"full seconds of MEASUREMENT ({method['resamples']} resamples, seed {method['seed']})",
    ]
    return found.verdicts(), notes


def _relative(rel: float | None) -> str:
    return f"{rel:+.1%}" if rel is not None else "-"


def _change(d: dict[str, Any]) -> str:
    a, b = (f"{v:,.4g}" if v is not None else "-" for v in (d["a"], d["b"]))
    text = f"{a} → {b} ({_relative(d['relative'])})"
    ci = d.get("relative_ci95")
    if ci:
        text += f" [{ci[0]:+.1%}, {ci[1]:+.1%}] {d['verdict']}"
    elif d.get("verdict"):
        text += f" {d['verdict']}"
    return text
