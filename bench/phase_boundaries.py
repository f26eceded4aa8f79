"""Phase boundaries: how closely N workers keep a planned instant, and how fast an
unplanned command reaches them all, against a gRPC-only floor.

An in-process controller (127.0.0.1, free port) and N local worker processes
(controller.local_workers.LocalWorkers). Each run: SQLite ``:memory:``, ``SELECT 1``,
2 connections per worker, think_time 200ms (so 2 cores are not saturated by the load
itself), no warmup (the load start is the MEASUREMENT start). Every SQLite connection
traces each statement it executes with ``time.time_ns()`` (SNOWLOAD_SQLITE_TRACE_DIR),
tagged with its worker and phase.

Planned boundary. The run's plan fixes the MEASUREMENT start as an instant on the
controller's clock; every worker maps it onto its own monotonic clock and its connections
wait for it. For each worker, ``first_M_w`` is the time of its first MEASUREMENT
statement (from the trace: what it really issued; same host, so the trace's clock is the
controller's). Per run, the **spread** is ``max_w first_M_w - min_w first_M_w``; the
script also reports each worker's error ``first_M_w - planned`` (how late after the
planned instant the first statement ran: clock mapping + wake-up + CPU queueing).

Unplanned commands. About a second into MEASUREMENT the script decides a SetLoad (2 -> 1
connection per worker, through the run's LoadDriver, as a find_max step would) and a
second later a StopRun (``controller.runs.stop``, as the API does). For each command and
worker, ``lag_w = applied_w - decided`` (the worker's Ack applied_time, same host);
"time to last worker" is the largest lag_w of one command. The **floor** is the same
fan-out with nothing but gRPC (bench/phase_fanout.py's baseline: a bare grpc.aio server
holding one Attach stream per process, N client processes that only Ack), measured right
after the runs of the same size. Goal: unplanned p99 <= 1.5 x the floor's p99.

Memory. After the N workers attached: the sum of their RSS and USS (psutil), and the
controller's RSS.

Wake floor (bench/wake_floor.py), right after each run: as many idle processes as the
workers, a thread per connection, waking at one shared instant; the spread of their first
wakes is what the planned spread cannot beat on this host at that moment.

Above 64 workers the workers run as agents, 8 to a process (bench/agents.py), with
think_time 1s: 256 worker processes cost ~11 GB and starve 2 cores.

    python bench/phase_boundaries.py                         # N = 16, 64, 256 (32 x 8); 10 runs
    python bench/phase_boundaries.py --quick                 # N = 4, 16; 2 runs
    python bench/phase_boundaries.py --sizes 256 --runs 20 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from agents import AgentProcesses
from benchenv import CpuWatch, LiveCpuWatch, print_header, wait_for_quiet
from phase_fanout import measure_baseline, percentile
from wake_floor import WakeFloor

from controller import lifecycle as lc
from controller import plan
from controller.load_driver import LoadDriver
from controller.local_workers import LocalWorkers
from controller.runs import ActiveRun
from controller.server import Controller, ControllerSettings
from snowload.v1 import control_pb2
from snowload.workload import parse_toml
from worker.drivers.sqlite import TRACE_ENV
from worker.tags import parse_compact

WORKLOAD_TOML = """
name = "bench-phase-boundaries"
[target]
driver = "sqlite"
database = ":memory:"
[load]
mode = "closed"
workers = {n}
connections = {connections}
think_time = "{think}"
warmup = "0s"
duration = "60s"
ready_timeout = "120s"
[[query]]
name = "select1"
sql = "SELECT 1"
"""
AGENTS_ABOVE = 64
"""Above this many workers, by default 8 agents to a process and think_time 1s: 256
worker processes need ~11 GB and starve 2 cores (docs/benchmarks.md)."""
GOAL_SPREAD_P99_MS = 5.0
GOAL_FLOOR_FACTOR = 1.5


@dataclass
class SizeResult:
    n: int
    attach_s: float = 0.0
    runs_ok: int = 0
    runs_failed: list[str] = field(default_factory=list)
    spread_ms: list[float] = field(default_factory=list)
    """Per run: max - min over workers of the first MEASUREMENT statement."""
    error_ms: list[float] = field(default_factory=list)
    """Per worker and run: first MEASUREMENT statement - planned instant."""
    early: int = 0
    """MEASUREMENT statements before the planned instant (must stay 0)."""
    missing_first: int = 0
    set_load_last_ms: list[float] = field(default_factory=list)
    stop_last_ms: list[float] = field(default_factory=list)
    unplanned_per_worker_ms: list[float] = field(default_factory=list)
    set_load_queued_ms: list[float] = field(default_factory=list)
    stop_queued_ms: list[float] = field(default_factory=list)
    """Per command: decision to the last worker's command queued (the controller's part)."""
    floor_last_ms: list[float] = field(default_factory=list)
    floor_per_process_ms: list[float] = field(default_factory=list)
    wake_floor_ms: list[float] = field(default_factory=list)
    """Per run: spread of idle processes laid out as the workers (as many processes, a
    thread per connection) waking at one instant, right after the run."""
    wake_floor_1_ms: list[float] = field(default_factory=list)
    """The same with 1 thread per worker (when the workers have more connections)."""
    lead_ms: list[float] = field(default_factory=list)
    """Per run: the plan's lead (load start - decision)."""
    late_starts: int = 0
    """Starts that reached their worker after the load start (Ack lateness)."""
    start_lateness_ms: list[float] = field(default_factory=list)
    load_per_run: list[float] = field(default_factory=list)
    run_other: list[float] = field(default_factory=list)
    workers_rss_mib: float = 0.0
    workers_uss_mib: float = 0.0
    controller_rss_mib: float = 0.0
    own_cores: float = 0.0
    other_cores: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def unplanned_last_ms(self) -> list[float]:
        return self.set_load_last_ms + self.stop_last_ms


class AckLog:
    """When each command was queued for each worker, and when the worker applied it."""

    def __init__(self, controller: Controller) -> None:
        self.kind: dict[tuple[str, int], str] = {}
        self.queued: dict[tuple[str, int], int] = {}
        self.applied: dict[tuple[str, int], int] = {}
        registry = controller.registry
        send, acked = registry.send, registry.acked

        def timed_send(rec: Any, command: control_pb2.AttachResponse) -> int:
            seq = send(rec, command)
            self.kind[(rec.worker_id, seq)] = command.WhichOneof("command") or ""
            self.queued[(rec.worker_id, seq)] = time.time_ns()
            return seq

        def timed_acked(rec: Any, ack: control_pb2.Ack) -> str:
            self.applied[(rec.worker_id, ack.seq)] = ack.applied_time.ToNanoseconds()
            return acked(rec, ack)

        registry.send = timed_send  # type: ignore[method-assign]
        registry.acked = timed_acked  # type: ignore[method-assign]

    def queued_last(self, run: ActiveRun, kind: str, decided_ns: int) -> float:
        """When the last worker's command of ``kind`` was queued, after the decision (ms)."""
        ids = {rec.worker_id for rec in run.workers}
        times = [t for key, t in self.queued.items() if key[0] in ids and self.kind[key] == kind]
        return (max(times) - decided_ns) / 1e6 if times else float("nan")

    def lags(self, run: ActiveRun, kind: str, decided_ns: int) -> list[float]:
        ids = {rec.worker_id for rec in run.workers}
        return [
            (self.applied[key] - decided_ns) / 1e6
            for key, k in self.kind.items()
            if k == kind and key[0] in ids and key in self.applied and self.applied[key] > 0
        ]


async def wait_attached(controller: Controller, n: int, timeout_s: float) -> float:
    t0 = time.monotonic()
    while len(controller.registry.idle()) < n:
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"only {len(controller.registry.idle())} of {n} attached")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


def measurement_start_ns(run: ActiveRun) -> int:
    plan = getattr(run, "plan", None)
    if plan is not None and plan.HasField("measurement_start_time"):
        return int(plan.measurement_start_time.ToNanoseconds())
    return run.phase_ns.get(lc.MEASUREMENT, 0)  # before planned boundaries existed


def first_measurement(trace_dir: Path, run_id: str) -> tuple[dict[int, int], list[int]]:
    """Per worker index, its first MEASUREMENT statement (ns); and every MEASUREMENT
    statement's time (for the early check)."""
    short = run_id.replace("-", "")[:8]
    first: dict[int, int] = {}
    times: list[int] = []
    for path in trace_dir.glob("trace-*.log"):
        with open(path, encoding="utf-8") as f:
            for line in f:
                ts, _, stmt = line.partition(" ")
                if not stmt.startswith("/*sl/"):
                    continue
                tag = parse_compact(stmt[2 : stmt.index("*/")])
                if tag is None or tag.run_short != short or tag.phase != lc.MEASUREMENT:
                    continue
                t = int(ts)
                times.append(t)
                if t < first.get(tag.worker_index, 1 << 62):
                    first[tag.worker_index] = t
    return first, times


def memory(local: LocalWorkers | AgentProcesses) -> tuple[float, float, float]:
    rss = uss = 0
    for p in local.procs:
        try:
            info = psutil.Process(p.pid).memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        uss += info.uss
    own = psutil.Process().memory_info().rss
    return rss / 2**20, uss / 2**20, own / 2**20


async def measure_size(n: int, args: argparse.Namespace) -> SizeResult:
    result = SizeResult(n, load_before=os.getloadavg())
    trace_root = Path(tempfile.mkdtemp(prefix=f"snowload-bench-bounds-{n}-"))
    os.environ[TRACE_ENV] = str(trace_root)
    workload = parse_toml(
        WORKLOAD_TOML.format(
            n=n,
            connections=args.connections_per_worker * n,
            think=args.think_time or ("200ms" if n <= AGENTS_ABOVE else "1s"),
        ),
        source="phase_boundaries",
    )
    watch = CpuWatch()
    controller = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await controller.start()
    acks = AckLog(controller)
    per = args.agents_per_process or (1 if n <= AGENTS_ABOVE else 8)
    local: LocalWorkers | AgentProcesses = (
        LocalWorkers(controller.address, n)
        if per <= 1
        else AgentProcesses(controller.address, n, per)
    )
    local.start()
    try:
        result.attach_s = await wait_attached(controller, n, args.attach_timeout)
        await asyncio.sleep(min(10.0, 1.0 + n / 32))  # a few clock-sync rounds
        result.workers_rss_mib, result.workers_uss_mib, result.controller_rss_mib = memory(local)
        print(
            f"  N={n}: attached in {result.attach_s:.1f}s; workers RSS "
            f"{result.workers_rss_mib:.0f} MiB (USS {result.workers_uss_mib:.0f} MiB), "
            f"controller RSS {result.controller_rss_mib:.0f} MiB",
            flush=True,
        )
        pids = [p.pid for p in local.procs]
        # the wake floor: as many idle processes (a thread per connection, as the workers;
        # and a thread per worker) waking at one instant, right after each run
        c = args.connections_per_worker
        procs = len(local.procs)
        floors = (
            [
                await asyncio.to_thread(WakeFloor, procs, t * per, per)
                for t in ((c, 1) if c != 1 else (1,))
            ]
            if args.wake_floor
            else []
        )
        try:
            for i in range(args.runs):
                await run_once(controller, acks, workload, trace_root, result, pids, i, args)
                await wait_attached(controller, n, args.attach_timeout)
                spreads = (result.wake_floor_ms, result.wake_floor_1_ms)
                for floor, into in zip(floors, spreads, strict=False):
                    into.append((await asyncio.to_thread(floor.round))[0])
                if floors and args.verbose:
                    print(
                        f"    wake floor: {result.wake_floor_ms[-1]:.1f} ms (as laid out), "
                        f"{result.wake_floor_1_ms[-1] if result.wake_floor_1_ms else 0:.1f} ms"
                        " (1 thread per worker); "
                        f"load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
        finally:
            for floor in floors:
                floor.close()
    finally:
        await local.stop()
        await controller.stop()
        os.environ.pop(TRACE_ENV, None)
        shutil.rmtree(trace_root, ignore_errors=True)
    if not args.no_baseline:
        b = await measure_baseline(n, 2 * args.runs, 0.5, args.attach_timeout, per)
        result.floor_last_ms = b.to_last_ms
        result.floor_per_process_ms = b.per_worker_ms
    use = watch.stop()
    result.own_cores, result.other_cores = use.own_cores, use.other_cores
    return result


async def run_once(
    controller: Controller,
    acks: AckLog,
    workload: Any,
    trace_dir: Path,
    result: SizeResult,
    pids: list[int],
    i: int,
    args: argparse.Namespace,
) -> None:
    run_watch = LiveCpuWatch(pids)
    acks.kind.clear()
    acks.queued.clear()
    acks.applied.clear()
    run = controller.runs.start(workload)
    assert run.task is not None
    deadline = time.monotonic() + 180
    while run.state != lc.MEASUREMENT or not measurement_start_ns(run):
        if run.task.done() or time.monotonic() > deadline:
            result.runs_failed.append(f"run {i + 1}: {lc.state_name(run.state)} {run.message}")
            return
        await asyncio.sleep(0.02)
    planned = measurement_start_ns(run)
    if run.plan is not None:
        result.lead_ms.append(
            (run.plan.load_start_time.ToNanoseconds() - run.plan.decide_time.ToNanoseconds()) / 1e6
        )
    result.load_per_run.append(os.getloadavg()[0])
    await asyncio.sleep(max(0.0, (planned - time.time_ns()) / 1e9) + 1.2)

    decided = time.time_ns()
    LoadDriver(run, controller.registry, _no_sleep).apply(float(len(run.workers)))
    set_load_decided = decided
    await asyncio.sleep(1.0)
    stop_decided = time.time_ns()
    controller.runs.stop(run.run_id)
    await run.task
    result.run_other.append(run_watch.stop().other_cores)
    if run.state not in lc.TERMINAL:
        result.runs_failed.append(f"run {i + 1}: {lc.state_name(run.state)}")
        return
    result.runs_ok += 1
    late = [ns for ns, count in run.lateness.values() if count]
    result.late_starts += len(late)
    result.start_lateness_ms.extend(ns / 1e6 for ns in late)

    await asyncio.sleep(0.2)  # the trace files are closed with the connections
    first, times = first_measurement(trace_dir, run.run_id)
    result.missing_first += len(run.workers) - len(first)
    result.early += sum(1 for t in times if t < planned)
    if first:
        result.spread_ms.append((max(first.values()) - min(first.values())) / 1e6)
        result.error_ms.extend((t - planned) / 1e6 for t in first.values())
    set_load = acks.lags(run, "set_load", set_load_decided)
    stop = acks.lags(run, "stop", stop_decided)
    if len(set_load) == len(run.workers):
        result.set_load_last_ms.append(max(set_load))
    if len(stop) == len(run.workers):
        result.stop_last_ms.append(max(stop))
    result.unplanned_per_worker_ms.extend(set_load + stop)
    result.set_load_queued_ms.append(acks.queued_last(run, "set_load", set_load_decided))
    result.stop_queued_ms.append(acks.queued_last(run, "stop", stop_decided))
    if args.verbose:
        print(
            f"    run {i + 1:>2}: spread {result.spread_ms[-1] if first else float('nan'):6.1f} ms;"
            f" SetLoad to last {max(set_load, default=float('nan')):6.1f} ms;"
            f" Stop to last {max(stop, default=float('nan')):6.1f} ms"
            f" (queued {result.stop_queued_ms[-1]:.1f});"
            f" other {result.run_other[-1]:.2f} cores; lead {result.lead_ms[-1]:.0f} ms;"
            f" late Starts {len(late)}; load {result.load_per_run[-1]:.1f}",
            flush=True,
        )


async def _no_sleep(_run: ActiveRun, _s: float) -> None:
    return None


def row(name: str, values: list[float]) -> str:
    if not values:
        return f"  {name:<38} (no samples)"
    return (
        f"  {name:<38} {len(values):>6} {percentile(values, 50):>8.1f} "
        f"{percentile(values, 99):>8.1f} {max(values):>8.1f}"
    )


def report(results: list[SizeResult]) -> None:
    for r in results:
        print()
        print(
            f"N = {r.n}: {r.runs_ok} runs, {len(r.runs_failed)} failed; attach {r.attach_s:.1f}s;"
            f" load average before {r.load_before[0]:.2f}; own {r.own_cores:.2f} cores, other "
            f"{r.other_cores:.2f} (per run median {percentile(r.run_other, 50):.2f})"
        )
        print(
            f"  memory: workers RSS {r.workers_rss_mib:.0f} MiB "
            f"({r.workers_rss_mib / r.n:.1f} per worker), USS {r.workers_uss_mib:.0f} MiB "
            f"({r.workers_uss_mib / r.n:.1f} per worker); controller RSS "
            f"{r.controller_rss_mib:.0f} MiB"
        )
        print(f"  {'(ms)':<38} {'n':>6} {'p50':>8} {'p99':>8} {'max':>8}")
        print(row("planned: spread of first M (per run)", r.spread_ms))
        print(row("planned: first M - planned (per worker)", r.error_ms))
        print(row("unplanned: SetLoad, time to last", r.set_load_last_ms))
        print(row("unplanned: Stop, time to last", r.stop_last_ms))
        print(row("unplanned: both, time to last", r.unplanned_last_ms))
        print(row("  SetLoad: decided to last queued", r.set_load_queued_ms))
        print(row("  Stop: decided to last queued", r.stop_queued_ms))
        print(row("unplanned: per worker", r.unplanned_per_worker_ms))
        print(row("floor (gRPC only): time to last", r.floor_last_ms))
        print(row("floor: per process", r.floor_per_process_ms))
        print(row("wake floor: spread, as laid out", r.wake_floor_ms))
        print(row("wake floor: spread, 1 thread/worker", r.wake_floor_1_ms))
        print(row("plan lead (per run)", r.lead_ms))
        print(
            f"  late Starts: {r.late_starts} (lateness max "
            f"{max(r.start_lateness_ms, default=0.0):.1f} ms); load average per run "
            f"{min(r.load_per_run, default=0):.1f}-{max(r.load_per_run, default=0):.1f}"
        )
        if r.early or r.missing_first:
            print(
                f"  MEASUREMENT statements before the plan: {r.early}; workers without "
                f"one: {r.missing_first}"
            )
        for why in r.runs_failed:
            print(f"  failed: {why}")
    print()
    print("Goals")
    for r in results:
        spread = percentile(r.spread_ms, 99)
        ok = "MET" if spread <= GOAL_SPREAD_P99_MS else "NOT MET"
        line = f"  N={r.n}: planned spread p99 {spread:.1f} ms (<= 5): {ok}"
        if r.wake_floor_ms:
            wf = percentile(r.wake_floor_ms, 99)
            line += f" (wake floor p99 {wf:.1f} ms, {spread / wf:.2f} x)"
        if r.floor_last_ms:
            un, fl = percentile(r.unplanned_last_ms, 99), percentile(r.floor_last_ms, 99)
            ok2 = "MET" if un <= GOAL_FLOOR_FACTOR * fl else "NOT MET"
            line += f"; unplanned p99 {un:.1f} ms vs floor p99 {fl:.1f} ms ({un / fl:.2f} x): {ok2}"
        print(line)


async def amain(args: argparse.Namespace) -> list[SizeResult]:
    results = []
    for n in args.sizes:
        if args.quiet_wait > 0:
            await asyncio.to_thread(wait_for_quiet, args.quiet_wait)
        results.append(await measure_size(n, args))
        report(results[-1:])  # each size as soon as it is measured (a later one may fail)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="16,64,256", help="worker counts, comma-separated")
    parser.add_argument("--runs", type=int, default=10, help="runs per size")
    parser.add_argument(
        "--think-time", default=None, help=f"default 200ms (1s above {AGENTS_ABOVE} workers)"
    )
    parser.add_argument("--attach-timeout", type=float, default=600.0, help="seconds")
    parser.add_argument("--quick", action="store_true", help="N = 4, 16; 2 runs")
    parser.add_argument("--verbose", action="store_true", help="one line per run")
    parser.add_argument("--no-baseline", action="store_true", help="skip the gRPC-only floor")
    parser.add_argument("--connections-per-worker", type=int, default=2)
    parser.add_argument(
        "--agents-per-process",
        type=int,
        default=0,
        help="run the workers as agents, this many to a process (bench/agents.py); 1: one "
        f"worker process each (LocalWorkers); default: 1 up to {AGENTS_ABOVE} workers, 8 above",
    )
    parser.add_argument(
        "--no-wake-floor",
        dest="wake_floor",
        action="store_false",
        help="skip the wake floor (N idle processes waking at one instant)",
    )
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="seconds (0: don't)")
    parser.add_argument("--json", metavar="FILE", help="also write every number to FILE")
    parser.add_argument(
        "--lead-per-worker-ms",
        type=float,
        default=None,
        help="experiment: the plan's lead allows this much per worker for sending Start "
        "when no fan-out was measured (controller.plan.FANOUT_PER_WORKER_NS)",
    )
    args = parser.parse_args()
    if args.lead_per_worker_ms is not None:
        plan.FANOUT_PER_WORKER_NS = round(args.lead_per_worker_ms * 1e6)
    print(
        f"plan lead: {plan.FANOUT_MARGIN:g} x the measured Assign fan-out "
        f"(unmeasured: {plan.FANOUT_PER_WORKER_NS / 1e6:g} ms per worker)",
        flush=True,
    )
    if args.quick:
        args.sizes, args.runs, args.quiet_wait = "4,16", 2, 0.0
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    env = print_header("phase boundaries: planned spread and unplanned fan-out")
    think = args.think_time or f"200ms (1s above {AGENTS_ABOVE} workers)"
    print(f"sizes {args.sizes}, {args.runs} runs each, think_time {think}", flush=True)
    results = asyncio.run(amain(args))
    print("\nAll sizes:")
    report(results)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"environment": env, "args": vars(args), "results": [r.__dict__ for r in results]},
                indent=2,
                default=str,
            ),
            encoding="utf-8",
        )
    return 0 if all(r.spread_ms for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
