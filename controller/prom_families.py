"""The Prometheus metrics of a controller, built from its live state at each scrape (the
endpoint: controller/prom_server.py).

Counters and histograms are read from the same merged cells as the run's own summary
(complete seconds while it runs, everything once it has ended), so they only grow and, at a
run's end, ``snowload_queries_total`` of a phase is the run's count for that phase. A
finished run's series stay for a retention (default 10 minutes) and then go, which bounds
the number of series.

Histogram buckets: fixed bounds (1-2-5 steps from 10 µs to 60 s, the same for every run,
so that ``histogram_quantile`` and ``rate`` work across runs and scrapes); each bound's
cumulative count is read from the merged HDR histogram (values at 3 significant digits).
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from controller import lifecycle as lc
from controller.ingest import IngestStats
from controller.metric_cells import Cell
from controller.orchestrator import RunManager
from controller.registry import WorkerRegistry
from controller.runs import ActiveRun
from snowload import hdr
from snowload.v1 import control_pb2

BOUNDS_S = (
    0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
    0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0,
)  # fmt: skip
"""Upper bounds of the latency buckets, in seconds."""
RETENTION_S = 600.0

RUN_LABELS = ["run_id", "phase", "kind"]


@dataclass
class Retained:
    """Finished runs whose series are still exported, until their expiry (monotonic)."""

    retention_s: float = RETENTION_S
    runs: dict[str, tuple[float, ActiveRun]] = field(default_factory=dict)

    def ended(self, run: ActiveRun) -> None:
        self.runs[run.run_id] = (time.monotonic() + self.retention_s, run)

    def current(self) -> list[ActiveRun]:
        now = time.monotonic()
        for run_id in [r for r, (expiry, _) in self.runs.items() if expiry <= now]:
            del self.runs[run_id]
        return [run for _, run in self.runs.values()]


def collect(
    runs: RunManager, registry: WorkerRegistry, retained: Retained, ingest: IngestStats
) -> list[Metric]:
    """Every family, from the state right now (call it on the event loop)."""
    every = {r.run_id: r for r in retained.current()}
    every.update(runs.active)
    families = [
        *_run_families(every.values()),
        *_worker_families(registry),
    ]
    reports = CounterMetricFamily(
        "snowload_controller_reports",
        "Worker metrics reports merged by the controller (rate(): reports per second).",
    )
    reports.add_metric([], ingest.reports)
    merge = CounterMetricFamily(
        "snowload_controller_merge_seconds",
        "Time the controller spent merging worker reports (rate(): seconds per second).",
    )
    merge.add_metric([], ingest.merge_seconds)
    families += [reports, merge]
    return families


def _phase(phase: int) -> str:
    return lc.state_name(phase).lower()


def _run_families(runs: Iterable[ActiveRun]) -> Iterator[Metric]:
    queries = CounterMetricFamily(
        "snowload_queries",
        "Queries finished (errors included), per run, phase and query kind.",
        labels=RUN_LABELS,
    )
    errors = CounterMetricFamily(
        "snowload_query_errors",
        "Queries that failed, per run, phase, query kind and error category.",
        labels=[*RUN_LABELS, "category"],
    )
    durations = HistogramMetricFamily(
        "snowload_query_duration_seconds",
        "Latency of successful queries (open model: from the intended start), from the "
        "merged HDR histograms.",
        labels=RUN_LABELS,
    )
    phase = GaugeMetricFamily(
        "snowload_run_phase",
        "1 for the state a run is in (pending, preparing, warmup, measurement, processing, "
        "completed, failed, cancelled).",
        labels=["run_id", "name", "phase"],
    )
    connections = GaugeMetricFamily(
        "snowload_active_connections",
        "Connections with load on them in the run's newest complete second.",
        labels=["run_id"],
    )
    lag = GaugeMetricFamily(
        "snowload_open_lag_p99_seconds",
        "Open model: p99 of how late queries started after their intended start, in the "
        "newest complete second.",
        labels=["run_id"],
    )
    target = GaugeMetricFamily(
        "snowload_open_target_rate",
        "Open model: the target rate (queries per second) in the newest complete second.",
        labels=["run_id"],
    )
    warehouse = {
        name: GaugeMetricFamily(
            f"snowload_warehouse_{name}",
            f"Snowflake warehouse: {text}, as last polled.",
            labels=["run_id", "warehouse"],
        )
        for name, text in (
            ("running", "queries running"),
            ("queued", "queries queued"),
            ("started_clusters", "clusters started"),
        )
    }
    for run in runs:
        phase.add_metric([run.run_id, run.workload.name, _phase(run.state)], 1)
        for (ph, kind), cell in sorted(run.metrics.cells.items()):
            labels = [run.run_id, _phase(ph), kind]
            queries.add_metric(labels, cell.count)
            for category, count in sorted(cell.errors.items()):
                errors.add_metric([*labels, category], count)
            buckets, total_s = histogram_buckets(cell)
            durations.add_metric(labels, buckets, sum_value=total_s)
        complete = run.metrics.complete_point()
        if complete is None:
            continue
        point = complete.to_proto()
        connections.add_metric([run.run_id], point.active_connections)
        if point.target_rate:
            lag.add_metric([run.run_id], point.lag_p99_ms / 1000.0)
            target.add_metric([run.run_id], point.target_rate)
        if point.HasField("warehouse"):
            sample = point.warehouse
            warehouse["running"].add_metric([run.run_id, sample.name], sample.running)
            warehouse["queued"].add_metric([run.run_id, sample.name], sample.queued)
            warehouse["started_clusters"].add_metric(
                [run.run_id, sample.name], sample.started_clusters
            )
    yield from (queries, errors, durations, phase, connections, lag, target)
    yield from warehouse.values()


def histogram_buckets(cell: Cell) -> tuple[list[tuple[str, float]], float]:
    """Cumulative counts at BOUNDS_S (and +Inf) of a cell's histogram, and the sum of its
    latencies in seconds (from bucket midpoints, as HdrHistogram's mean)."""
    recorded = hdr.recorded_of(cell.histogram)
    values = [v for v, _ in recorded]
    cumulative = list(itertools.accumulate(c for _, c in recorded))
    total = cumulative[-1] if cumulative else 0
    out = []
    for bound in BOUNDS_S:
        i = bisect.bisect_right(values, bound * 1e6)
        out.append((_le(bound), float(cumulative[i - 1]) if i else 0.0))
    out.append(("+Inf", float(total)))
    mean_ms = hdr.percentiles(cell.histogram).mean_ms if total else 0.0
    return out, mean_ms * total / 1000.0


def _le(bound: float) -> str:
    return f"{bound:g}"


WORKER_STATES = {
    value: name.removeprefix("WORKER_STATE_").lower()
    for name, value in control_pb2.WorkerState.items()
    if value
}


def _worker_families(registry: WorkerRegistry) -> Iterator[Metric]:
    states = GaugeMetricFamily(
        "snowload_workers", "Attached workers by state (lost: silent too long).", labels=["state"]
    )
    counts = dict.fromkeys([*WORKER_STATES.values(), "lost"], 0)
    cpu = GaugeMetricFamily(
        "snowload_worker_cpu_percent",
        "A worker process's CPU over its last heartbeat interval, % of one core.",
        labels=["worker_id", "run_id"],
    )
    rss = GaugeMetricFamily(
        "snowload_worker_rss_bytes", "A worker process's resident memory.", labels=["worker_id"]
    )
    offset = GaugeMetricFamily(
        "snowload_worker_clock_offset_seconds",
        "The worker's estimate of the controller's clock minus its own.",
        labels=["worker_id"],
    )
    uncertainty = GaugeMetricFamily(
        "snowload_worker_clock_uncertainty_seconds",
        "How well the clock offset is known (half the best recent round trip).",
        labels=["worker_id"],
    )
    for rec in registry.workers.values():
        state = "lost" if rec.lost else WORKER_STATES.get(rec.state, "idle")
        counts[state] = counts.get(state, 0) + 1
        hb = rec.heartbeat
        if hb is None or rec.lost:
            continue
        cpu.add_metric([rec.worker_id, rec.run_id], hb.cpu_percent)
        rss.add_metric([rec.worker_id], hb.rss_bytes)
        offset.add_metric([rec.worker_id], hb.clock_offset.ToNanoseconds() / 1e9)
        uncertainty.add_metric([rec.worker_id], hb.clock_uncertainty.ToNanoseconds() / 1e9)
    for state, n in counts.items():
        states.add_metric([state], n)
    yield from (states, cpu, rss, offset, uncertainty)
