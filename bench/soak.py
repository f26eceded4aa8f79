"""Soak: one long run, 4 workers, a mixed workload; memory of every process and growth
of the results database over time.

A controller started as deployed (``python -m snowload.cli controller --db
<tmp>/results.db``) and 4 worker processes (``python -m worker``) run one run of
``--duration`` (default 1 h; 3 min with ``--quick``) against SQLite (a file) or
PostgreSQL (a throwaway cluster, as bench/pgbench_compare.py starts one), with three
query kinds: a point read, a range read and an update. Every ``--every`` seconds (30; 10
with ``--quick``) the script records

* RSS of the controller and of each worker (psutil, /proc),
* the results database's size on disk (file + WAL) and, per query kind, the bytes of its
  stored seconds (``second_cells``: per-kind histograms and errors) plus the series
  points and interval histograms (read with a separate read-only connection),
* the run's MEASUREMENT count so far (RunService.GetRun progress is not needed: the
  series' counts are summed from the store).

At the end it prints a table of the samples and a summary: RSS growth of each process
from the first sample after the settling time (5 min; 20 % of the run with ``--quick``)
to the last, as a percentage (goal: <= 5 %), the results database's growth per hour,
in total and per kind, and the projection for a 7-day run. ``--json FILE`` writes every
sample.

    python bench/soak.py --quick                        # 3 min, SQLite
    nice -n 10 python bench/soak.py                     # 1 h, SQLite
    nice -n 10 python bench/soak.py --target postgres   # 1 h, PostgreSQL
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import psutil
from benchenv import print_header

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from snowload.v1 import common_pb2, run_pb2, run_pb2_grpc  # noqa: E402

WORKERS = 4
KINDS = ("point", "range", "update")
SQLITE_TARGET = """
[target]
database = "{database}"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)",
       '''WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
          INSERT OR IGNORE INTO kv SELECT i, 0 FROM n''']
"""
POSTGRES_TARGET = """
[target]
driver = "postgres"
dsn = "{dsn}"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS kv (k BIGINT PRIMARY KEY, v BIGINT NOT NULL)",
       "INSERT INTO kv SELECT g, 0 FROM generate_series(1, 10000) g ON CONFLICT DO NOTHING"]
"""
LOAD = """
name = "soak"
{target}
[load]
workers = {workers}
connections = {connections}
warmup = "0s"
duration = "{duration}s"
think_time = "{think}"
[[query]]
name = "point"
weight = 6
sql = "SELECT v FROM kv WHERE k = ?"
params = [{{ int = [1, 10000] }}]
[[query]]
name = "range"
weight = 2
sql = "SELECT count(*) FROM kv WHERE k BETWEEN ? AND ? + 50"
params = [{{ int = [1, 9900] }}, {{ int = [1, 9900] }}]
[[query]]
name = "update"
weight = 2
sql = "UPDATE kv SET v = v + 1 WHERE k = ?"
params = [{{ int = [1, 10000] }}]
"""


@dataclass
class Sample:
    elapsed_s: float
    controller_rss: int
    worker_rss: list[int]
    db_bytes: int
    bytes_by_kind: dict[str, int] = field(default_factory=dict)
    series_bytes: int = 0
    seconds_stored: int = 0
    queries: int = 0


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    with log.open("w") as err:
        return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stderr=err, text=True)


def start_controller(
    tmp: Path, env: dict[str, str], loss_timeout_s: float
) -> tuple[subprocess.Popen[str], str]:
    log = tmp / "controller.log"
    proc = start(
        [
            sys.executable,
            "-m",
            "snowload.cli",
            "controller",
            "--listen",
            "127.0.0.1:0",
            "--db",
            str(tmp / "results.db"),
            "--log-level",
            "INFO",
            "--loss-timeout",
            f"{loss_timeout_s:g}s",
        ],
        env,
        log,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "listening on" in line:
                return proc, line.rsplit(" ", 1)[1].strip()
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the controller did not start")


def db_figures(path: Path, run_id: str) -> tuple[int, dict[str, int], int, int, int]:
    """Size on disk; bytes per kind; bytes of series + intervals; seconds; queries."""
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        by_kind = {
            str(kind): int(n)
            for kind, n in db.execute(
                "SELECT kind, sum(length(histogram) + length(service) + length(errors) + 40) "
                "FROM second_cells WHERE run_id = ? GROUP BY kind",
                (run_id,),
            )
        }
        series, seconds = db.execute(
            "SELECT coalesce(sum(length(point) + 40), 0), count(*) FROM series WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        (intervals,) = db.execute(
            "SELECT coalesce(sum(length(encoded) + 40), 0) FROM interval_histograms "
            "WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        queries = 0
        for (blob,) in db.execute("SELECT point FROM series WHERE run_id = ?", (run_id,)):
            point = common_pb2.SeriesPoint()
            point.ParseFromString(blob)
            queries += point.overall.count
    return size, by_kind, int(series) + int(intervals), int(seconds), queries


@contextlib.contextmanager
def target(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield SQLITE_TARGET.format(database=tmp / "target.db")
        return
    from pgbench_compare import throwaway_cluster

    with throwaway_cluster() as cluster:
        yield POSTGRES_TARGET.format(dsn=cluster.dsn)


async def soak(args: argparse.Namespace) -> list[Sample]:
    tmp = Path(tempfile.mkdtemp(prefix="snowload-soak-"))
    print(f"files (results database, logs): {tmp}", flush=True)
    env = dict(os.environ, SNOWLOAD_HOME=str(tmp / "home"), PYTHONPATH=str(ROOT))
    controller, address = start_controller(tmp, env, args.loss_timeout)
    workers = [
        start(
            [sys.executable, "-m", "worker", "--controller", address, "--id", f"soak{i}"],
            env,
            tmp / f"worker{i}.log",
        )
        for i in range(WORKERS)
    ]
    samples: list[Sample] = []
    try:
        with target(args.target, tmp) as target_toml:
            text = LOAD.format(
                target=target_toml,
                workers=WORKERS,
                connections=args.connections,
                duration=int(args.duration),
                think=args.think,
            )
            async with grpc.aio.insecure_channel(address) as channel:
                stub = run_pb2_grpc.RunServiceStub(channel)
                while len((await stub.ListWorkers(run_pb2.ListWorkersRequest())).workers) < WORKERS:
                    await asyncio.sleep(0.2)
                started = await stub.StartRun(run_pb2.StartRunRequest(workload_toml=text))
                run_id = started.run.run_id
                began = time.monotonic()
                procs = [psutil.Process(controller.pid)] + [psutil.Process(w.pid) for w in workers]
                while True:
                    await asyncio.sleep(args.every - (time.monotonic() - began) % args.every)
                    run = (await stub.GetRun(run_pb2.GetRunRequest(run_id=run_id))).run
                    rss = [p.memory_info().rss for p in procs]
                    size, by_kind, series, seconds, queries = db_figures(tmp / "results.db", run_id)
                    sample = Sample(
                        round(time.monotonic() - began, 1),
                        rss[0],
                        rss[1:],
                        size,
                        by_kind,
                        series,
                        seconds,
                        queries,
                    )
                    samples.append(sample)
                    print(
                        f"{sample.elapsed_s:7.0f}s  controller {rss[0] / 2**20:6.1f} MiB  workers "
                        + " ".join(f"{r / 2**20:5.1f}" for r in rss[1:])
                        + f" MiB  db {size / 2**20:7.2f} MiB  seconds {seconds}  "
                        f"queries {queries:,}",
                        flush=True,
                    )
                    if run.state in (
                        common_pb2.STATE_COMPLETED,
                        common_pb2.STATE_FAILED,
                        common_pb2.STATE_CANCELLED,
                    ):
                        print(f"run {run_id}: {common_pb2.State.Name(run.state)} {run.reason}")
                        break
    finally:
        for proc in [*workers, controller]:
            proc.terminate()
        for proc in [*workers, controller]:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return samples


def growth(values: list[int]) -> float:
    return (values[-1] - values[0]) / values[0] * 100 if values and values[0] else 0.0


def summarize(samples: list[Sample], settle_s: float) -> None:
    loaded = [s for s in samples if s.seconds_stored > 0]
    after = [s for s in loaded if s.elapsed_s >= settle_s] or loaded
    if len(after) < 2:
        print("too few samples for a summary")
        return
    first, last = after[0], after[-1]
    print(f"\nRSS from {first.elapsed_s:.0f}s to {last.elapsed_s:.0f}s (goal: <= 5 % growth)")
    print(
        f"  controller {first.controller_rss / 2**20:.1f} -> {last.controller_rss / 2**20:.1f} "
        f"MiB ({growth([s.controller_rss for s in after]):+.1f} %), "
        f"peak {max(s.controller_rss for s in after) / 2**20:.1f} MiB"
    )
    for i in range(len(first.worker_rss)):
        values = [s.worker_rss[i] for s in after]
        print(
            f"  worker {i}   {values[0] / 2**20:.1f} -> {values[-1] / 2**20:.1f} MiB "
            f"({growth(values):+.1f} %), peak {max(values) / 2**20:.1f} MiB"
        )
    span_h = (last.elapsed_s - first.elapsed_s) / 3600
    per_hour = (last.db_bytes - first.db_bytes) / span_h if span_h else 0.0
    secs = last.seconds_stored - first.seconds_stored
    print(
        f"\nresults database: {last.db_bytes / 2**20:.2f} MiB on disk after "
        f"{last.seconds_stored} s stored; growth {per_hour / 2**20:.1f} MiB/hour on disk"
    )
    if secs:
        for kind in sorted(last.bytes_by_kind):
            delta = last.bytes_by_kind[kind] - first.bytes_by_kind.get(kind, 0)
            print(f"  kind {kind:8s} {delta / secs * 3600 / 2**20:6.2f} MiB/hour (stored cells)")
        delta = last.series_bytes - first.series_bytes
        print(f"  series + interval histograms {delta / secs * 3600 / 2**20:6.2f} MiB/hour")
        stored = delta + sum(last.bytes_by_kind.values()) - sum(first.bytes_by_kind.values())
        print(
            f"  stored rows in all: {stored / secs * 3600 / 2**20:.2f} MiB/hour, "
            f"{stored / secs * 86400 * 7 / 2**30:.2f} GiB in 7 days"
        )
    print(f"  7-day projection: {per_hour * 24 * 7 / 2**30:.1f} GiB on disk for one such run")
    qps = (last.queries - first.queries) / secs if secs else 0.0
    print(f"  load: {qps:,.0f} queries/s over the window")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 minutes, a sample every 10 s")
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds (default 3600)")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--target", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--connections", type=int, default=8, help="total (default 8)")
    parser.add_argument("--think", default="2ms", help="think time per query (default 2ms)")
    parser.add_argument("--json", type=Path, help="write every sample to this file")
    parser.add_argument(
        "--loss-timeout",
        type=float,
        default=30.0,
        help="the controller's worker loss timeout in seconds (default 30: a soak under "
        "nice on a busy host must not fail because a worker was starved for a few seconds)",
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.every = min(args.duration, 180.0), min(args.every, 10.0)
    env = print_header(f"soak: {args.duration:g}s, {WORKERS} workers, {args.target}")
    print(f"connections {args.connections}, think time {args.think}, sample every {args.every:g}s")
    samples = asyncio.run(soak(args))
    settle_s = 300.0 if args.duration >= 1200 else args.duration * 0.2
    summarize(samples, settle_s)
    if args.json:
        args.json.write_text(
            json.dumps({"env": env, "samples": [asdict(s) for s in samples]}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
