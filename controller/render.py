"""What ``snowload run`` and ``snowload runs list|show|compare`` print on a terminal:
Rich tables of runs (the summary table itself is :func:`controller.report.summary_table`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from controller import lifecycle as lc
from controller.report import summary_table
from snowload import hdr
from snowload.v1 import common_pb2, run_pb2

SPECTRUM = hdr.SPECTRUM


def _measurement(run: run_pb2.Run) -> common_pb2.PhaseSummary | None:
    return next((p for p in run.summary.phases if p.phase == lc.MEASUREMENT), None)


def duration_s(run: run_pb2.Run) -> float:
    if run.HasField("end_time") and run.HasField("start_time"):
        return (run.end_time.ToNanoseconds() - run.start_time.ToNanoseconds()) / 1e9
    return 0.0


def print_summary(console: Console, run: run_pb2.Run) -> None:
    """The summary table ``snowload run`` prints when a run ends."""
    console.print(summary_table(run))


def print_runs(runs: list[run_pb2.Run]) -> None:
    table = Table(title=f"{len(runs)} run(s), newest first", title_justify="left")
    for col in (
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
    ):
        table.add_column(
            col, justify="right" if col in ("QPS", "p95 ms", "errors", "took") else "left"
        )
    for run in runs:
        meas = _measurement(run)
        state = lc.state_name(run.state)
        if run.reason and run.reason != "duration_elapsed":
            state += f" ({run.reason})"
        table.add_row(
            run.run_id,
            run.name,
            run.target,
            state,
            run.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
            f"{duration_s(run):.0f}s",
            f"{meas.overall.qps:,.0f}" if meas else "-",
            f"{meas.overall.p95_ms:.3f}" if meas else "-",
            f"{meas.overall.errors:,}" if meas else "-",
            ("pass" if run.slo_passed else "FAIL") if run.slo else "-",
        )
    Console(width=max(Console().width, 120)).print(table)


def print_run(run: run_pb2.Run, percentiles: dict[str, dict[str, dict[str, float]]] | None) -> None:
    console = Console(width=max(Console().width, 120))
    console.print(summary_table(run))
    if percentiles is not None:
        console.print(_spectrum_table(percentiles))
    for e in run.events:
        when = e.event_time.ToDatetime().strftime("%H:%M:%S.%f")[:-3]
        console.print(f"  {when}  {lc.state_name(e.state):<12} {e.reason}", highlight=False)
    for w in run.run_workers:
        console.print(
            f"  worker {w.index} {w.worker_id} on {w.host}: {w.connections} connections, "
            f"{w.count:,} queries, {w.errors:,} errors, {w.intervals} intervals"
            + (" [LOST]" if w.lost else ""),
            highlight=False,
        )
    for sample in run.error_samples:
        console.print(f"  error {sample.category}: {sample.message}", highlight=False)


def _spectrum_table(data: dict[str, dict[str, dict[str, float]]]) -> Table:
    table = Table(title="latency percentiles (ms), from the stored histograms")
    columns = [*(f"p{p:g}" for p in SPECTRUM), "max"]
    for col in ("phase", "kind", *columns):
        table.add_column(col, justify="left" if col in ("phase", "kind") else "right")
    for phase, kinds in data.items():
        for kind, row in sorted(kinds.items(), key=lambda kv: kv[0] != "all"):
            table.add_row(phase, kind, *(f"{row[c]:.3f}" for c in columns))
    return table


def print_compare(
    a: run_pb2.Run, b: run_pb2.Run, result: dict[str, dict[str, dict[str, Any]]]
) -> None:
    table = Table(
        title=f"A = {a.run_id} ({a.name})   B = {b.run_id} ({b.name})   MEASUREMENT",
        title_justify="left",
    )
    table.add_column("query")
    table.add_column("metric")
    for col in ("A", "B", "B - A", "change"):
        table.add_column(col, justify="right")
    for kind, row in result.items():
        for i, (metric, v) in enumerate(row.items()):
            table.add_row(
                kind if i == 0 else "",
                metric,
                _fmt(v["a"]),
                _fmt(v["b"]),
                _fmt(v["delta"], signed=True),
                f"{v['relative']:+.1%}" if v["relative"] is not None else "-",
            )
        table.add_section()
    Console(width=max(Console().width, 100)).print(table)


def _fmt(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+,.3f}" if signed else f"{value:,.3f}"
