"""The summary of a run on a terminal (``snowload run``, ``snowload runs show``): per phase
and query kind, count, errors, QPS and latency percentiles; server-side timings, find_max
steps, the open model's figures and the SLO verdicts as notes.

Three layouts, the first that fits the width is printed (:mod:`controller.fit`): a table
with every figure in full; a narrower one (phases as row headers, counts and rates in k/M);
plain lines that wrap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rich.console import Console

from controller import lifecycle as lc
from controller.fit import Grid, print_fitting, short_count, short_rate
from controller.slo import describe
from snowload.v1 import common_pb2, run_pb2

LATENCY_COLUMNS = ("p50 ms", "p95 ms", "p99 ms", "max ms")


@dataclass(frozen=True)
class Row:
    group: str
    """The phase, ``server`` or ``find_max``."""
    label: str
    count: int | None
    errors: int | None
    qps: float | None
    latencies: tuple[str, str, str, str]
    style: str | None = None


def title(run: run_pb2.Run) -> str:
    text = f"{run.name} · run {run.run_id} · {lc.state_name(run.state)}"
    if run.reason:
        text += f" ({run.reason})"
    return text


def _ms(stats: common_pb2.LatencyStats) -> tuple[str, str, str, str]:
    return (
        f"{stats.p50_ms:.3f}",
        f"{stats.p95_ms:.3f}",
        f"{stats.p99_ms:.3f}",
        f"{stats.max_ms:.3f}",
    )


def rows(run: run_pb2.Run) -> Iterator[Row]:
    for ps in run.summary.phases:
        phase = lc.state_name(ps.phase)
        kinds = [("all", ps.overall), *sorted(ps.by_kind.items())]
        for i, (kind, s) in enumerate(kinds):
            yield Row(phase, kind, s.count, s.errors, s.qps, _ms(s), "bold" if i == 0 else None)
    for t in run.server.timings:
        total = t.total
        latencies = (
            _ms(total)
            if total.count
            else (f"mean {t.mean_ms:.3f}", f"sd {t.stddev_ms:.3f}", "", "")
        )
        yield Row("server", t.kind, t.calls, None, None, latencies, "dim")
    for step in run.find_max.steps:
        s = step.stats
        yield Row("find_max", f"{step.level:g} {step.verdict}", s.count, s.errors, s.qps, _ms(s))


def notes(run: run_pb2.Run) -> list[str]:
    out = []
    if run.find_max.concluded:
        out.append(
            f"find_max: best {run.find_max.best_level:g} {run.find_max.by} "
            f"at {run.find_max.best.qps:,.0f} queries/s: {run.find_max.reason}"
        )
    for ps in run.summary.phases:
        if ps.HasField("lag"):
            out.append(
                f"{lc.state_name(ps.phase)} open model: target {ps.target_rate:,.0f}/s, "
                f"achieved {ps.achieved_rate:,.0f}/s, lag p99 {ps.lag.p99_ms:.2f} ms, "
                f"uncorrected p99 {ps.service.p99_ms:.3f} ms, late {ps.late:,}, "
                f"dropped {ps.dropped:,}"
            )
    out.extend(f"warning: {w}" for w in run.warnings)
    if run.slo:
        verdicts = ", ".join(describe(v) for v in run.slo)
        out.append(f"SLO {'passed' if run.slo_passed else 'FAILED'}: {verdicts}")
    return out


def _full(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def _short(n: int | None) -> str:
    return "" if n is None else short_count(n)


def grid(run: run_pb2.Run) -> Grid:
    out = Grid(
        title=title(run),
        columns=["phase", "query", "count", "errors", "QPS", *LATENCY_COLUMNS],
        left=frozenset({"phase", "query"}),
        grouped=True,
        caption="\n".join(notes(run)),
    )
    group = ""
    for row in rows(run):
        if row.group != group:
            group = row.group
            out.sections.append(len(out.rows))
        qps = "" if row.qps is None else f"{row.qps:,.1f}"
        out.add(
            [row.group, row.label, _full(row.count), _full(row.errors), qps, *row.latencies],
            [
                row.group,
                row.label,
                _short(row.count),
                _short(row.errors),
                "" if row.qps is None else short_rate(row.qps),
                *row.latencies,
            ],
            row.style,
        )
    return out


def print_summary(console: Console, run: run_pb2.Run) -> None:
    """The summary in the first layout that fits ``console``."""
    print_fitting(console, grid(run).layouts())
