"""Start-up time: 100 connections when every connect takes ~1 s.

A throwaway PostgreSQL cluster (as in bench/pgbench_compare.py) sits behind the delaying
TCP proxy of tests/delay_proxy.py: every new connection waits ``--delay`` seconds (1 s)
before the proxy connects it to the server, the way a far-away or slow-to-authenticate
database would. One worker process, attached to an in-process controller, opens 100
connections through the proxy; the run is ``SELECT 1`` for 1 s with no warmup.

Measured, on the controller's clock: from the run entering PREPARING to the worker's
READY (``ActiveRun.phase_ns[PREPARING]`` -> ``max(ActiveRun.ready.values())``), for
``load.max_parallel_connects`` = 128 (the default), 32 and 8. The proxy also reports the
most connects it saw in flight at once, and when the first and last connection reached
the server, which splits the time into "before the first connect", "the connects" and
"after the last connect".

    python bench/startup.py              # 3 repetitions of each setting, ~1.5 min
    python bench/startup.py --quick      # 1 repetition of each
    python bench/startup.py --parallel 128 --reps 5 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchenv import package_version, print_header  # noqa: E402
from pgbench_compare import throwaway_cluster  # noqa: E402

from controller import lifecycle as lc  # noqa: E402
from controller.server import Controller, ControllerSettings  # noqa: E402
from snowload.workload import parse_toml  # noqa: E402
from tests.cluster import WorkerProcs, attached, worker_env  # noqa: E402
from tests.delay_proxy import DelayProxy  # noqa: E402

CONNECTIONS = 100
GOAL_DEFAULT_S = 1.5
WORKER_ID = "bench-startup"

WORKLOAD = """
name = "bench-startup"
[target]
driver = "postgres"
dsn = "host=127.0.0.1 port={port} dbname=postgres user=postgres"
[load]
workers = 1
connections = {connections}
warmup = "0s"
duration = "1s"
max_parallel_connects = {parallel}
[[query]]
name = "one"
sql = "SELECT 1"
"""


async def measure(
    controller: Controller, upstream_port: int, delay_s: float, parallel: int
) -> dict[str, Any]:
    with DelayProxy("127.0.0.1", upstream_port, delay_s) as proxy:
        text = WORKLOAD.format(port=proxy.port, connections=CONNECTIONS, parallel=parallel)
        run = controller.runs.start(parse_toml(text, source="bench-startup.toml"))
        assert run.task is not None
        await asyncio.wait_for(asyncio.shield(run.task), 120)
        if run.state != lc.COMPLETED:
            raise RuntimeError(f"run {lc.state_name(run.state)}: {run.reason} {run.message}")
        preparing = run.phase_ns[lc.PREPARING]
        ready = max(run.ready.values())
        load = [c for c in proxy.connections() if c.accepted_ns <= ready]
        if len(load) != CONNECTIONS:
            raise RuntimeError(f"{len(load)} connections before READY, not {CONNECTIONS}")
        first_accept = min(c.accepted_ns for c in load)
        last_connect = max(c.connected_ns for c in load)
        return {
            "parallel": parallel,
            "ready_s": (ready - preparing) / 1e9,
            "before_first_connect_s": (first_accept - preparing) / 1e9,
            "connects_s": (last_connect - first_accept) / 1e9,
            "after_last_connect_s": (ready - last_connect) / 1e9,
            "max_in_flight": proxy.max_in_flight,
        }


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    settings = [int(p) for p in args.parallel.split(",")]
    results: dict[int, list[dict[str, Any]]] = {p: [] for p in settings}
    with throwaway_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        print(f"psycopg:    {package_version('psycopg')}")
        print(f"postgresql: {cluster.version}")
        print(
            f"{CONNECTIONS} connections, 1 worker, {args.delay:g} s per connect (proxy), "
            f"{args.reps} repetition(s) per setting"
        )
        print(flush=True)
        controller = Controller(ControllerSettings(listen="127.0.0.1:0"))
        await controller.start()
        workers = WorkerProcs(controller.address, worker_env(Path(tmp) / "home"))
        try:
            workers.spawn(WORKER_ID)
            await attached(controller, 1, timeout_s=60)
            for rep in range(1, args.reps + 1):
                for parallel in settings:
                    out = await measure(controller, cluster.port, args.delay, parallel)
                    out["rep"] = rep
                    results[parallel].append(out)
                    print(
                        f"  rep {rep} max_parallel_connects {parallel:>4}: PREPARING -> READY "
                        f"{out['ready_s']:6.2f} s  (max {out['max_in_flight']} connects in "
                        "flight)",
                        flush=True,
                    )
                    # the worker must be idle again before the next run starts
                    await attached(controller, 1, timeout_s=60)
        finally:
            workers.stop_all()
            await controller.stop()

    print()
    header = (
        f"{'max_parallel_connects':<24} {'PREPARING->READY (median)':>26} {'min - max':>15} "
        f"{'max in flight':>14} {'before 1st':>11} {'connects':>9} {'after last':>11} "
        f"{'ideal':>6}"
    )
    print(header)
    print("-" * len(header))
    summary: dict[str, Any] = {}
    for parallel, rs in results.items():
        if not rs:
            continue
        ready = [r["ready_s"] for r in rs]
        waves = -(-CONNECTIONS // min(parallel, CONNECTIONS))
        label = f"{parallel}" + (" (default)" if parallel == 128 else "")
        med = statistics.median(ready)
        print(
            f"{label:<24} {med:>24.2f} s {f'{min(ready):.2f} - {max(ready):.2f}':>15} "
            f"{max(r['max_in_flight'] for r in rs):>14} "
            f"{statistics.median(r['before_first_connect_s'] for r in rs):>10.2f}s "
            f"{statistics.median(r['connects_s'] for r in rs):>8.2f}s "
            f"{statistics.median(r['after_last_connect_s'] for r in rs):>10.2f}s "
            f"{waves * args.delay:>5.0f}s"
        )
        summary[str(parallel)] = {"median_ready_s": med, "runs": rs}
    print()
    print("before 1st: PREPARING until the proxy accepted the first connection; connects:")
    print("until the last connection reached the server; after last: until the controller")
    print("had READY. ideal: ceil(100 / max_parallel_connects) x the connect delay.")
    if "128" in summary:
        med = summary["128"]["median_ready_s"]
        ok = "MET" if med <= GOAL_DEFAULT_S else "NOT MET"
        print(f"goal: default PREPARING -> READY {med:.2f} s (<= {GOAL_DEFAULT_S} s): {ok}")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=1.0, help="seconds per connect")
    parser.add_argument("--parallel", default="128,32,8", help="max_parallel_connects values")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 repetition of each setting")
    parser.add_argument("--json", metavar="FILE", help="also write every number to FILE")
    args = parser.parse_args()
    if args.quick:
        args.reps = 1
    env = print_header("start-up: 100 connections, ~1 s per connect")
    t0 = time.monotonic()
    summary = asyncio.run(amain(args))
    print(f"(took {time.monotonic() - t0:.0f} s)")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"environment": env, "args": vars(args), "results": summary}, indent=2),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
