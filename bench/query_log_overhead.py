"""What the query log adds to the hot loop, per query, on one thread.

The connection thread's loop (worker/connection.py) pays, per successful query, for the
query log: one list index and comparison with the slow-N floor of its kind, and one
countdown to the uniform sample's next pick. This script times a stand-in of the loop's
recording step with and without those lines, interleaved, best of many short attempts
(the minimum is what the code costs; the rest is the host), and reports the difference
in ns per query next to the whole executor loop's ns per query (from
bench/generator_efficiency.py --breakdown-only), which gives the share of throughput
the log can cost at most. It also counts how often the slow path (``ThreadLog.slow``)
and the sample path run, on latencies drawn like a real run's.

    python bench/query_log_overhead.py             # ~20 s
    python bench/query_log_overhead.py --quick     # ~3 s
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker.query_log import ThreadLog

LAT_SHIFT = 12


def loop_without(n: int, lats: list[int]) -> float:
    samples: list[int] = []
    append = samples.append
    key_base = 4 << 8
    k = 0
    t0 = time.perf_counter_ns()
    for i in range(n):
        lat = lats[i & 4095]
        append(lat << LAT_SHIFT | key_base | k)
    return (time.perf_counter_ns() - t0) / n


def loop_with(n: int, lats: list[int], log: ThreadLog) -> float:
    samples: list[int] = []
    append = samples.append
    key_base = 4 << 8
    k = 0
    phase = 4
    floors = log.floors(phase)
    left = log.reservoir.first_gap()
    params = (1,)
    t0 = time.perf_counter_ns()
    for i in range(n):
        lat = lats[i & 4095]
        append(lat << LAT_SHIFT | key_base | k)
        if lat > floors[k]:
            log.slow(phase, k, lat, i, params)
        left -= 1
        if not left:
            left = log.sample(phase, k, lat, i, params)
    log.reservoir.finish(left)
    return (time.perf_counter_ns() - t0) / n


class CountingLog(ThreadLog):
    """Counts how often the loop leaves its one comparison and its countdown."""

    slow_calls = 0
    sample_calls = 0

    def slow(self, *args: Any) -> None:
        self.slow_calls += 1
        super().slow(*args)

    def sample(self, *args: Any) -> int:
        self.sample_calls += 1
        return super().sample(*args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=1_000_000, help="per attempt")
    parser.add_argument("--attempts", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.queries, args.attempts = 200_000, 5
    rng = random.Random(1)
    lats = [int(rng.lognormvariate(4.5, 0.8)) for _ in range(4096)]  # µs, ~90 µs median
    best_without = best_with = float("inf")
    slow_calls = samples = 0
    for _ in range(args.attempts):
        best_without = min(best_without, loop_without(args.queries, lats))
        log = ThreadLog(0, 1, 20, 1000, random.Random(2))
        best_with = min(best_with, loop_with(args.queries, lats, log))
    counted = CountingLog(0, 1, 20, 1000, random.Random(2))
    loop_with(args.queries, lats, counted)
    slow_calls, samples = counted.slow_calls, counted.sample_calls
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(f"load avg (1, 5, 15 min): {' '.join(load)}")
    print(f"{args.attempts} attempts x {args.queries:,} queries, best attempt, ns per query:")
    print(f"  recording only (pack + append)          {best_without:8.1f}")
    print(f"  + slow-N comparison + sample countdown  {best_with:8.1f}")
    print(f"  the query log's cost                    {best_with - best_without:+8.1f}")
    print(
        f"  per {args.queries:,} queries: slow path taken {slow_calls:,} times, "
        f"sample path {samples:,} times"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
