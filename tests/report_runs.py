"""Stored runs made up for the HTML report's tests: every section filled (open model,
warehouse, find_max steps, server timings, errors, a partial last second), histograms
recorded from raw samples that the tests keep as their oracle."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from controller import lifecycle as lc
from controller.store import IntervalHistogram, RunRecord
from snowload import hdr
from snowload.v1 import common_pb2, run_pb2

T0_NS = 1_780_000_000 * 10**9


@dataclass
class MadeRun:
    record: RunRecord
    samples: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    """Raw latencies (µs) recorded into each stored histogram: the oracle."""
    queries: list[dict[str, Any]] = field(default_factory=list)


def _stats(rng: random.Random, count: int, base_ms: float) -> common_pb2.LatencyStats:
    p50 = base_ms * rng.uniform(0.9, 1.1)
    return common_pb2.LatencyStats(
        count=count,
        errors=count // 500,
        qps=float(count),
        p50_ms=p50,
        p95_ms=p50 * 2.5,
        p99_ms=p50 * 4,
        max_ms=p50 * 9,
        mean_ms=p50 * 1.2,
        min_ms=p50 / 5,
    )


def made_run(
    run_id: str = "a1b2c3d4e5f6",
    *,
    seconds: int = 60,
    warmup: int = 10,
    kinds: int = 3,
    samples_per_histogram: int = 2000,
    seed: int = 1,
    state: int = lc.COMPLETED,
    scale: float = 1.0,
    intervals: int = 0,
) -> MadeRun:
    """A run of ``seconds`` seconds of load (the first ``warmup`` of them warmup) and
    ``kinds`` query kinds; ``scale`` multiplies its latencies (a slower second run).
    ``intervals``: per second and kind, a histogram of that many samples (what compare
    verdicts bootstrap over)."""
    rng = random.Random(seed)
    names = [f"kind_{i}" for i in range(kinds)]
    run = run_pb2.Run(
        run_id=run_id,
        name="orders-mix",
        state=state,
        reason="duration_elapsed" if state == lc.COMPLETED else "",
        mode=common_pb2.LOAD_MODE_OPEN,
        target="snowflake:bench_wh/orders <report & check>",
        workers=4,
        connections=32,
        target_rate=800.0,
        enrichment=common_pb2.ENRICHMENT_STATUS_COMPLETED,
    )
    run.create_time.FromNanoseconds(T0_NS - 5 * 10**9)
    run.start_time.FromNanoseconds(T0_NS)
    run.plan.load_start_time.FromNanoseconds(T0_NS)
    if lc.is_terminal(state):
        run.end_time.FromNanoseconds(T0_NS + (seconds + 2) * 10**9)
    states = [
        (lc.PENDING, -5),
        (lc.PREPARING, -3),
        (lc.WARMUP, 0),
        (lc.MEASUREMENT, warmup),
        (lc.PROCESSING, seconds),
    ]
    if lc.is_terminal(state):
        states.append((state, seconds + 2))
    for st, at in states:
        if st == lc.PROCESSING and not lc.is_terminal(state):
            break
        event = run.events.add(state=st, reason=run.reason if lc.is_terminal(st) else "")
        event.event_time.FromNanoseconds(T0_NS + at * 10**9)

    made = MadeRun(RunRecord(run))
    series = made.record.series
    for s in range(1, seconds + 1):
        phase = lc.WARMUP if s <= warmup else lc.MEASUREMENT
        partial = s == seconds
        p = common_pb2.SeriesPoint(
            second=s,
            phase=phase,
            overall=_stats(rng, 800 if not partial else 300, 4.0 * scale),
            active_connections=32,
            workers_active=4,
            target_rate=800.0,
            lag_p99_ms=rng.uniform(0.1, 3.0),
            service_p99_ms=rng.uniform(10, 20) * scale,
            late=rng.randrange(5),
            dropped=rng.randrange(2),
            partial=partial,
        )
        p.end_time.FromNanoseconds(T0_NS + s * 10**9)
        p.duration.FromNanoseconds((10**9 * 3) // 8 if partial else 10**9)
        for name in names:
            p.by_kind[name].CopyFrom(_stats(rng, 800 // kinds, 4.0 * scale))
        p.errors_by_category["timeout"] = s % 3
        p.warehouse.CopyFrom(
            common_pb2.WarehouseSample(
                name="BENCH_WH",
                size="MEDIUM",
                running=rng.randrange(8, 16),
                queued=rng.randrange(3),
                started_clusters=1 + s // 400,
            )
        )
        series.append(p)
        if intervals:
            start, end = T0_NS + (s - 1) * 10**9, T0_NS + s * 10**9
            every = hdr.new_histogram()
            for i, name in enumerate(names):
                hist = hdr.new_histogram()
                for _ in range(intervals):
                    v = int(rng.lognormvariate(8.0 + 0.1 * i, 0.6) * scale)
                    hist.record_value(v)
                    every.record_value(v)
                made.record.intervals.append(
                    IntervalHistogram(s, phase, start, end, hdr.encode(hist), name)
                )
            made.record.intervals.append(IntervalHistogram(s, phase, start, end, hdr.encode(every)))

    for phase in (lc.WARMUP, lc.MEASUREMENT):
        total = hdr.new_histogram()
        everything: list[int] = []
        summary = run.summary.phases.add(phase=phase)
        for i, name in enumerate(names):
            hist = hdr.new_histogram()
            values = [
                int(rng.lognormvariate(8.0 + 0.1 * i, 0.6) * scale)
                for _ in range(samples_per_histogram)
            ]
            for v in values:
                hist.record_value(v)
                total.record_value(v)
            made.samples[(phase, name)] = values
            everything += values
            made.record.histograms[(phase, name)] = hdr.encode(hist)
            summary.by_kind[name].CopyFrom(_stats(rng, len(values), 4.0 * scale))
        made.samples[(phase, "")] = everything
        made.record.histograms[(phase, "")] = hdr.encode(total)
        summary.overall.CopyFrom(_stats(rng, len(everything), 4.0 * scale))
        summary.errors_by_category["timeout"] = 7
        summary.lag.CopyFrom(_stats(rng, len(everything), 0.5))
        summary.service.CopyFrom(_stats(rng, len(everything), 4.0 * scale))
        summary.target_rate = 800.0
        summary.achieved_rate = 797.5
        summary.late = 12
        summary.dropped = 3
        summary.duration.FromSeconds(warmup if phase == lc.WARMUP else seconds - warmup)

    run.slo.add(kind="", metric="p95_ms", limit=12.0, actual=10.1 * scale, passed=scale < 1.1)
    run.slo.add(kind=names[0], metric="error_rate", limit=0.01, actual=0.002, passed=True)
    run.slo_passed = scale < 1.1
    run.error_samples.add(
        kind=names[0], category="timeout", message="statement <timed out> after 30 s & more"
    )
    run.warehouse.CopyFrom(common_pb2.WarehouseSample(name="BENCH_WH", size="MEDIUM"))
    run.warehouse.max_cluster_count = 3
    run.credits = 0.123456
    run.cost = 0.37
    run.server.status = common_pb2.ENRICHMENT_STATUS_COMPLETED
    run.server.message = "matched 98% of queries in QUERY_HISTORY"
    for name in names:
        timing = run.server.timings.add(kind=name, phase=lc.MEASUREMENT, calls=1000)
        for stage in ("total", "compilation", "execution", "queued"):
            getattr(timing, stage).CopyFrom(_stats(rng, 1000, 2.0))
    fm = run.find_max
    fm.by = "connections"
    fm.concluded = True
    fm.best_level = 24
    fm.reason = "p95 rose past its guardrail at 32 connections"
    for level, verdict in ((8, "ok"), (16, "ok"), (24, "ok"), (32, "degraded")):
        step = fm.steps.add(level=level, error_rate=0.001, verdict=verdict, reason="")
        step.stats.CopyFrom(_stats(rng, 5000, 2.0 + level / 8))
    fm.best.CopyFrom(fm.steps[2].stats)
    run.run_workers.add(worker_id="w-1", host="bench-1", index=0, connections=8, count=100)

    for phase in ("WARMUP", "MEASUREMENT"):
        for name in names:
            for k in range(20):
                made.queries.append(_entry(rng, name, phase, 40.0 + k, None))
            for k in range(3):
                made.queries.append(_entry(rng, name, phase, 30.0, f"timeout {k} <x>"))
    made.queries += [_entry(rng, rng.choice(names), "MEASUREMENT", 4.0, None) for _ in range(1000)]
    return made


def _entry(
    rng: random.Random, kind: str, phase: str, latency_ms: float, error: str | None
) -> dict[str, Any]:
    return {
        "kind": kind,
        "phase": phase,
        "worker": f"w-{rng.randrange(4)}",
        "connection": rng.randrange(8),
        "started_at": "2026-05-28T20:26:40.123456Z",
        "latency_ms": latency_ms * rng.uniform(1.0, 1.5),
        "params": [rng.randrange(10**6), "o'brien & <co>"],
        "server_id": f"01b2c3d4-0000-{rng.randrange(10**4):04d}",
        "error": error,
    }
