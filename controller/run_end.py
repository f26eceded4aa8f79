"""What a run leaves behind when it ends: its stored record, the worker that fetches
server-side timings, and warnings about a saturated load generator (for
controller/orchestrator.py)."""

from __future__ import annotations

from controller import lifecycle as lc
from controller import query_log
from controller.metric_cells import Key, PackedCell
from controller.registry import WorkerRecord
from controller.runs import ActiveRun, Outcome
from controller.store import IntervalHistogram, RunRecord
from snowload import hdr
from snowload.v1 import common_pb2
from snowload.workload import Driver


def enrichment_worker(run: ActiveRun, outcome: Outcome) -> WorkerRecord | None:
    """The setup worker enriches completed runs on targets that keep history."""
    if run.workload.target.driver is Driver.SQLITE:
        run.server.CopyFrom(
            common_pb2.Enrichment(
                status=common_pb2.ENRICHMENT_STATUS_SKIPPED,
                message="sqlite keeps no server-side history",
            )
        )
    elif not run.workload.load.enrich:
        run.server.CopyFrom(
            common_pb2.Enrichment(
                status=common_pb2.ENRICHMENT_STATUS_SKIPPED,
                message="enrichment is off in the workload",
            )
        )
    elif outcome.state != lc.COMPLETED or lc.MEASUREMENT not in run.phase_ns:
        run.server.CopyFrom(
            common_pb2.Enrichment(
                status=common_pb2.ENRICHMENT_STATUS_SKIPPED,
                message="the run did not complete",
            )
        )
    elif run.workers and not run.workers[0].lost:
        return run.workers[0]
    run.enrichment = run.server.status or common_pb2.ENRICHMENT_STATUS_SKIPPED
    return None


def run_record(run: ActiveRun) -> RunRecord:
    histograms: dict[tuple[int, str], bytes] = {}
    for (phase, kind), cell in run.metrics.cells.items():
        histograms[(phase, kind)] = hdr.encode(cell.histogram)
    for phase in {p for p, _ in run.metrics.cells}:
        histograms[(phase, "")] = hdr.encode(run.metrics.phase_histogram(phase))
    intervals = []
    for second, point in sorted(run.metrics.series.items()):
        encoded = point.overall_encoded  # (settled: every second is sealed)
        if encoded:
            start = point.end_ns - int((point.duration_s or 1.0) * 1e9)
            intervals.append(IntervalHistogram(second, point.phase, start, point.end_ns, encoded))
            intervals += kind_intervals(second, point.phase, start, point.end_ns, point.packed)
    load = run.workload.load
    logs = {w: f.query_log for w, f in run.finished.items() if f.HasField("query_log")}
    return RunRecord(
        run=run.to_proto(),
        series=run.metrics.series_protos(),
        histograms=histograms,
        intervals=intervals,
        queries=query_log.merge(logs, load.slow_queries, load.query_sample),
    )


def kind_intervals(
    second: int, phase: int, start_ns: int, end_ns: int, packed: dict[Key, PackedCell]
) -> list[IntervalHistogram]:
    """One second's histogram per query kind (a second that straddles a phase change
    holds a kind in two cells: merged here)."""
    by_kind: dict[str, list[bytes]] = {}
    for (_, kind), cell in sorted(packed.items()):
        if cell.histogram:
            by_kind.setdefault(kind, []).append(cell.histogram)
    out = []
    for kind, parts in by_kind.items():
        if len(parts) == 1:
            encoded = parts[0]
        else:
            merged = hdr.new_histogram()
            for part in parts:
                hdr.add_encoded([merged], part)
            encoded = hdr.encode(merged)
        out.append(IntervalHistogram(second, phase, start_ns, end_ns, encoded, kind))
    return out


def saturation_warnings(run: ActiveRun, cpu_percent: float) -> None:
    """Flag workers whose CPU stayed at the ceiling through MEASUREMENT: the numbers
    may then measure the load generator, not the database."""
    for worker_id, samples in sorted(run.cpu_samples.items()):
        if len(samples) < 3:
            continue
        high = sum(1 for s in samples if s >= cpu_percent)
        if high / len(samples) >= 0.8:
            mean = sum(samples) / len(samples)
            run.warnings.append(
                f"load generator saturated: worker {worker_id} used {mean:.0f}% CPU "
                f"(of one core) through MEASUREMENT; the numbers may measure the "
                f"generator, not the database: add workers or connections per worker"
            )
