"""What a run leaves behind when it ends: its stored record, the worker that fetches
server-side timings, and warnings about a saturated load generator (for
controller/orchestrator.py)."""

from __future__ import annotations

from controller import lifecycle as lc
from controller import query_log
from controller.metrics import RunMetrics
from controller.registry import WorkerRecord
from controller.runs import ActiveRun, Outcome
from controller.store import RunRecord
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
    """What the end of a run adds: its row, per-phase totals and query log (its seconds
    were written while it went on: controller/run_journal.py)."""
    load = run.workload.load
    logs = {w: f.query_log for w, f in run.finished.items() if f.HasField("query_log")}
    return RunRecord(
        run=run.to_proto(),
        histograms=total_histograms(run.metrics),
        queries=query_log.merge(logs, load.slow_queries, load.query_sample),
    )


def total_histograms(metrics: RunMetrics) -> dict[tuple[int, str], bytes]:
    """Encoded per (phase, kind), and per phase over every kind (kind '')."""
    histograms: dict[tuple[int, str], bytes] = {}
    for (phase, kind), cell in metrics.cells.items():
        histograms[(phase, kind)] = hdr.encode(cell.histogram)
    for phase in {p for p, _ in metrics.cells}:
        histograms[(phase, "")] = hdr.encode(metrics.phase_histogram(phase))
    return histograms


def saturation_warnings(run: ActiveRun, cpu_percent: float) -> None:
    """Flag workers whose CPU stayed at the ceiling through MEASUREMENT: the numbers
    may then measure the load generator, not the database."""
    for worker_id, samples in sorted(run.cpu_samples.items()):
        count = samples.total()
        if count < 3:
            continue
        high = sum(n for s, n in samples.items() if s >= cpu_percent)
        if high / count >= 0.8:
            mean = sum(s * n for s, n in samples.items()) / count
            run.warnings.append(
                f"load generator saturated: worker {worker_id} used {mean:.0f}% CPU "
                f"(of one core) through MEASUREMENT; the numbers may measure the "
                f"generator, not the database: add workers or connections per worker"
            )
