"""What a verdict costs: ``runs compare`` of two runs of N seconds each (every kind
merged), 1,000 resamples, on per-second histograms like a pg_sleep run's (~200 queries a
second, lognormal around 5 ms). Prints seconds of CPU per comparison.

    PYTHONPATH=. python bench/compare_cost.py
"""

from __future__ import annotations

import math
import random
import time

from snowload import bootstrap, hdr
from snowload.bootstrap import Sample, Second


def run(rng: random.Random, seconds: int, per_second: int = 200) -> list[Second]:
    out = []
    for _ in range(seconds):
        hist = hdr.new_histogram()
        for _ in range(per_second):
            hist.record_value(int(5000 * math.exp(rng.gauss(0, 0.3))))
        out.append(Second(1.0, per_second, 0, tuple(hdr.recorded(hdr.encode(hist)))))
    return out


def main() -> None:
    rng = random.Random(1)
    for seconds in (10, 60, 300, 3600):
        a, b = run(rng, seconds), run(rng, seconds)
        started = time.process_time()
        sa, sb = Sample(a), Sample(b)
        laid_out = time.process_time() - started
        bootstrap.compare(sa, sb)
        total = time.process_time() - started
        print(
            f"{seconds:>5} s per run: {sa.n} units, block {sa.block}, grid {len(sa.grid)} "
            f"values: layout {laid_out:.2f} s, compare {total:.2f} s CPU"
        )


if __name__ == "__main__":
    main()
