"""Wake-up floor: how closely N idle Python processes wake at one shared instant.

What a planned boundary costs before snowload adds anything: N processes (plain
CPython, no gRPC, no load) each with ``threads`` threads; each round the parent sends
every process one instant (``time.time_ns()``, a lead ahead), every thread sleeps until
it (``time.sleep`` of the time left, in steps of at most 50 ms, as a connection thread
waits for the load start) and notes ``time.time_ns()`` on waking. Per round, the
**spread** is the last process's first wake minus the first process's first wake (what
the planned-boundary spread measures for snowload's workers: each worker's first
statement); the **lateness** per process is its first wake minus the instant.

    python bench/wake_floor.py                       # N = 16, 64, 256; 1 and 2 threads; 10 rounds
    python bench/wake_floor.py --sizes 64 --threads 2 --rounds 20
    python bench/wake_floor.py --sizes 64 --threads 2 --layouts steps,gate,leader
    python bench/wake_floor.py --sizes 32 --threads 16 --agents 8 --layouts steps,gate
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

CHILD = r"""
import sys, threading, time
threads, group, layout = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
STEP = 50_000_000
def wait(at, out, i):
    while (left := at - time.time_ns()) > 0:
        time.sleep(min(left, STEP) / 1e9)
    out[i] = time.time_ns()
def gated(lock, out, i):
    lock.acquire()
    out[i] = time.time_ns()
def release(locks):
    # the first thread of every group first, then the others
    for k in range(group):
        for j in range(k, len(locks), group):
            if locks[j] is not None:
                locks[j].release()
for line in sys.stdin:
    at = int(line)
    out = [0] * threads
    if layout == "steps":
        ts = [threading.Thread(target=wait, args=(at, out, i)) for i in range(1, threads)]
        for t in ts:
            t.start()
        wait(at, out, 0)
    else:
        # one timer wake per process: a gate thread (or the first connection, "leader")
        # sleeps until the instant and releases the others
        locks = [threading.Lock() for _ in range(threads)]
        for lock in locks:
            lock.acquire()
        first = 0 if layout == "gate" else 1
        ts = [
            threading.Thread(target=gated, args=(locks[i], out, i)) for i in range(first, threads)
        ]
        for t in ts:
            t.start()
        while (left := at - time.time_ns()) > 0:
            time.sleep(left / 1e9)
        if layout == "leader":
            out[0] = time.time_ns()
            locks[0] = None
        release(locks)
    for t in ts:
        t.join()
    firsts = [min(out[i : i + group]) for i in range(0, threads, group)]
    sys.stdout.write(" ".join(map(str, firsts)) + "\n")
    sys.stdout.flush()
"""


@dataclass
class WakeResult:
    n: int
    threads: int
    layout: str = "steps"
    agents: int = 1
    spread_ms: list[float] = field(default_factory=list)
    late_ms: list[float] = field(default_factory=list)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class WakeFloor:
    """N idle processes waiting for instants; ``round()`` is one shared instant."""

    def __init__(self, n: int, threads: int = 1, agents: int = 1, layout: str = "steps") -> None:
        """``n`` processes of ``threads`` threads each; with ``agents`` > 1 a process
        stands for that many workers of ``threads // agents`` threads, and the spread
        is over each worker's first wake. ``layout``: "steps" (every thread sleeps
        until the instant itself), "gate" (one more thread per process sleeps until it
        and releases the others, the first of each worker first: worker/start_gate.py),
        "leader" (the first thread sleeps and releases the others)."""
        self.n, self.threads = n, threads
        self.procs = [
            subprocess.Popen(
                [
                    *(sys.executable, "-c", CHILD),
                    *(str(threads), str(max(1, threads // agents)), layout),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(n)
        ]
        self.round()  # a first round off the record (imports, thread start-up)

    def round(self, lead_s: float = 0.3) -> tuple[float, list[float]]:
        """Blocking: the spread of the first wakes (ms) and each process's lateness."""
        at = time.time_ns() + round(lead_s * 1e9)
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(f"{at}\n")
            p.stdin.flush()
        woke: list[int] = []
        for p in self.procs:
            assert p.stdout is not None
            woke.extend(int(w) for w in p.stdout.readline().split())
        return (max(woke) - min(woke)) / 1e6, [(w - at) / 1e6 for w in woke]

    def close(self) -> None:
        for p in self.procs:
            if p.stdin is not None:
                p.stdin.close()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def measure_wake_floor(
    n: int,
    rounds: int,
    threads: int = 1,
    gap_s: float = 0.3,
    agents: int = 1,
    layouts: tuple[str, ...] = ("steps",),
) -> list[WakeResult]:
    """N idle processes per layout, ``rounds`` shared instants, the layouts taking turns
    (so they meet the same moments of a shared host); blocking (run it in a thread)."""
    results = [WakeResult(n, threads, lay, agents, load=os.getloadavg()) for lay in layouts]
    floors = [WakeFloor(n, threads, agents, lay) for lay in layouts]
    try:
        for _ in range(rounds):
            for floor, result in zip(floors, results, strict=True):
                spread, late = floor.round()
                result.spread_ms.append(spread)
                result.late_ms.extend(late)
                time.sleep(gap_s)
    finally:
        for floor in floors:
            floor.close()
    return results


def row(name: str, values: list[float]) -> str:
    return (
        f"  {name:<34} {len(values):>5} {percentile(values, 50):>7.2f} "
        f"{percentile(values, 99):>7.2f} {max(values, default=float('nan')):>7.2f}"
    )


def report(r: WakeResult) -> None:
    workers = f" ({r.agents} workers of {r.threads // r.agents})" if r.agents > 1 else ""
    print(
        f"N = {r.n} processes x {r.threads} thread(s){workers}, {r.layout}; load average "
        f"before {r.load[0]:.2f} {r.load[1]:.2f} {r.load[2]:.2f}"
    )
    print(f"  {'(ms)':<34} {'n':>5} {'p50':>7} {'p99':>7} {'max':>7}")
    print(row("spread of first wakes (per round)", r.spread_ms))
    print(row("wake - instant (per worker)", r.late_ms))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="16,64,256", help="processes, comma-separated")
    parser.add_argument("--threads", default="1,2", help="threads per process, comma-separated")
    parser.add_argument("--agents", type=int, default=1, help="workers per process")
    parser.add_argument("--layouts", default="steps", help="steps,gate,leader (comma-separated)")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    layouts = tuple(args.layouts.split(","))
    for n in (int(s) for s in args.sizes.split(",")):
        for threads in (int(t) for t in args.threads.split(",")):
            for r in measure_wake_floor(
                n, args.rounds, threads, agents=args.agents, layouts=layouts
            ):
                report(r)
            print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
