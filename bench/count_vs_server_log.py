"""The run's counts against PostgreSQL's statement log, run after run, under CPU load.

snowload promises that a run counts exactly the statements the server executed, per
worker and per phase. This script runs many short runs against a throwaway PostgreSQL
(tests/pg.py: ``log_statement = 'all'``, each statement tagged with run, worker, phase
and kind) with several local worker processes (one of them with a skewed clock,
``SNOWLOAD_TEST_CLOCK_SKEW_MS``) while a few busy-loop processes load the CPU, and
compares, per worker and phase, the server's log with the worker's own totals (its
Finished message) and with the run's merged cells.

Modes (each run picks the next one in turn):

- ``planned``: the run ends at its planned instant. Every statement the server logged
  as MEASUREMENT must be a MEASUREMENT statement of the run, and the run has no
  PROCESSING statements at all (nothing is issued after the planned end).
- ``stop``: a StopRun about half-way through MEASUREMENT. The statements a worker issued
  after the decision (while the Stop travelled) carry the MEASUREMENT tag but are
  recorded as PROCESSING (docs/phases.md): per worker, the run's MEASUREMENT plus
  PROCESSING is the server's MEASUREMENT exactly. How many the server logged after the
  decision instant is printed next to the run's PROCESSING count (the split is by
  clock: a statement issued just before the instant may be logged just after it).

Run it from the repository root (it uses the tests' helpers)::

    PYTHONPATH=. python bench/count_vs_server_log.py --runs 40 --hogs 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from controller import lifecycle as lc
from controller.server import Controller, ControllerSettings
from tests.cluster import WorkerProcs, attached, worker_env, workload
from tests.pg import PgCluster, init_cluster, parse_log, start_cluster, stop_cluster
from worker.tags import parse_compact

WORKLOAD = """
name = "count-{mode}"
[target]
driver = "postgres"
dsn = "{dsn}"
[setup]
sql = [
  "CREATE TABLE IF NOT EXISTS kv (k BIGINT PRIMARY KEY, v TEXT)",
  "INSERT INTO kv SELECT g, 'x' FROM generate_series(1, 100) g ON CONFLICT DO NOTHING",
]
[load]
workers = {workers}
connections = {connections}
warmup = "500ms"
duration = "{duration}"
think_time = "0s"
[[query]]
name = "get"
sql = "SELECT v FROM kv WHERE k = ?"
params = [{{ int = [1, 100] }}]
"""

Cells = Counter[tuple[int, int]]
"""Statements per (worker index, phase)."""


def logged(lines: list[str], run_id: str) -> tuple[Cells, list[tuple[float, int]]]:
    """The server's count per (worker, phase), and (log time, phase) of each statement."""
    counts: Cells = Counter()
    stamped = []
    for stmt in parse_log(lines):
        if not stmt.sql.startswith("/*sl/"):
            continue
        tag = parse_compact(stmt.sql.split("*/", 1)[0].removeprefix("/*"))
        if tag is not None and tag.run_short == run_id[:8]:
            counts[(tag.worker_index, tag.phase)] += 1
            stamped.append((stmt.time_s, tag.phase))
    return counts, stamped


async def one_run(
    ctl: Controller, text: str, mode: str, log_lines: Callable[[], list[str]]
) -> dict[str, object]:
    run = ctl.runs.start(workload(text))
    assert run.task is not None
    if mode == "stop":
        deadline = time.monotonic() + 30
        while lc.MEASUREMENT not in run.phase_ns and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        ctl.runs.stop(run.run_id)
    await asyncio.wait_for(asyncio.shield(run.task), 60)
    server, stamped = logged(log_lines(), run.run_id)
    own: Cells = Counter()  # what each worker counted itself (its Finished totals)
    for index, rec in enumerate(run.workers):
        fin = run.finished.get(rec.worker_id)
        for t in fin.totals if fin is not None else ():
            own[(index, int(t.phase))] += t.count + sum(e.count for e in t.errors)
    merged: Counter[int] = Counter()
    for (phase, _), cell in run.metrics.cells.items():
        merged[phase] += cell.count  # (errors included)
    out: dict[str, object] = {
        "run": run.run_id,
        "mode": mode,
        "state": lc.state_name(run.state),
        "server": dict(sorted(server.items())),
        "workers": dict(sorted(own.items())),
    }
    problems = []
    by_phase: Counter[int] = Counter()
    for (_, phase), n in own.items():
        by_phase[phase] += n
    if +by_phase != +merged:
        problems.append(f"merged {dict(merged)} != the workers' totals {dict(by_phase)}")
    if mode == "planned":
        if +server != +own:
            problems.append("per worker and phase, the server's count != the worker's")
    else:
        # per worker: the server's MEASUREMENT is the run's MEASUREMENT + PROCESSING
        for index in range(len(run.workers)):
            m, d = own[(index, lc.MEASUREMENT)], own[(index, lc.PROCESSING)]
            if server[(index, lc.MEASUREMENT)] != m + d:
                problems.append(f"w{index}: server M {server[(index, lc.MEASUREMENT)]} != {m}+{d}")
            if server[(index, lc.WARMUP)] != own[(index, lc.WARMUP)]:
                problems.append(f"w{index}: WARMUP differs")
        # and how the split compares with the server's clock (statements logged after
        # the decision; a statement issued before it may be logged a little after)
        end_s = run.measurement_end_ns / 1e9
        out["processing"] = by_phase[lc.PROCESSING]
        out["server_m_after_end"] = sum(
            1 for t, ph in stamped if ph == lc.MEASUREMENT and t >= end_s + 0.001
        )
    out["problems"] = problems
    return out


async def main_async(args: argparse.Namespace, cluster: PgCluster) -> int:
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await ctl.start()
    procs: list[WorkerProcs] = []
    bad = 0
    try:
        home = Path(tempfile.mkdtemp(prefix="snowload-count-"))
        for i in range(args.workers):
            env = worker_env(home)
            if i == args.workers - 1 and args.skew_ms:
                env["SNOWLOAD_TEST_CLOCK_SKEW_MS"] = str(args.skew_ms)
            p = WorkerProcs(ctl.address, env)
            p.spawn(f"w{i}")
            procs.append(p)
        await attached(ctl, args.workers, 60)
        modes = args.modes.split(",")
        for i in range(args.runs):
            mode = modes[i % len(modes)]
            text = WORKLOAD.format(
                mode=mode,
                dsn=cluster.dsn,
                workers=args.workers,
                connections=2 * args.workers,
                duration=args.duration,
            )
            start = len(cluster.log_lines())
            got = await one_run(ctl, text, mode, lambda s=start: cluster.log_lines()[s:])
            bad += bool(got["problems"])
            flag = "BAD" if got["problems"] else "ok "
            print(f"{flag} {i:3d} load {os.getloadavg()[0]:4.1f} {got}", flush=True)
        print(f"{bad} of {args.runs} runs disagreed with the server log", flush=True)
    finally:
        await ctl.stop()
        for p in procs:
            p.stop_all()
    return 1 if bad else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--hogs", type=int, default=2, help="busy-loop processes")
    p.add_argument("--duration", default="1s")
    p.add_argument("--skew-ms", type=float, default=250.0, help="the last worker's clock")
    p.add_argument("--modes", default="planned,stop")
    args = p.parse_args()
    cluster = init_cluster()
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        start_cluster(cluster)
        hogs = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)
        ]
        return asyncio.run(main_async(args, cluster))
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        stop_cluster(cluster)


if __name__ == "__main__":
    sys.exit(main())
