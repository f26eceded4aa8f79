"""Phase fan-out: from the controller's phase change to the last worker applying it.

An in-process controller (controller.server.Controller on 127.0.0.1, a free port) and N
local worker processes (controller.local_workers.LocalWorkers), for N = 16 and N = 64.
Once all N are attached, the script starts runs one after another through the
controller's RunManager with a tiny workload: SQLite ``:memory:``, ``SELECT 1``, one
connection per worker, think_time 50ms (so the load does not starve the 2 cores),
warmup 1s, duration 1s. Each run changes phase twice (WARMUP, then MEASUREMENT).

For each phase change and each worker w:

    lag_w = phase_applied_ns[w][phase] - phase_ns[phase]

``phase_ns`` is the controller's clock when the state began; ``phase_applied_ns`` is the
worker's wall clock when it applied the SetPhase (the applied_time of its Ack). Both are
``time.time_ns()`` on the same host, so they are directly comparable. "Time to last
worker" is the largest lag_w of one phase change. The script also records when the
controller had queued the SetPhase for the last worker ("queued", by wrapping
WorkerRegistry.send), which splits the lag into controller-side and
transport-plus-worker-side parts.

For comparison the script also measures a floor ("baseline"): the same fan-out with
nothing but gRPC. A bare grpc.aio server holds one Attach stream (snowload's own
protos) per process; N minimal client processes do nothing but answer each SetPhase with
an Ack stamped on receipt. No run, no load, no heartbeats, no metrics: what 2 cores, N
Python processes and grpc.aio cost by themselves. Skip it with --no-baseline.

Percentiles are linearly interpolated (numpy's default). With 50 phase changes a p99 of
"time to last worker" lies between the two largest values, so read it with the max.

    python bench/phase_fanout.py                     # N = 16 and 64, 25 runs each, ~4 min
    python bench/phase_fanout.py --quick             # N = 4 and 16, 2 runs each, smoke test
    python bench/phase_fanout.py --sizes 64 --runs 50 --ready-timeout 120s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from benchenv import CpuWatch, LiveCpuWatch, print_header, wait_for_quiet

from controller import lifecycle as lc
from controller.local_workers import LocalWorkers
from controller.runs import ActiveRun
from controller.server import Controller, ControllerSettings
from snowload.durations import format_duration, parse_duration
from snowload.v1 import control_pb2, control_pb2_grpc
from snowload.workload import parse_toml

SCRIPT = str(Path(__file__).resolve())
GOAL_P99_MS = 25.0
GOAL_WORKERS = 64
PHASES = (lc.WARMUP, lc.MEASUREMENT)

WORKLOAD_TOML = """
name = "bench-phase-fanout"
[target]
driver = "sqlite"
database = ":memory:"
[load]
mode = "closed"
workers = {n}
connections = {n}
think_time = "{think}"
warmup = "{warmup}"
duration = "{duration}"
ready_timeout = "{ready_timeout}"
[[query]]
name = "select1"
sql = "SELECT 1"
"""


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * p / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class SizeResult:
    n: int
    attach_s: float = 0.0
    runs_ok: int = 0
    runs_failed: list[str] = field(default_factory=list)
    to_last_ms: list[float] = field(default_factory=list)
    to_last_by_phase: dict[int, list[float]] = field(default_factory=dict)
    quiet_to_last_ms: list[float] = field(default_factory=list)
    """Time to last worker, only runs during which other processes used <= --max-other."""
    run_other: list[float] = field(default_factory=list)
    per_worker_ms: list[float] = field(default_factory=list)
    enqueued_ms: list[float] = field(default_factory=list)
    ready_s: list[float] = field(default_factory=list)
    missing_acks: int = 0
    own_cores: float = 0.0
    other_cores: float = 0.0
    wall_s: float = 0.0


async def wait_attached(controller: Controller, n: int, timeout_s: float) -> float:
    t0 = time.monotonic()
    while True:
        idle = controller.registry.idle()
        if len(idle) >= n:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"only {len(idle)} of {n} workers attached within {timeout_s:g}s")
        await asyncio.sleep(0.05)


def lags_of(run: ActiveRun, phase: int) -> tuple[list[float], int]:
    """Per-worker lag in ms for one phase change, and how many workers never acked it."""
    began = run.phase_ns[phase]
    lags: list[float] = []
    missing = 0
    for rec in run.workers:
        applied = run.phase_applied_ns.get(rec.worker_id, {}).get(phase)
        if applied is None:
            missing += 1
        else:
            lags.append((applied - began) / 1e6)
    return lags, missing


async def measure_size(n: int, args: argparse.Namespace) -> SizeResult:
    result = SizeResult(n)
    workload = parse_toml(
        WORKLOAD_TOML.format(
            n=n,
            think=args.think_time,
            warmup=format_duration(args.warmup),
            duration=format_duration(args.duration),
            ready_timeout=format_duration(args.ready_timeout),
        ),
        source="phase_fanout",
    )
    watch = CpuWatch()
    controller = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await controller.start()
    manager = controller.runs
    # when the controller had queued the SetPhase for the last worker of each change
    enqueued: dict[tuple[str, int], int] = {}
    send = controller.registry.send

    def timed_send(rec: Any, command: control_pb2.AttachResponse) -> int:
        seq = send(rec, command)
        if command.WhichOneof("command") == "set_phase":
            enqueued[(command.set_phase.run_id, command.set_phase.phase)] = time.time_ns()
        return seq

    controller.registry.send = timed_send  # type: ignore[method-assign]

    local = LocalWorkers(controller.address, n)
    local.start()
    try:
        result.attach_s = await wait_attached(controller, n, args.attach_timeout)
        print(f"  N={n}: {n} workers attached in {result.attach_s:.1f}s", flush=True)
        pids = [p.pid for p in local.procs]
        for i in range(args.runs):
            run_watch = LiveCpuWatch(pids)
            run = manager.start(workload)
            assert run.task is not None
            await run.task
            run_other = run_watch.stop().other_cores
            result.run_other.append(run_other)
            if run.state != lc.COMPLETED:
                why = f"run {i + 1}: {lc.state_name(run.state)} {run.reason}: {run.message}"
                result.runs_failed.append(why)
                print(f"    {why}", flush=True)
                await wait_attached(controller, n, args.attach_timeout)
                continue
            result.runs_ok += 1
            if lc.PREPARING in run.phase_ns and lc.WARMUP in run.phase_ns:
                result.ready_s.append((run.phase_ns[lc.WARMUP] - run.phase_ns[lc.PREPARING]) / 1e9)
            line = []
            for phase in PHASES:
                if phase not in run.phase_ns:
                    continue
                lags, missing = lags_of(run, phase)
                result.missing_acks += missing
                result.per_worker_ms.extend(lags)
                if lags and not missing:
                    result.to_last_ms.append(max(lags))
                    result.to_last_by_phase.setdefault(phase, []).append(max(lags))
                    if run_other <= args.max_other:
                        result.quiet_to_last_ms.append(max(lags))
                    line.append(f"{lc.state_name(phase)} {max(lags):6.1f} ms")
                q = enqueued.get((run.run_id, phase))
                if q is not None:
                    result.enqueued_ms.append((q - run.phase_ns[phase]) / 1e6)
            if args.verbose:
                print(
                    f"    run {i + 1:>2}: to last worker: {', '.join(line)}; "
                    f"other processes {run_other:.2f} cores",
                    flush=True,
                )
    finally:
        await local.stop()
        await controller.stop()
    use = watch.stop()
    result.own_cores, result.other_cores, result.wall_s = use.own_cores, use.other_cores, use.wall_s
    return result


# ------------------------------------------------------------------ baseline (floor)


async def baseline_worker(address: str) -> None:
    """A minimal client: attach, and Ack every SetPhase with the time it arrived."""
    outbox: asyncio.Queue[control_pb2.AttachRequest] = asyncio.Queue()

    async def outgoing() -> Any:
        hello = control_pb2.Hello(worker_id=f"baseline-{os.getpid()}", pid=os.getpid())
        yield control_pb2.AttachRequest(hello=hello)
        while True:
            yield await outbox.get()

    # its own TCP connection even when several share a process (bench/agents.py's layout)
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        async for msg in stub.Attach(outgoing()):
            if msg.WhichOneof("command") == "set_phase":
                ack = control_pb2.Ack(seq=msg.seq)
                ack.applied_time.FromNanoseconds(time.time_ns())
                outbox.put_nowait(control_pb2.AttachRequest(ack=ack))


class BaselineServicer(control_pb2_grpc.ControlServiceServicer):
    def __init__(self) -> None:
        self.outboxes: list[asyncio.Queue[control_pb2.AttachResponse]] = []
        self.acks: dict[int, list[int]] = {}
        self.changed = asyncio.Event()

    async def Attach(self, request_iterator: Any, context: Any) -> Any:
        await anext(aiter(request_iterator))  # the Hello
        outbox: asyncio.Queue[control_pb2.AttachResponse] = asyncio.Queue()
        self.outboxes.append(outbox)

        async def read() -> None:
            async for msg in request_iterator:
                if msg.WhichOneof("message") == "ack":
                    self.acks.setdefault(msg.ack.seq, []).append(
                        msg.ack.applied_time.ToNanoseconds()
                    )
                    self.changed.set()

        reader = asyncio.get_running_loop().create_task(read())
        try:
            while True:
                yield await outbox.get()
        finally:
            reader.cancel()


def spawn_baseline_workers(
    address: str, n: int, per_process: int = 1
) -> list[subprocess.Popen[bytes]]:
    """``n`` clients, ``per_process`` to a process."""
    return [
        subprocess.Popen(
            [
                *(sys.executable, SCRIPT, "--baseline-worker", address),
                *("--baseline-count", str(min(per_process, n - first))),
            ],
            stdin=subprocess.DEVNULL,
        )
        for first in range(0, n, max(1, per_process))
    ]


async def baseline_workers(address: str, count: int) -> None:
    await asyncio.gather(*(baseline_worker(address) for _ in range(count)))


def kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


async def measure_baseline(
    n: int, changes: int, gap_s: float, timeout_s: float, per_process: int = 1
) -> SizeResult:
    result = SizeResult(n)
    watch = CpuWatch()
    server = grpc.aio.server()
    servicer = BaselineServicer()
    control_pb2_grpc.add_ControlServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    procs = spawn_baseline_workers(f"127.0.0.1:{port}", n, per_process)
    try:
        t0 = time.monotonic()
        while len(servicer.outboxes) < n:
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"baseline: {len(servicer.outboxes)} of {n} attached")
            await asyncio.sleep(0.05)
        result.attach_s = time.monotonic() - t0
        await asyncio.sleep(1.0)
        for seq in range(1, changes + 1):
            began = time.time_ns()
            stamp = control_pb2.SetPhase(run_id="baseline", phase=lc.MEASUREMENT)
            stamp.phase_start_time.FromNanoseconds(began)
            for outbox in servicer.outboxes:
                outbox.put_nowait(control_pb2.AttachResponse(seq=seq, set_phase=stamp))
            result.enqueued_ms.append((time.time_ns() - began) / 1e6)
            deadline = time.monotonic() + 10.0
            while len(servicer.acks.get(seq, ())) < n and time.monotonic() < deadline:
                servicer.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(servicer.changed.wait(), 1.0)
            lags = [(t - began) / 1e6 for t in servicer.acks.get(seq, ())]
            result.missing_acks += n - len(lags)
            result.per_worker_ms.extend(lags)
            if len(lags) == n:
                result.to_last_ms.append(max(lags))
            result.runs_ok += 1
            await asyncio.sleep(gap_s)
    finally:
        kill_all(procs)
        await server.stop(0)
    use = watch.stop()
    result.own_cores, result.other_cores, result.wall_s = use.own_cores, use.other_cores, use.wall_s
    return result


# ------------------------------------------------------------------------- report


def stats_row(name: str, values: list[float]) -> str:
    if not values:
        return f"  {name:<34} (no samples)"
    return (
        f"  {name:<34} {len(values):>6} {percentile(values, 50):>8.1f} "
        f"{percentile(values, 99):>8.1f} {max(values):>8.1f}"
    )


def report(results: list[SizeResult], baselines: list[SizeResult], max_other: float) -> None:
    print()
    base_of = {b.n: b for b in baselines}
    for r in results:
        changes = len(r.to_last_ms)
        print(
            f"N = {r.n} workers: {r.runs_ok} runs completed, {len(r.runs_failed)} failed, "
            f"{changes} phase changes measured; attach {r.attach_s:.1f}s; "
            f"READY in {percentile(r.ready_s, 50):.2f}s (median); "
            f"own {r.own_cores:.2f} cores, other {r.other_cores:.2f} cores "
            f"(per run: median {percentile(r.run_other, 50):.2f}, "
            f"max {max(r.run_other, default=0.0):.2f})"
        )
        print(f"  {'(ms)':<34} {'n':>6} {'p50':>8} {'p99':>8} {'max':>8}")
        print(stats_row("time to last worker", r.to_last_ms))
        for phase, values in sorted(r.to_last_by_phase.items()):
            print(stats_row(f"  of which {lc.state_name(phase)}", values))
        print(stats_row(f"  quiet runs (other <= {max_other:g})", r.quiet_to_last_ms))
        print(stats_row("per-worker lag", r.per_worker_ms))
        print(stats_row("controller: all SetPhase queued", r.enqueued_ms))
        if r.missing_acks:
            print(f"  {r.missing_acks} worker acks missing (not counted in 'time to last')")
        for why in r.runs_failed:
            print(f"  failed: {why}")
        b = base_of.get(r.n)
        if b is not None:
            print(
                f"  baseline: bare grpc.aio, {b.n} processes that only Ack "
                f"(own {b.own_cores:.2f} cores, other {b.other_cores:.2f} cores)"
            )
            print(stats_row("time to last process", b.to_last_ms))
            print(stats_row("per-process lag", b.per_worker_ms))
            if b.missing_acks:
                print(f"  {b.missing_acks} baseline acks missing")
        print()

    print("Summary (ms; time to last = slowest worker of one phase change)")
    head = (
        f"  {'N':>3} {'changes':>7} {'last p50':>9} {'last p99':>9} {'last max':>9} "
        f"{'worker p50':>11} {'worker p99':>11} {'floor p50':>10} {'floor p99':>10}"
    )
    print(head)
    for r in results:
        b = base_of.get(r.n)
        fl50 = f"{percentile(b.to_last_ms, 50):>10.1f}" if b else f"{'-':>10}"
        fl99 = f"{percentile(b.to_last_ms, 99):>10.1f}" if b else f"{'-':>10}"
        print(
            f"  {r.n:>3} {len(r.to_last_ms):>7} {percentile(r.to_last_ms, 50):>9.1f} "
            f"{percentile(r.to_last_ms, 99):>9.1f} {max(r.to_last_ms, default=float('nan')):>9.1f} "
            f"{percentile(r.per_worker_ms, 50):>11.1f} {percentile(r.per_worker_ms, 99):>11.1f} "
            f"{fl50} {fl99}"
        )
    print("  (floor = the gRPC-only baseline's time to last process)")
    print()
    print("Goal: p99 of time to the last worker <= 25 ms with 64 workers")
    big = [r for r in results if r.n == GOAL_WORKERS]
    if not big or not big[0].to_last_ms:
        print("  not measured (run with --sizes including 64)")
        return
    p99 = percentile(big[0].to_last_ms, 99)
    verdict = "MET" if p99 <= GOAL_P99_MS and not big[0].runs_failed else "NOT MET"
    print(f"  p99 = {p99:.1f} ms over {len(big[0].to_last_ms)} phase changes: {verdict}")
    quiet = big[0].quiet_to_last_ms
    if quiet:
        q99 = percentile(quiet, 99)
        qv = "MET" if q99 <= GOAL_P99_MS else "NOT MET"
        print(f"  quiet runs only: p99 = {q99:.1f} ms over {len(quiet)} phase changes: {qv}")


def _duration(text: str) -> float:
    return parse_duration(text)


async def amain(args: argparse.Namespace) -> tuple[list[SizeResult], list[SizeResult]]:
    results, baselines = [], []
    for n in args.sizes:
        if args.quiet_wait > 0:
            await asyncio.to_thread(wait_for_quiet, args.quiet_wait)
        results.append(await measure_size(n, args))
        if not args.no_baseline:
            if args.quiet_wait > 0:
                await asyncio.to_thread(wait_for_quiet, args.quiet_wait)
            changes = 2 * args.runs
            b = await measure_baseline(n, changes, args.warmup / 2, args.attach_timeout)
            print(
                f"  baseline N={n}: {n} processes attached in {b.attach_s:.1f}s, "
                f"{len(b.to_last_ms)} phase changes",
                flush=True,
            )
            baselines.append(b)
    return results, baselines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="16,64", help="worker counts, comma-separated")
    parser.add_argument("--runs", type=int, default=25, help="runs per size (2 phases each)")
    parser.add_argument("--warmup", type=_duration, default=1.0)
    parser.add_argument("--duration", type=_duration, default=1.0)
    parser.add_argument("--think-time", default="50ms")
    parser.add_argument("--ready-timeout", type=_duration, default=60.0)
    parser.add_argument("--attach-timeout", type=float, default=300.0, help="seconds")
    parser.add_argument("--quick", action="store_true", help="smoke test: N = 4, 16; 2 runs")
    parser.add_argument("--verbose", action="store_true", help="one line per run")
    parser.add_argument(
        "--max-other",
        type=float,
        default=0.3,
        help="runs during which other processes used more cores than this are also "
        "reported separately (the 'quiet runs only' row)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the gRPC-only floor")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each size wait up to this many seconds for the host's other processes "
        "to use < 0.3 cores (0: don't wait; --quick: 0)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every number to FILE")
    parser.add_argument("--baseline-worker", metavar="ADDRESS", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-count", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_worker:
        with contextlib.suppress(grpc.aio.AioRpcError, KeyboardInterrupt):
            asyncio.run(baseline_workers(args.baseline_worker, args.baseline_count))
        return 0
    if args.quick:
        args.sizes, args.runs, args.quiet_wait = "4,16", 2, 0.0
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    env = print_header("phase fan-out: controller phase change -> last worker applies it")
    print(
        f"sizes {args.sizes}, {args.runs} runs each, warmup {format_duration(args.warmup)}, "
        f"duration {format_duration(args.duration)}, think_time {args.think_time}, "
        f"ready_timeout {format_duration(args.ready_timeout)}",
        flush=True,
    )
    results, baselines = asyncio.run(amain(args))
    report(results, baselines, args.max_other)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "environment": env,
                    "args": {k: v for k, v in vars(args).items() if k != "json"},
                    "results": [_as_dict(r) for r in results],
                    "baselines": [_as_dict(r) for r in baselines],
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return 0 if all(r.to_last_ms for r in results) else 1


def _as_dict(r: SizeResult) -> dict[str, Any]:
    out: dict[str, Any] = dict(r.__dict__)
    out["to_last_p50_ms"] = percentile(r.to_last_ms, 50)
    out["to_last_p99_ms"] = percentile(r.to_last_ms, 99)
    out["per_worker_p50_ms"] = percentile(r.per_worker_ms, 50)
    out["per_worker_p99_ms"] = percentile(r.per_worker_ms, 99)
    return out


if __name__ == "__main__":
    sys.exit(main())
