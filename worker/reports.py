"""One interval report: what an executor collected in one second, per (phase, kind), with
encoded HDR histograms, error counts and samples, and open-mode schedule figures."""

from __future__ import annotations

from snowload import hdr
from snowload.v1 import common_pb2, control_pb2
from worker.executor import Executor, KindPhaseData


def interval_report(
    executor: Executor,
    cells: dict[tuple[int, int], KindPhaseData],
    *,
    run_id: str,
    interval_id: int,
    start_ns: int,
    end_ns: int,
    last: bool,
    warehouse: common_pb2.WarehouseSample | None,
    totals: dict[tuple[int, int], list[int]],
) -> control_pb2.MetricsReport:
    """The report for ``cells`` (from ``executor.collect()``); adds each cell's successes
    and errors to ``totals`` (the run's running totals for Finished)."""
    report = control_pb2.MetricsReport(
        run_id=run_id,
        interval_id=interval_id,
        active_connections=executor.active_connections,
        last=last,
    )
    report.end_time.FromNanoseconds(end_ns)
    report.start_time.FromNanoseconds(start_ns)
    queries = executor.plan.workload.queries
    for (phase, kind), cell in sorted(cells.items()):
        report.kinds.append(kind_interval(queries[kind].name, phase, cell))
        total = totals.setdefault((phase, kind), [0, 0])
        total[0] += cell.count
        total[1] += sum(t.count for t in cell.errors.values())
    if warehouse is not None:
        report.warehouse.CopyFrom(warehouse)
    if executor.schedule is not None:
        phases = set(executor.last_schedule) | {executor.current_phase()}
        for phase in sorted(phases):
            sched = executor.last_schedule.get(phase)
            report.schedule.append(
                control_pb2.PhaseSchedule(
                    phase=phase,  # type: ignore[arg-type]
                    lag_histogram=hdr.encode(sched.lag) if sched else b"",
                    late=sched.late if sched else 0,
                    dropped=sched.dropped if sched else 0,
                    target_rate=executor.rate,
                )
            )
    return report


def kind_interval(name: str, phase: int, cell: KindPhaseData) -> control_pb2.KindInterval:
    return control_pb2.KindInterval(
        kind=name,
        phase=phase,  # type: ignore[arg-type]
        count=cell.count,
        histogram=hdr.encode(cell.histogram),
        service_histogram=hdr.encode(cell.service) if cell.service is not None else b"",
        errors=[
            control_pb2.ErrorCount(category=cat, count=t.count, samples=t.samples)
            for cat, t in sorted(cell.errors.items())
        ],
    )
