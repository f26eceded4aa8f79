"""Controller ingest: N simulated workers stream intervals into one real controller.

The controller runs in its own process, exactly as deployed:

    python -m snowload.cli controller --listen 127.0.0.1:0 --db <tmp>/results.db \\
        --log-level WARNING

N simulated workers (default 256) attach to it over real gRPC (ControlService.Attach),
spread over a few client processes (default 4, one grpc.aio channel and TCP connection
per simulated worker). Each speaks the worker protocol the way worker/agent.py does:

* Hello(worker_id, capacity=64) first; a Heartbeat every second from then on, except
  while reports flow: then each report carries the heartbeat (MetricsReport.status) and a
  standalone Heartbeat (answered by a Pong) goes out every 10 s; the channel pings the
  controller (HTTP/2 keepalive, every second) with worker/agent.py's options;
* Assign -> Ack + Ready; SetPhase / Start / Stop -> Ack;
* after Start, one MetricsReport per second (interval k is sent at Start + k s):
  active_connections = 16 and 4 KindIntervals (k0..k3), each with 250 successes and
  an HDR histogram (snowload.hdr, 3 significant digits) of 250 realistic latencies;
* on Stop: a last MetricsReport(last=True) and Finished(intervals=n).

The histograms are built and encoded once per client process, so a simulated worker
costs next to nothing: the CPU that matters is the controller's.

The run is started through the public API (RunService.StartRun) with a workload of
N workers, 16 x N connections, warmup 0s, duration 30s (10s with --quick) and 4 queries
k0..k3 on a SQLite target that nobody touches. The benchmark's main process watches it
with RunService.WatchRun and records, for every update that carries progress.latest,

    update latency = receive wall time - progress.latest.end_time

(how stale the newest complete second is when a subscriber sees it; both clocks are
time.time_ns() on this host), and the gap between consecutive updates.

Controller CPU is /proc/<pid>/stat utime + stime (psutil), sampled every 100 ms by a
thread; the figure is the CPU used between the run's measurement_start_time and
measurement_end_time divided by that wall time, i.e. the fraction of one core. The
goal is < 10 % of one core at 256 workers. CPU of the simulated workers and of every
other process on the host over the same window is printed too: the benchmark machine
has 2 cores, and a number taken while something else is busy can be recognised as such.

At the end: controller RSS (current and peak), and the MEASUREMENT count from
RunService.GetRun against what the simulated workers sent (they count it) and against
the nominal N x 4 x 250 x intervals.

    python bench/controller_ingest.py                       # 256 workers, 30 s
    python bench/controller_ingest.py --quick               # 256 workers, 10 s
    python bench/controller_ingest.py --workers 64 128 256  # scaling curve
    python bench/controller_ingest.py --quick --profile py-spy --profile-out /tmp/ctl.txt

    python bench/controller_ingest.py --baseline            # and the bare-gRPC floor

--profile py-spy samples the controller during the measurement window only (py-spy
attaches to it; pip install py-spy). --profile cprofile runs the whole controller under
cProfile (wall-clock timer, so the event loop's idle epoll time shows up too).

--baseline also measures the floor for the same N: a bare grpc.aio server (this script,
ControlService only, the same server options) that answers every Heartbeat with a Pong
and counts MetricsReports without merging them, driving one run by itself; its CPU over
its own measurement window is what the transport costs with no controller logic at all.
Like the controller, it plans the run's start ahead (0.5 s), so every simulated worker's
report of a second goes out at the same instant; the floor also records when the last
report of each second arrived (after the second's end): what any update latency of the
controller includes, however little it does per report.

--clock-sync-every S sets how often (seconds) a simulated worker sends a standalone
Heartbeat while its reports flow (default: worker/agent.py's CLOCK_SYNC_INTERVAL_S);
--clock-sync-every 1 is the protocol before reports carried the status (a Heartbeat and
a Pong per worker per second).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import pstats
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil
from benchenv import print_header, wait_for_quiet
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from snowload import hdr
from snowload.v1 import common_pb2, control_pb2, control_pb2_grpc, run_pb2, run_pb2_grpc
from worker.agent import CLOCK_SYNC_INTERVAL_S, KEEPALIVE_OPTIONS

SCRIPT = str(Path(__file__).resolve())
REPO = str(Path(__file__).resolve().parent.parent)
GOAL_CPU = 0.10
GOAL_WORKERS = 256
FLOOR_START_LEAD_NS = 500_000_000
"""The floor plans its run's start this far ahead (the controller plans its own)."""
PY_SPY_RATE = 200
KINDS = ("k0", "k1", "k2", "k3")
# median latency (ms) of each kind: lognormal around it, sigma 0.6
KIND_MEDIAN_MS = (2.0, 8.0, 25.0, 120.0)
PER_KIND = 250
CONNECTIONS_PER_WORKER = 16
CAPACITY = 64
MEASUREMENT = common_pb2.STATE_MEASUREMENT
TERMINAL = {common_pb2.STATE_COMPLETED, common_pb2.STATE_FAILED, common_pb2.STATE_CANCELLED}

WORKLOAD_TOML = """
name = "bench-controller-ingest"
[target]
driver = "sqlite"
database = ":memory:"
[load]
mode = "closed"
workers = {workers}
connections = {connections}
warmup = "0s"
duration = "{duration}s"
ready_timeout = "60s"
{queries}
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


def ts(ns: int) -> Timestamp:
    t = Timestamp()
    t.FromNanoseconds(ns)
    return t


# ------------------------------------------------------------------ simulated workers


def build_kinds(seed: int) -> list[bytes]:
    """One encoded histogram per kind: PER_KIND lognormal latencies in microseconds."""
    rng = random.Random(seed)
    out = []
    for median_ms in KIND_MEDIAN_MS:
        h = hdr.new_histogram()
        for _ in range(PER_KIND):
            h.record_value(max(1, int(rng.lognormvariate(math.log(median_ms * 1000), 0.6))))
        out.append(hdr.encode(h))
    return out


@dataclass
class ClientStats:
    reports: int = 0
    heartbeats: int = 0
    finished: int = 0
    count_by_phase: Counter[int] = field(default_factory=Counter)
    streams_failed: int = 0


class SimWorker:
    """One simulated worker: one channel, one Attach stream, the worker protocol."""

    def __init__(
        self,
        address: str,
        worker_id: str,
        kinds: list[bytes],
        stats: ClientStats,
        clock_sync_every: float = CLOCK_SYNC_INTERVAL_S,
    ) -> None:
        self.address = address
        self.clock_sync_every = clock_sync_every
        self.worker_id = worker_id
        self.kinds = kinds
        self.stats = stats
        self.outbox: asyncio.Queue[control_pb2.AttachRequest] = asyncio.Queue()
        self.state = control_pb2.WORKER_STATE_IDLE
        self.run_id = ""
        self.phase = common_pb2.STATE_UNSPECIFIED
        self.connections = 0
        self.interval_id = 0
        self.last_end_ns = 0
        self.reporter: asyncio.Task[None] | None = None
        self.attached = asyncio.Event()

    def send(self, **kw: Any) -> None:
        self.outbox.put_nowait(control_pb2.AttachRequest(**kw))

    async def outgoing(self) -> AsyncIterator[control_pb2.AttachRequest]:
        yield control_pb2.AttachRequest(
            hello=control_pb2.Hello(
                worker_id=self.worker_id,
                host="sim",
                pid=os.getpid(),
                version="bench",
                capacity=CAPACITY,
                state=self.state,
            )
        )
        while True:
            yield await self.outbox.get()

    async def serve(self, stop: asyncio.Event) -> None:
        # one TCP connection per worker, pinged like a real worker's
        options = [("grpc.use_local_subchannel_pool", 1), *KEEPALIVE_OPTIONS]
        async with grpc.aio.insecure_channel(self.address, options=options) as ch:
            call = control_pb2_grpc.ControlServiceStub(ch).Attach(self.outgoing())
            beat = asyncio.create_task(self.heartbeats())
            reader = asyncio.create_task(self.read(call))
            stopper = asyncio.create_task(stop.wait())
            try:
                done, _ = await asyncio.wait({reader, stopper}, return_when="FIRST_COMPLETED")
                if reader in done and reader.exception() is not None:
                    self.stats.streams_failed += 1
            finally:
                for t in (beat, reader, stopper, self.reporter):
                    if t is not None:
                        t.cancel()
                call.cancel()

    async def read(self, call: Any) -> None:
        async for msg in call:
            self.on_message(msg)

    def heartbeat(self) -> control_pb2.Heartbeat:
        return control_pb2.Heartbeat(
            send_time=ts(time.time_ns()),
            state=self.state,
            run_id=self.run_id,
            phase=self.phase,
            active_connections=self.connections if self.reporter else 0,
            cpu_percent=1.0,
            rss_bytes=50 << 20,
        )

    async def heartbeats(self) -> None:
        synced = 0.0
        while True:
            now = time.monotonic()
            if self.reporter is None or now - synced >= self.clock_sync_every:
                self.send(heartbeat=self.heartbeat())
                self.stats.heartbeats += 1
                if self.clock_sync_every > 1:  # jittered as worker/agent.py does
                    synced = now + random.uniform(-0.3, 0.3) * self.clock_sync_every
                else:
                    synced = now
            await asyncio.sleep(1.0)

    def ack(self, seq: int) -> None:
        self.send(ack=control_pb2.Ack(seq=seq, applied_time=ts(time.time_ns()), state=self.state))

    def on_message(self, msg: control_pb2.AttachResponse) -> None:
        kind = msg.WhichOneof("command")
        if kind == "welcome":
            self.attached.set()
        elif kind == "assign":
            a = msg.assign
            self.run_id, self.phase, self.connections = a.run_id, a.phase, a.connections
            self.interval_id = 0
            self.state = control_pb2.WORKER_STATE_PREPARING
            self.ack(msg.seq)
            self.state = control_pb2.WORKER_STATE_READY
            ready = control_pb2.Ready(
                run_id=a.run_id,
                connections=a.connections,
                prepare_duration=Duration(nanos=1_000_000),
                ready_time=ts(time.time_ns()),
            )
            self.send(ready=ready)
        elif kind == "set_phase":
            self.phase = msg.set_phase.phase
            self.ack(msg.seq)
        elif kind == "start":
            self.state = control_pb2.WORKER_STATE_RUNNING
            self.ack(msg.seq)
            # the plan's load start (warmup 0 s: MEASUREMENT from there); interval k ends
            # k seconds after it, as a real worker's does
            start_ns = msg.start.start_time.ToNanoseconds() or time.time_ns()
            self.phase = MEASUREMENT
            self.last_end_ns = start_ns
            self.reporter = asyncio.get_running_loop().create_task(
                self.report_loop((start_ns - time.time_ns()) / 1e9)
            )
        elif kind == "stop":
            self.state = control_pb2.WORKER_STATE_DRAINING
            self.ack(msg.seq)
            if self.reporter is not None:
                self.reporter.cancel()
                self.reporter = None
                self.report(last=True)
            self.send(
                finished=control_pb2.Finished(run_id=msg.stop.run_id, intervals=self.interval_id)
            )
            self.stats.finished += 1
            self.state = control_pb2.WORKER_STATE_IDLE
            self.run_id, self.phase = "", common_pb2.STATE_UNSPECIFIED

    async def report_loop(self, lead_s: float = 0.0) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time() + max(0.0, lead_s)
        k = 1
        while True:
            await asyncio.sleep(max(0.0, began + k - loop.time()))
            self.report(last=False)
            k += 1

    def report(self, *, last: bool) -> None:
        end = time.time_ns()
        self.interval_id += 1
        report = control_pb2.MetricsReport(
            run_id=self.run_id,
            interval_id=self.interval_id,
            start_time=ts(self.last_end_ns),
            end_time=ts(end),
            active_connections=CONNECTIONS_PER_WORKER,
            last=last,
            kinds=[
                control_pb2.KindInterval(
                    kind=name,
                    phase=self.phase,  # type: ignore[arg-type]
                    count=PER_KIND,
                    histogram=encoded,
                )
                for name, encoded in zip(KINDS, self.kinds, strict=True)
            ],
        )
        self.last_end_ns = end
        report.status.CopyFrom(self.heartbeat())
        report.send_time.CopyFrom(report.status.send_time)
        self.send(metrics=report)
        self.stats.reports += 1
        self.stats.count_by_phase[self.phase] += PER_KIND * len(KINDS)


async def client_main(
    address: str, first: int, count: int, prefix: str, clock_sync_every: float
) -> None:
    """A client process: ``count`` simulated workers until SIGTERM; prints stats as JSON."""
    stats = ClientStats()
    kinds = build_kinds(seed=first)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    workers = [
        SimWorker(address, f"{prefix}-{i:04d}", kinds, stats, clock_sync_every)
        for i in range(first, first + count)
    ]
    tasks = []
    for w in workers:
        tasks.append(asyncio.create_task(w.serve(stop)))
        await asyncio.sleep(0.002)  # stagger the heartbeats a little, like real workers
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    usage = psutil.Process().cpu_times()
    print(
        json.dumps(
            {
                "reports": stats.reports,
                "heartbeats": stats.heartbeats,
                "finished": stats.finished,
                "streams_failed": stats.streams_failed,
                "count_by_phase": {str(k): v for k, v in stats.count_by_phase.items()},
                "cpu_s": usage.user + usage.system,
            }
        ),
        flush=True,
    )


# ------------------------------------------------------------------------- measurement


class CpuSampler:
    """Every ``period`` seconds: (wall ns, cpu seconds of each pid, host busy seconds)."""

    def __init__(self, pids: dict[str, int], period: float = 0.1) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.samples: list[tuple[int, dict[str, float], float]] = []
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def add(self, name: str, pid: int) -> None:
        self.procs[name] = psutil.Process(pid)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            cpu: dict[str, float] = {}
            for name, proc in list(self.procs.items()):
                with contextlib.suppress(psutil.Error):
                    t = proc.cpu_times()
                    cpu[name] = t.user + t.system
            h = psutil.cpu_times()
            busy = h.user + h.nice + h.system + h.irq + h.softirq
            self.samples.append((time.time_ns(), cpu, busy))
            self._stop.wait(self.period)

    def window(self, start_ns: int, end_ns: int) -> tuple[float, dict[str, float], float]:
        """Wall seconds, cpu seconds per process and host busy seconds within the window
        (between the first sample at or after start and the last at or before end)."""
        inside = [s for s in self.samples if start_ns <= s[0] <= end_ns]
        if len(inside) < 2:
            raise RuntimeError("too few CPU samples inside the measurement window")
        (t0, c0, b0), (t1, c1, b1) = inside[0], inside[-1]
        cpu = {name: c1[name] - c0[name] for name in c1 if name in c0}
        return (t1 - t0) / 1e9, cpu, b1 - b0

    def per_second(self, name: str, start_ns: int, end_ns: int) -> list[float]:
        """CPU fraction of one core in each whole second of the window."""
        out = []
        t = start_ns
        while t + 1_000_000_000 <= end_ns:
            a = [s for s in self.samples if t <= s[0] <= t + 1_000_000_000 and name in s[1]]
            if len(a) >= 2:
                out.append((a[-1][1][name] - a[0][1][name]) / ((a[-1][0] - a[0][0]) / 1e9))
            t += 1_000_000_000
        return out


@dataclass
class Update:
    recv_ns: int
    state: int
    second: int
    end_ns: int
    final: bool


@dataclass
class Result:
    workers: int
    duration_s: float
    server: str = "controller"
    state: str = ""
    reason: str = ""
    window_s: float = 0.0
    controller_cpu: float = 0.0
    controller_cpu_per_s: list[float] = field(default_factory=list)
    clients_cpu: float = 0.0
    other_cpu: float = 0.0
    rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    latency_ms: list[float] = field(default_factory=list)
    fresh_latency_ms: list[float] = field(default_factory=list)
    gap_ms: list[float] = field(default_factory=list)
    updates: int = 0
    reports_sent: int = 0
    heartbeats_sent: int = 0
    expected_count: int = 0
    nominal_count: int = 0
    actual_count: int = 0
    intervals_max: int = 0
    streams_failed: int = 0
    attach_s: float = 0.0

    @property
    def goal_met(self) -> bool:
        return self.controller_cpu < GOAL_CPU


def start_controller(
    db: str, profile: str | None, profile_out: str | None
) -> tuple[subprocess.Popen[str], str, list[str]]:
    cmd = [sys.executable]
    if profile == "cprofile":
        cmd += ["-m", "cProfile", "-o", str(profile_out)]
    cmd += ["-m", "snowload.cli", "controller", "--listen", "127.0.0.1:0"]
    cmd += ["--db", db, "--log-level", "WARNING"]
    env = {k: v for k, v in os.environ.items() if k != "SNOWLOAD_TOKEN"}  # loopback, no token
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    assert proc.stderr is not None
    lines: list[str] = []
    address = ""
    while True:
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError("controller exited:\n" + "".join(lines))
        lines.append(line)
        if "snowload controller listening on" in line:
            address = line.rsplit(" ", 1)[1].strip()
            break
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    return proc, address, lines


def peak_rss_mib(pid: int) -> float:
    """VmHWM of the process, in MiB (0 if unavailable)."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        status = Path(f"/proc/{pid}/status").read_text()
        hwm = next(x for x in status.splitlines() if x.startswith("VmHWM"))
        return int(hwm.split()[1]) / 1024
    return 0.0


def start_py_spy(pid: int, duration_s: float, out: str, native: bool) -> subprocess.Popen[str]:
    """Sample the controller (not pausing it) for ``duration_s``: folded stacks in ``out``."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile py-spy: py-spy is not installed (pip install py-spy)")
    cmd = [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(duration_s)))]
    cmd += ["--rate", str(PY_SPY_RATE), "--format", "raw", "--output", out]
    # native unwinding needs the process paused; otherwise do not slow the controller down
    cmd.append("--native" if native else "--nonblocking")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def start_clients(
    address: str, n: int, procs: int, clock_sync_every: float = CLOCK_SYNC_INTERVAL_S
) -> list[subprocess.Popen[str]]:
    out = []
    per = math.ceil(n / procs)
    first = 0
    while first < n:
        count = min(per, n - first)
        cmd = [sys.executable, SCRIPT, "_client", address, str(first), str(count), "sim"]
        cmd.append(str(clock_sync_every))
        out.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO))
        first += count
    return out


async def wait_attached(stub: Any, n: int, timeout_s: float) -> float:
    t0 = time.monotonic()
    while True:
        resp = await stub.ListWorkers(run_pb2.ListWorkersRequest())
        idle = [w for w in resp.workers if w.connected and not w.run_id]
        if len(idle) >= n:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"only {len(idle)} of {n} workers attached within {timeout_s:g}s")
        await asyncio.sleep(0.2)


async def watch(stub: Any, run_id: str) -> list[Update]:
    updates = []
    async for u in stub.WatchRun(run_pb2.WatchRunRequest(run_id=run_id)):
        recv = time.time_ns()
        latest = u.progress.latest if u.progress.HasField("latest") else None
        updates.append(
            Update(
                recv_ns=recv,
                state=u.run.state,
                second=latest.second if latest is not None else 0,
                end_ns=latest.end_time.ToNanoseconds() if latest is not None else 0,
                final=u.final,
            )
        )
        if u.final:
            break
    return updates


async def measure(n: int, args: argparse.Namespace, tmp: str) -> Result:
    result = Result(workers=n, duration_s=args.duration)
    out = args.profile_out
    if args.profile and len(args.workers) > 1:
        out = f"{out}.{n}"
    ctl, address, ctl_log = start_controller(
        os.path.join(tmp, f"results-{n}.db"), args.profile, out
    )
    pid = ctl.pid
    spy: subprocess.Popen[str] | None = None
    clients: list[subprocess.Popen[str]] = []
    sampler = CpuSampler({"controller": pid})
    try:
        async with grpc.aio.insecure_channel(
            address, options=[("grpc.max_receive_message_length", 64 << 20)]
        ) as ch:
            stub = run_pb2_grpc.RunServiceStub(ch)
            clients = start_clients(address, n, args.procs, args.clock_sync_every)
            for i, c in enumerate(clients):
                sampler.add(f"client{i}", c.pid)
            result.attach_s = await wait_attached(stub, n, 60.0)
            print(f"  N={n}: {n} simulated workers attached in {result.attach_s:.1f}s", flush=True)
            await asyncio.sleep(2.0)  # let attach-time work settle
            sampler.start()
            queries = "\n".join(f'[[query]]\nname = "{k}"\nsql = "SELECT 1"' for k in KINDS)
            toml = WORKLOAD_TOML.format(
                workers=n,
                connections=CONNECTIONS_PER_WORKER * n,
                duration=f"{args.duration:g}",
                queries=queries,
            )
            started = await stub.StartRun(
                run_pb2.StartRunRequest(workload_toml=toml, source_name="controller_ingest")
            )
            run_id = started.run.run_id
            if args.profile == "py-spy":
                spy = start_py_spy(pid, args.duration, out, args.native)
            updates = await asyncio.wait_for(watch(stub, run_id), args.duration + 120)
            run = (await stub.GetRun(run_pb2.GetRunRequest(run_id=run_id))).run
            sampler.stop()
            mem = psutil.Process(pid).memory_full_info()
            result.rss_mib = mem.rss / 2**20
            result.peak_rss_mib = peak_rss_mib(pid)
    finally:
        for c in clients:
            c.send_signal(signal.SIGTERM)
        client_out = []
        for c in clients:
            try:
                stdout, _ = c.communicate(timeout=30)
                client_out.append(stdout)
            except subprocess.TimeoutExpired:
                c.kill()
        if spy is not None:
            _, err = spy.communicate(timeout=args.duration + 60)
            if spy.returncode != 0:
                print(f"  py-spy failed ({spy.returncode}): {err.strip()[-2000:]}", flush=True)
        ctl.send_signal(signal.SIGTERM)
        try:
            ctl.wait(timeout=60)
        except subprocess.TimeoutExpired:
            ctl.kill()

    result.state = common_pb2.State.Name(run.state)
    result.reason = run.reason
    start_ns = run.measurement_start_time.ToNanoseconds()
    end_ns = run.measurement_end_time.ToNanoseconds()
    wall, cpu, busy = sampler.window(start_ns, end_ns)
    result.window_s = wall
    result.controller_cpu = cpu["controller"] / wall
    result.controller_cpu_per_s = sampler.per_second("controller", start_ns, end_ns)
    own = sum(cpu.values())
    result.clients_cpu = (own - cpu["controller"]) / wall
    result.other_cpu = max(0.0, busy - own) / wall

    # update latency: every update in MEASUREMENT that carries progress.latest
    measuring = [u for u in updates if u.state == MEASUREMENT]
    result.updates = len(measuring)
    seen_seconds: set[int] = set()
    for u in measuring:
        if u.end_ns:
            result.latency_ms.append((u.recv_ns - u.end_ns) / 1e6)
            if u.second not in seen_seconds:
                seen_seconds.add(u.second)
                result.fresh_latency_ms.append((u.recv_ns - u.end_ns) / 1e6)
    result.gap_ms = [(b.recv_ns - a.recv_ns) / 1e6 for a, b in itertools.pairwise(measuring)]
    result.intervals_max = max((u.second for u in updates), default=0)

    stats = parse_client_stats(client_out)
    result.reports_sent = stats.get("reports", 0)
    result.heartbeats_sent = stats.get("heartbeats", 0)
    result.streams_failed = stats.get("streams_failed", 0)
    result.expected_count = stats.get("measured", 0)
    for phase in run.summary.phases:
        if phase.phase == MEASUREMENT:
            result.actual_count = phase.overall.count
    result.nominal_count = int(n * len(KINDS) * PER_KIND * round(args.duration))
    if result.state != "STATE_COMPLETED":
        lost = sum(" lost (" in line for line in ctl_log)
        shown = ctl_log if len(ctl_log) <= 12 else [*ctl_log[:6], "  ...\n", *ctl_log[-6:]]
        print(
            f"  controller log ({len(ctl_log)} lines, {lost} 'worker ... lost'):\n"
            + "".join(shown),
            flush=True,
        )
    if args.profile == "cprofile":
        print_cprofile(out, args.profile_top)
    elif args.profile == "py-spy":
        print_py_spy(out, args.profile_top, args.duration)
    return result


# ----------------------------------------------------------------- transport floor


class BareControl(control_pb2_grpc.ControlServiceServicer):
    """The floor: grpc.aio and the same message flow, no controller logic. It answers
    Hello with Welcome and every Heartbeat with a Pong (as the controller does), counts
    MetricsReports without looking into them, and drives one run by itself."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.outboxes: dict[str, asyncio.Queue[control_pb2.AttachResponse | None]] = {}
        self.seq: dict[str, int] = {}
        self.all_attached = asyncio.Event()
        self.all_finished = asyncio.Event()
        self.reports = 0
        self.finished = 0
        self.last_arrival: dict[int, int] = {}
        """Per interval id: when its last report arrived (time.time_ns())."""

    async def Attach(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        first = await anext(aiter(request_iterator))
        worker_id = first.hello.worker_id
        outbox: asyncio.Queue[control_pb2.AttachResponse | None] = asyncio.Queue()
        self.outboxes[worker_id] = outbox
        self.seq[worker_id] = 0
        reader = asyncio.get_running_loop().create_task(self.read(request_iterator, outbox))
        welcome = control_pb2.Welcome(controller_version="bare")
        welcome.controller_time.FromNanoseconds(time.time_ns())
        yield control_pb2.AttachResponse(welcome=welcome)
        if len(self.outboxes) >= self.n:
            self.all_attached.set()
        try:
            while (msg := await outbox.get()) is not None:
                yield msg
        finally:
            reader.cancel()

    async def read(self, requests: Any, outbox: asyncio.Queue[Any]) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            async for msg in requests:
                kind = msg.WhichOneof("message")
                if kind == "heartbeat":
                    pong = control_pb2.Pong(heartbeat_send_time=msg.heartbeat.send_time)
                    pong.controller_receive_time.FromNanoseconds(time.time_ns())
                    outbox.put_nowait(control_pb2.AttachResponse(pong=pong))
                elif kind == "metrics":
                    self.reports += 1
                    self.last_arrival[msg.metrics.interval_id] = time.time_ns()
                elif kind == "finished":
                    self.finished += 1
                    if self.finished >= self.n:
                        self.all_finished.set()
        outbox.put_nowait(None)

    def broadcast(self, **command: Any) -> None:
        for worker_id, outbox in self.outboxes.items():
            self.seq[worker_id] += 1
            outbox.put_nowait(control_pb2.AttachResponse(seq=self.seq[worker_id], **command))


async def baseline_main(n: int, duration_s: float) -> None:
    """A bare-gRPC server process: one run of ``duration_s`` once ``n`` workers attached;
    prints its measurement window as JSON on stdout."""
    svc = BareControl(n)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 16 << 20),
            ("grpc.max_send_message_length", 16 << 20),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 500),
            ("grpc.http2.max_ping_strikes", 0),
            ("grpc.http2.bdp_probe", 0),
        ]
    )
    control_pb2_grpc.add_ControlServiceServicer_to_server(svc, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"snowload controller listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    await svc.all_attached.wait()
    await asyncio.sleep(2.0)
    run_id = "bare"
    svc.broadcast(assign=control_pb2.Assign(run_id=run_id, connections=16, phase=MEASUREMENT))
    svc.broadcast(set_phase=control_pb2.SetPhase(run_id=run_id, phase=MEASUREMENT))
    await asyncio.sleep(0.5)
    # planned ahead, as the controller plans its runs: every simulated worker begins at
    # this instant, so the reports of a second arrive together, as at the controller
    start_ns = time.time_ns() + FLOOR_START_LEAD_NS
    svc.broadcast(start=control_pb2.Start(run_id=run_id, start_time=ts(start_ns)))
    await asyncio.sleep(duration_s + FLOOR_START_LEAD_NS / 1e9)
    end_ns = time.time_ns()
    svc.broadcast(stop=control_pb2.Stop(run_id=run_id, reason="duration_elapsed"))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(svc.all_finished.wait(), 15.0)
    # how long after the end of each full second its last report arrived
    arrivals = {
        k: (at - start_ns - k * 1_000_000_000) / 1e6
        for k, at in svc.last_arrival.items()
        if start_ns + k * 1_000_000_000 <= end_ns
    }
    result = {"start_ns": start_ns, "end_ns": end_ns, "reports": svc.reports, "last_ms": arrivals}
    print(json.dumps(result), flush=True)
    for outbox in svc.outboxes.values():
        outbox.put_nowait(None)  # end every stream with OK
    await asyncio.sleep(0.5)
    await server.stop(1.0)


def start_baseline_server(n: int, duration_s: float) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, SCRIPT, "_baseline", str(n), str(duration_s)]
    srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert srv.stderr is not None
    line = srv.stderr.readline()
    if "listening on" not in line:
        raise RuntimeError(f"baseline server did not start: {line}")
    return srv, line.rsplit(" ", 1)[1].strip()


async def measure_baseline(n: int, args: argparse.Namespace) -> Result:
    result = Result(workers=n, duration_s=args.duration, server="bare gRPC")
    srv, address = start_baseline_server(n, args.duration)
    sampler = CpuSampler({"controller": srv.pid})
    sampler.start()
    clients = start_clients(address, n, args.procs, args.clock_sync_every)
    for i, c in enumerate(clients):
        sampler.add(f"client{i}", c.pid)
    try:
        loop = asyncio.get_running_loop()
        stdout, _ = await loop.run_in_executor(
            None, lambda: srv.communicate(timeout=args.duration + 120)
        )
        result.peak_rss_mib = 0.0
    finally:
        sampler.stop()
        for c in clients:
            c.send_signal(signal.SIGTERM)
        client_out = [c.communicate(timeout=30)[0] for c in clients]
        if srv.poll() is None:
            srv.kill()
    window = json.loads(stdout.strip().splitlines()[-1])
    result.state, result.reason = "STATE_COMPLETED", "bare"
    result.latency_ms = list(window["last_ms"].values())
    wall, cpu, busy = sampler.window(window["start_ns"], window["end_ns"])
    result.window_s = wall
    result.controller_cpu = cpu["controller"] / wall
    result.controller_cpu_per_s = sampler.per_second(
        "controller", window["start_ns"], window["end_ns"]
    )
    own = sum(cpu.values())
    result.clients_cpu = (own - cpu["controller"]) / wall
    result.other_cpu = max(0.0, busy - own) / wall
    stats = parse_client_stats(client_out)
    result.reports_sent = stats["reports"]
    result.heartbeats_sent = stats["heartbeats"]
    result.streams_failed = stats["streams_failed"]
    result.expected_count = result.actual_count = 0
    print(
        f"  N={n} bare gRPC: controller-equivalent CPU {100 * result.controller_cpu:.1f} %, "
        f"{window['reports']} reports received",
        flush=True,
    )
    return result


def parse_client_stats(outputs: list[str]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for text in outputs:
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                s = json.loads(line)
                for key in ("reports", "heartbeats", "streams_failed"):
                    total[key] += s[key]
                total["measured"] += s["count_by_phase"].get(str(MEASUREMENT), 0)
    return dict(total)


def print_cprofile(path: str, top: int) -> None:
    if not os.path.exists(path):
        print(f"  no profile written to {path}")
        return
    stats = pstats.Stats(path)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\n  cProfile of the controller ({path}), total {total:.2f}s of profiled CPU")
    print(f"  {'tottime':>8} {'%':>6} {'cumtime':>8} {'%':>6}  function")
    rows = sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda kv: kv[1][2],
        reverse=True,
    )[:top]
    for (file, line, func), (_cc, _nc, tt, ct, _callers) in rows:
        where = file.replace(REPO + "/", "").split("site-packages/")[-1]
        share = f"{tt:8.2f} {100 * tt / total:5.1f}% {ct:8.2f} {100 * ct / total:5.1f}%"
        print(f"  {share}  {where}:{line}({func})")
    print(flush=True)


def print_py_spy(path: str, top: int, duration_s: float) -> None:
    """Self and inclusive share of each function in py-spy's folded stacks."""
    if not os.path.exists(path):
        print(f"  no profile written to {path}")
        return
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(n)
            total += count
            frames = [short_frame(x) for x in stack.split(";")]
            own[frames[-1]] += count
            for frame in set(frames):
                incl[frame] += count
    print(
        f"\n  py-spy profile of the controller ({path}): {total} non-idle samples at "
        f"{PY_SPY_RATE} Hz over {duration_s:g}s (py-spy's idle detection is approximate: "
        "read the shares, and the /proc figure for CPU)"
    )
    print(f"  {'self %':>7} {'incl %':>7}  function (shares of non-idle samples)")
    for frame, n in own.most_common(top):
        print(f"  {100 * n / total:6.1f}% {100 * incl[frame] / total:6.1f}%  {frame}")
    print(f"\n  {'incl %':>7}  function (inclusive, top {top})")
    for frame, n in incl.most_common(top):
        print(f"  {100 * n / total:6.1f}%  {frame}")
    print(flush=True)


def short_frame(frame: str) -> str:
    """'func (path/to/file.py:12)' -> 'func (file.py:12)' relative to the repo or site-packages."""
    frame = frame.replace(REPO + "/", "")
    head, sep, tail = frame.partition(" (")
    if sep and "site-packages/" in tail:
        tail = tail.split("site-packages/")[-1]
    elif sep and "/lib/python3" in tail:
        tail = "stdlib/" + tail.rsplit("/", 1)[-1]
    return f"{head}{sep}{tail}"


def fmt3(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{percentile(values, 50):.0f} / {percentile(values, 99):.0f} / {max(values):.0f}"


def report(results: list[Result]) -> None:
    print("\n## Results\n")
    print(
        "| workers | server | CPU (of one core) | worst 1 s | RSS end / peak (MiB) "
        "| update latency p50/p99/max (ms) | update gap p50/p99/max (ms) "
        "| MEASUREMENT count: expected / actual |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        worst = max(r.controller_cpu_per_s, default=float("nan"))
        if r.server == "controller":
            ok = "ok" if r.expected_count == r.actual_count else "MISMATCH"
            rest = (
                f"{r.rss_mib:.0f} / {r.peak_rss_mib:.0f} | {fmt3(r.latency_ms)} "
                f"| {fmt3(r.gap_ms)} | {r.expected_count:,} / {r.actual_count:,} ({ok})"
            )
        else:  # the floor's "latency": the last report of each second arrived
            rest = f"- | {fmt3(r.latency_ms)} (last report in) | - | -"
        print(
            f"| {r.workers} | {r.server} | {100 * r.controller_cpu:.1f} % "
            f"| {100 * worst:.0f} % | {rest} |"
        )
    print()
    for r in results:
        line = (
            f"N={r.workers} {r.server}: measurement window {r.window_s:.1f}s; simulated "
            f"workers used {r.clients_cpu:.2f} cores, other processes {r.other_cpu:.2f} cores; "
            f"reports sent {r.reports_sent:,}, heartbeats {r.heartbeats_sent:,}"
        )
        if r.server == "controller":
            line += (
                f"; failed streams {r.streams_failed}; run {r.state} ({r.reason}); "
                f"{r.updates} WatchRun updates in MEASUREMENT, "
                f"newest second {r.intervals_max}; first sight of each second p50/p99/max "
                f"{fmt3(r.fresh_latency_ms)} ms; nominal count N x 4 x {PER_KIND} x "
                f"{round(r.duration_s)} s = {r.nominal_count:,}"
            )
        print(line)
        per_s = " ".join(f"{100 * c:.0f}" for c in r.controller_cpu_per_s)
        print(f"  CPU per second of the window (%): {per_s}")
    goal = [r for r in results if r.workers == GOAL_WORKERS and r.server == "controller"]
    if goal:
        r = goal[0]
        verdict = "MET" if r.goal_met else "NOT MET"
        print(
            f"\nGoal (< {100 * GOAL_CPU:.0f} % of one core at {GOAL_WORKERS} workers): {verdict} "
            f"({100 * r.controller_cpu:.1f} %)"
        )


async def amain(args: argparse.Namespace) -> int:
    env = print_header("controller ingest: simulated workers -> one controller process")
    print(
        f"workers {args.workers}, {args.procs} client processes, duration {args.duration:g}s, "
        f"{len(KINDS)} kinds x {PER_KIND} per interval, profile {args.profile or 'none'}, "
        f"standalone heartbeat while reporting every {args.clock_sync_every:g} s"
    )
    if args.quiet_wait > 0:
        load = wait_for_quiet(args.quiet_wait)
        print(f"other processes before start: {load:.2f} cores", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="snowload-ingest-") as tmp:
        for n in args.workers:
            results.append(await measure(n, args, tmp))
            if args.baseline:
                results.append(await measure_baseline(n, args))
    report(results)
    if args.json:
        write_json(args.json, env, results)
    ok = all(r.state == "STATE_COMPLETED" and r.expected_count == r.actual_count for r in results)
    return 0 if ok else 1


def write_json(path: str, env: dict[str, object], results: list[Result]) -> None:
    rows = []
    for r in results:
        row: dict[str, object] = {k: v for k, v in vars(r).items() if not isinstance(v, list)}
        for name in ("latency_ms", "fresh_latency_ms", "gap_ms"):
            values = getattr(r, name)
            row[name] = {p: percentile(values, p) for p in (50, 99, 100)}
        row["controller_cpu_per_s"] = r.controller_cpu_per_s
        rows.append(row)
    Path(path).write_text(json.dumps({"env": env, "results": rows}, indent=2))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_client":
        address, first, count, prefix, every = sys.argv[2:7]
        asyncio.run(client_main(address, int(first), int(count), prefix, float(every)))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_baseline":
        asyncio.run(baseline_main(int(sys.argv[2]), float(sys.argv[3])))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[GOAL_WORKERS],
        help="N (several: a scaling curve)",
    )
    p.add_argument(
        "--procs", type=int, default=4, help="client processes for the simulated workers"
    )
    p.add_argument("--duration", type=float, default=30.0, help="measurement seconds (default 30)")
    p.add_argument("--quick", action="store_true", help="10 s measurement")
    p.add_argument("--profile", choices=("cprofile", "py-spy"), help="profile the controller")
    p.add_argument("--profile-out", default="/tmp/controller_ingest.prof", help="profile output")
    p.add_argument("--profile-top", type=int, default=30, help="profile rows to print")
    p.add_argument("--native", action="store_true", help="py-spy: include native frames")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="wait up to S seconds for a quiet host (0: no)",
    )
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also measure the floor: a bare grpc.aio server with the same message flow",
    )
    p.add_argument(
        "--clock-sync-every",
        type=float,
        default=CLOCK_SYNC_INTERVAL_S,
        metavar="S",
        help="while reports flow, a standalone heartbeat every S seconds (default: as "
        "worker/agent.py does; 1 = the protocol before reports carried the status)",
    )
    p.add_argument("--json", help="also write the results as JSON to this file")
    args = p.parse_args()
    if args.quick:
        args.duration = 10.0
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
