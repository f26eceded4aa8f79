"""Memory of a long Snowflake run's warehouse samples: a list of every sample against the
bounded ledger (controller/warehouse_ledger.py).

The setup worker attaches its latest ``SHOW WAREHOUSES`` sample to every interval report,
so a run delivers one sample a second: a 7-day run 604,800 of them. Measured: the
process's resident memory before and after adding ``--samples`` samples, (a) appended to
a list, as the controller kept them before, (b) added to a ``WarehouseLedger``.

    python bench/warehouse_memory.py                    # 604,800 samples (7 days)
    python bench/warehouse_memory.py --samples 86400    # one day
"""

from __future__ import annotations

import argparse
import gc

import psutil

from controller.warehouse_ledger import WarehouseLedger
from snowload.v1 import common_pb2

T0 = 1_700_000_000 * 10**9


def sample(i: int) -> common_pb2.WarehouseSample:
    w = common_pb2.WarehouseSample(
        name="LOADTEST_WH",
        size="X-Small",
        state="STARTED",
        min_cluster_count=1,
        max_cluster_count=3,
        started_clusters=1 + i % 3,
        running=4,
        queued=i % 5,
    )
    w.sample_time.FromNanoseconds(T0 + i * 10**9)
    return w


def rss_mib() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=604_800)
    n = parser.parse_args().samples
    before = rss_mib()
    ledger = WarehouseLedger()
    for i in range(n):
        ledger.add(sample(i))
    bounded = rss_mib() - before
    before = rss_mib()
    every = [sample(i) for i in range(n)]
    listed = rss_mib() - before
    print(
        f"{n:,} samples: list {listed:,.0f} MiB, ledger {bounded:,.1f} MiB "
        f"({len(ledger.kept())} kept, {len(every):,} listed)"
    )


if __name__ == "__main__":
    main()
