"""What ``snowload run`` and ``snowload runs list|show|compare`` print on a terminal:
runs as tables that fit the terminal's width (:mod:`controller.fit`; the run summary is
:mod:`controller.render_summary`)."""

from __future__ import annotations

from typing import Any

from controller import lifecycle as lc
from controller.fit import Grid, print_fitting, short_count, short_rate, stdout_console
from controller.render_summary import print_summary
from snowload import hdr
from snowload.v1 import common_pb2, run_pb2

__all__ = ["duration_s", "print_compare", "print_run", "print_runs", "print_summary"]

SPECTRUM = hdr.SPECTRUM
RUN_COLUMNS = (
    "run",
    "name",
    "target",
    "state",
    "started",
    "took",
    "QPS",
    "p95 ms",
    "errors",
    "SLO",
)


def _measurement(run: run_pb2.Run) -> common_pb2.PhaseSummary | None:
    return next((p for p in run.summary.phases if p.phase == lc.MEASUREMENT), None)


def duration_s(run: run_pb2.Run) -> float:
    if run.HasField("end_time") and run.HasField("start_time"):
        return (run.end_time.ToNanoseconds() - run.start_time.ToNanoseconds()) / 1e9
    return 0.0


def runs_grid(runs: list[run_pb2.Run]) -> Grid:
    """The stored runs; a narrow terminal leaves out the target and how long they took."""
    grid = Grid(
        title=f"{len(runs)} run(s), newest first",
        columns=list(RUN_COLUMNS),
        left=frozenset({"run", "name", "target", "state", "started", "SLO"}),
        narrow_drop=frozenset({"target", "took"}),
    )
    for run in runs:
        meas = _measurement(run)
        state = lc.state_name(run.state)
        if run.reason and run.reason != "duration_elapsed":
            state += f" ({run.reason})"
        started = run.create_time.ToDatetime()
        head = [run.run_id, run.name, run.target, state]
        slo = ("pass" if run.slo_passed else "FAIL") if run.slo else "-"
        p95 = f"{meas.overall.p95_ms:.3f}" if meas else "-"
        took = f"{duration_s(run):.0f}s"
        grid.add(
            [
                *head,
                started.strftime("%Y-%m-%d %H:%M:%S"),
                took,
                f"{meas.overall.qps:,.0f}" if meas else "-",
                p95,
                f"{meas.overall.errors:,}" if meas else "-",
                slo,
            ],
            [
                *head,
                started.strftime("%m-%d %H:%M"),
                took,
                short_rate(meas.overall.qps) if meas else "-",
                p95,
                short_count(meas.overall.errors) if meas else "-",
                slo,
            ],
        )
    return grid


def print_runs(runs: list[run_pb2.Run]) -> None:
    print_fitting(stdout_console(), runs_grid(runs).layouts())


def print_run(run: run_pb2.Run, percentiles: dict[str, dict[str, dict[str, float]]] | None) -> None:
    console = stdout_console()
    print_summary(console, run)
    if percentiles is not None:
        print_fitting(console, spectrum_grid(percentiles).layouts())
    for e in run.events:
        when = e.event_time.ToDatetime().strftime("%H:%M:%S.%f")[:-3]
        console.print(f"  {when}  {lc.state_name(e.state):<12} {e.reason}", highlight=False)
    for w in run.run_workers:
        console.print(
            f"  worker {w.index} {w.worker_id} on {w.host}: {w.connections} connections, "
            f"{w.count:,} queries, {w.errors:,} errors, {w.intervals} intervals, "
            f"clock {w.clock_offset.ToNanoseconds() / 1e6:+.3f} ms "
            f"± {w.clock_uncertainty.ToNanoseconds() / 1e6:.3f} ms"
            + (
                f", {w.late_commands} planned command(s) late by up to "
                f"{w.max_lateness.ToNanoseconds() / 1e6:.1f} ms"
                if w.late_commands
                else ""
            )
            + (" [LOST]" if w.lost else ""),
            highlight=False,
        )
    for sample in run.error_samples:
        console.print(
            f"  error in {sample.kind or '(unnamed)'!r} [{sample.category}]: {sample.message}",
            highlight=False,
        )


def spectrum_grid(data: dict[str, dict[str, dict[str, float]]]) -> Grid:
    columns = [*(f"p{p:g}" for p in SPECTRUM), "max"]
    grid = Grid(
        title="latency percentiles (ms), from the stored histograms",
        columns=["phase", "kind", *columns],
        left=frozenset({"phase", "kind"}),
        grouped=True,
    )
    for phase, kinds in data.items():
        for kind, row in sorted(kinds.items(), key=lambda kv: kv[0] != "all"):
            grid.add([phase, kind, *(f"{row[c]:.3f}" for c in columns)])
    return grid


def compare_grid(
    a: run_pb2.Run, b: run_pb2.Run, result: dict[str, dict[str, dict[str, Any]]]
) -> Grid:
    verdicts = any("verdict" in v for row in result.values() for v in row.values())
    grid = Grid(
        title=f"A = {a.run_id} ({a.name})   B = {b.run_id} ({b.name})   MEASUREMENT",
        columns=["query", "metric", "A", "B", "B - A", "change"]
        + (["95% CI of change", "verdict"] if verdicts else []),
        left=frozenset({"query", "metric", "verdict"}),
        grouped=True,
        narrow_drop=frozenset({"B - A"}) if verdicts else frozenset(),
    )
    for kind, row in result.items():
        grid.sections.append(len(grid.rows))
        for metric, v in row.items():
            change = f"{v['relative']:+.1%}" if v["relative"] is not None else "-"
            extra = [_interval(v), str(v.get("verdict") or "")] if verdicts else []
            grid.add(
                [
                    kind,
                    metric,
                    _fmt(v["a"]),
                    _fmt(v["b"]),
                    _fmt(v["delta"], signed=True),
                    change,
                    *extra,
                ],
                [
                    kind,
                    metric,
                    _short(v["a"]),
                    _short(v["b"]),
                    _short(v["delta"], signed=True),
                    change,
                    *extra,
                ],
            )
    return grid


def _interval(v: dict[str, Any]) -> str:
    """The 95 % interval of the relative change (of the absolute one where A is zero)."""
    rel = v.get("relative_ci95")
    if rel:
        return f"{rel[0]:+.1%} .. {rel[1]:+.1%}"
    ci = v.get("ci95")
    if ci:
        return f"{ci[0]:+.4g} .. {ci[1]:+.4g}"
    return ""


def print_compare(
    a: run_pb2.Run, b: run_pb2.Run, result: dict[str, dict[str, dict[str, Any]]]
) -> None:
    print_fitting(stdout_console(), compare_grid(a, b, result).layouts())


def _fmt(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+,.3f}" if signed else f"{value:,.3f}"


def _short(value: float | None, *, signed: bool = False) -> str:
    """Figures of 10,000 and more in k/M; smaller ones as they are."""
    if value is None:
        return "-"
    if abs(value) < 10_000:
        return _fmt(value, signed=signed)
    text = short_count(value)
    return f"+{text}" if signed and value > 0 else text
