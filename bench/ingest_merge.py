"""The controller's own work per worker report, in process (no gRPC, no other process).

The reports of bench/controller_ingest.py (4 kinds x 250 lognormal latencies, ~340 bytes
encoded each) from N workers for S seconds, each parsed from its wire bytes and handed to
what the controller runs for it: ``RunMetrics.add`` (merge into its second, seal a
complete second: encode its cells, fold them into the phase totals, compute its series
point) and ``QueryFailures.observe``. Reported as CPU time (process time) per report, best
of a few repetitions, and the two pieces that dominated it: ``hdr.add_encoded`` per
histogram and ``hdr.percentiles`` of a phase's histogram.

    python bench/ingest_merge.py                 # 256 workers x 10 s, 5 repetitions

The transport (grpc.aio, the event loop) is not in these figures: bench/controller_ingest.py
measures the whole controller and the bare-gRPC floor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchenv import print_header
from controller_ingest import KINDS, MEASUREMENT, PER_KIND, build_kinds, ts

from controller.metrics import RunMetrics
from controller.query_failures import QueryFailures
from snowload import hdr
from snowload.v1 import control_pb2


def wire_reports(workers: int, seconds: int, origin: int) -> list[list[bytes]]:
    """Per second, every worker's report as it arrives (serialized AttachRequest)."""
    kinds = build_kinds(seed=1)
    out = []
    for k in range(1, seconds + 1):
        second = []
        for _ in range(workers):
            report = control_pb2.MetricsReport(
                run_id="r",
                interval_id=k,
                active_connections=16,
                kinds=[
                    control_pb2.KindInterval(
                        kind=name,
                        phase=MEASUREMENT,  # type: ignore[arg-type]
                        count=PER_KIND,
                        histogram=data,
                    )
                    for name, data in zip(KINDS, kinds, strict=True)
                ],
            )
            report.start_time.CopyFrom(ts(origin + (k - 1) * 1_000_000_000))
            report.end_time.CopyFrom(ts(origin + k * 1_000_000_000))
            second.append(control_pb2.AttachRequest(metrics=report).SerializeToString())
        out.append(second)
    return out


def merge_all(reports: list[list[bytes]], origin: int) -> RunMetrics:
    metrics = RunMetrics()
    metrics.origin_ns = origin
    failures = QueryFailures()
    workers = [f"w{i:04d}" for i in range(len(reports[0]))]
    metrics.expect(workers)
    for second in reports:
        for worker_id, data in zip(workers, second, strict=True):
            report = control_pb2.AttachRequest.FromString(data).metrics
            metrics.add(worker_id, report)
            failures.observe(report)
    return metrics


def best_of(reps: int, fn: object, *args: object) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        fn(*args)  # type: ignore[operator]
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=256)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    print_header("ingest merge: the controller's work per report, in process")
    origin = time.time_ns()
    reports = wire_reports(args.workers, args.seconds, origin)
    merged = merge_all(reports, origin)  # (and the one-time set-up of the merge)
    assert merged.sealed_upto == args.seconds
    n = args.workers * args.seconds
    per_report = best_of(args.reps, merge_all, reports, origin) / n
    print(f"{args.workers} workers x {args.seconds} s, best of {args.reps}")
    print(f"  per report (parse, merge, seal, query failures): {per_report * 1e6:.1f} us")

    payloads = build_kinds(seed=1)
    target = hdr.new_histogram()

    def adds() -> None:
        for _ in range(1000):
            for data in payloads:
                hdr.add_encoded([target], data)

    per_add = best_of(args.reps, adds) / (1000 * len(payloads))
    print(f"  hdr.add_encoded, one ~340-byte histogram into one target: {per_add * 1e6:.1f} us")
    phase = merged.phase_histogram(MEASUREMENT)

    def reads() -> None:
        for _ in range(100):
            hdr.percentiles(phase)

    per_read = best_of(args.reps, reads) / 100
    print(
        f"  hdr.percentiles of the phase histogram ({phase.get_total_count():,} values): "
        f"{per_read * 1e6:.0f} us"
    )


if __name__ == "__main__":
    main()
