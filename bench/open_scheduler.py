"""Open-mode scheduler accuracy: does the executor start queries when the schedule says?

In open mode (``mode = "open"``) worker.executor.Schedule hands out intended start times
at the target rate; each free connection thread takes the next one, sleeps until it, runs
the query and records latency from the intended start (corrected), the service time
(uncorrected) and the lag = actual start - intended start. This benchmark measures, for
one worker process's executor in-process against SQLite ``SELECT 1`` (per-connection
in-memory databases):

  * achieved rate (completed queries / duration) and as % of the target,
  * schedule lag p50 / p99 / max, merged from ``executor.last_schedule`` after every
    ``collect()`` (called once a second, as worker.agent's report loop does),
  * late (lag > 10 ms) and dropped counts,
  * corrected p99 (from the intended start) vs uncorrected service-time p99,

at 1,000, 5,000 and 20,000 queries/s with 8 and 16 connections, plus Poisson arrivals at
5,000 queries/s. Then the same through the real path, ``snowload run`` on the open5k
workload (written to a temporary file; its text is OPEN5K_TOML below) with ``--json``,
reading ``phases.MEASUREMENT.open``.

Two diagnostic rows separate the causes of lag: "sleep floor" threads take slots from the
same Schedule and sleep until them exactly like open_loop, but run no query, so their lag
is time.sleep's wake-up latency (timer slack, scheduler) plus GIL hand-off, nothing else.

Every measurement runs in a fresh process; the order of the configurations rotates per
repetition. Before each one the script waits (up to --quiet-wait s) for the host's other
processes to go quiet and records how many cores they used meanwhile ("other"): the 2
cores are shared with everything else on the host.

    python bench/open_scheduler.py              # 3 reps x 10 s per configuration, ~10 min
    python bench/open_scheduler.py --quick      # 1 rep x 4 s, no quiet wait
    python bench/open_scheduler.py --src repo=. --src spin=/tmp/spin   # A/B, interleaved

``--src [NAME=]DIR`` imports ``snowload``/``worker``/``controller`` from DIR instead of
this checkout (PYTHONPATH for every child, also the e2e run's controller and worker),
which is how a prototype (e.g. another sleeping strategy in open_loop) is measured
without touching the repo. Given several times, every configuration runs against each
DIR back to back within a repetition, so the variants share the host's conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchenv import CpuWatch, print_header, wait_for_quiet

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GOAL_RATE = 5000.0
GOAL_LAG_P99_MS = 2.0

OPEN_TOML = """
name = "bench-open-scheduler"
[target]
driver = "sqlite"
database = ":memory:"
[load]
mode = "open"
rate = {rate}
arrival = "{arrival}"
workers = 1
connections = {connections}
warmup = "0s"
duration = "{seconds}s"
[[query]]
name = "select1"
sql = "SELECT 1"
"""

OPEN5K_TOML = """\
# Open-mode scheduler accuracy through the real path (bench/open_scheduler.py):
#   snowload run open5k.toml --json
# Each connection opens its own in-memory SQLite database, so the query costs next to
# nothing and what is measured is the schedule: lag = actual start - intended start.
name = "bench-open5k"
description = "open model, 5,000 SELECT 1 per second, 1 worker, 16 connections"

[target]
driver = "sqlite"
database = ":memory:"

[load]
mode = "open"
rate = 5000
arrival = "constant"
workers = 1
connections = 16
warmup = "1s"
duration = "10s"

[[query]]
name = "select1"
sql = "SELECT 1"
"""


@dataclass(frozen=True)
class Config:
    kind: str
    """"executor", "floor" (sleep only, no query) or "e2e"."""
    rate: float
    connections: int
    arrival: str = "constant"
    src: str = str(ROOT)
    variant: str = ""
    """Name of the checkout under test; shown only when several are compared."""

    def same_run(self, other: Config) -> bool:
        """The same configuration, maybe another checkout."""
        mine = (self.kind, self.rate, self.connections, self.arrival)
        return mine == (other.kind, other.rate, other.connections, other.arrival)

    @property
    def label(self) -> str:
        arr = "" if self.arrival == "constant" else f" {self.arrival}"
        name = {"executor": "executor", "floor": "sleep floor", "e2e": "snowload run"}
        pre = f"[{self.variant}] " if self.variant else ""
        return f"{pre}{name[self.kind]} {self.rate:,.0f}/s {self.connections}c{arr}"


# --------------------------------------------------------------------------- children


def _ms(us: float) -> float:
    return float(us) / 1000.0


def _summary(hist: Any) -> dict[str, float]:
    from snowload import hdr

    p = hdr.percentiles(hist)
    return {"count": p.count, "p50_ms": p.p50_ms, "p99_ms": p.p99_ms, "max_ms": p.max_ms}


def child_executor(rate: float, connections: int, arrival: str, seconds: float) -> dict[str, Any]:
    import resource

    from snowload import hdr
    from snowload.v1 import common_pb2
    from snowload.workload import parse_toml
    from worker import executor as executor_module
    from worker.drivers import get_driver
    from worker.executor import Executor, RunPlan
    from worker.generators import Sequences

    workload = parse_toml(
        OPEN_TOML.format(rate=rate, arrival=arrival, connections=connections, seconds=seconds)
    )
    plan = RunPlan(
        run_id="bench-open-scheduler",
        workload=workload,
        worker_index=0,
        connections=connections,
        sequences=Sequences(0, 1),
        rate=rate,
    )
    measurement = common_pb2.STATE_MEASUREMENT
    ex = Executor(plan, get_driver(workload.target.driver), phase=measurement)
    ex.open_connections()

    # During the run the main thread does what worker.agent's report loop does once a
    # second: collect(), then encode each histogram for the wire. Merging waits until the
    # load has stopped, so the harness adds no GIL time of its own.
    encoded: list[tuple[str, bytes]] = []
    late = dropped = other_phase = 0
    collect_ms: list[float] = []
    per_second: list[int] = []

    def take() -> None:
        nonlocal late, dropped, other_phase
        c0 = time.perf_counter()
        cells = ex.collect()
        collect_ms.append((time.perf_counter() - c0) * 1000)
        n = 0
        for (phase, _kind), cell in cells.items():
            if phase != measurement:
                other_phase += cell.count
                continue
            n += cell.count
            encoded.append(("corrected", hdr.encode(cell.histogram)))
            if cell.service is not None:
                encoded.append(("service", hdr.encode(cell.service)))
        per_second.append(n)
        for phase, sched in ex.last_schedule.items():
            if phase != measurement:
                continue
            encoded.append(("lag", hdr.encode(sched.lag)))
            late += sched.late
            dropped += sched.dropped

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    ex.start()
    k = 1
    end = t0 + seconds
    while t0 + k < end:  # once per second, as worker.agent's report loop does
        time.sleep(max(0.0, t0 + k - time.perf_counter()))
        take()
        k += 1
    time.sleep(max(0.0, end - time.perf_counter()))
    elapsed = time.perf_counter() - t0
    ex.stop(5.0)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    take()
    merged = {name: hdr.new_histogram() for name in ("corrected", "service", "lag")}
    for name, data in encoded:
        hdr.merge_into(merged[name], data)
    corrected, service, lag = merged["corrected"], merged["service"], merged["lag"]
    queries = int(corrected.get_total_count())
    cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / elapsed
    return {
        "queries": queries,
        "elapsed_s": elapsed,
        "achieved": queries / elapsed,
        "lag": _summary(lag),
        "late": late,
        "dropped": dropped,
        "corrected": _summary(corrected),
        "service": _summary(service),
        "collect_ms_max": max(collect_ms),
        "collect_ms_median": statistics.median(collect_ms),
        "child_cores": cpu,
        "other_phase": other_phase,
        "executor_file": executor_module.__file__,
        "per_second": per_second,
    }


def child_floor(rate: float, connections: int, seconds: float) -> dict[str, Any]:
    """open_loop without the query: take a slot from the real Schedule, sleep until it
    the same way, record the lag. What remains is sleep wake-up latency + GIL hand-off."""
    from snowload import hdr
    from worker.executor import Schedule

    schedule = Schedule(rate, poisson=False)
    lags: list[list[int]] = [[] for _ in range(connections)]
    stop = [False]
    go = threading.Event()

    def loop(i: int) -> None:
        perf = time.perf_counter_ns
        sleep = time.sleep
        append = lags[i].append
        go.wait()
        while not stop[0]:
            intended = schedule.next()
            wait = intended - perf()
            if wait > 0:
                sleep(wait / 1e9)
            append(perf() - intended)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    schedule.start()
    go.set()
    time.sleep(seconds)
    stop[0] = True
    elapsed = time.perf_counter() - t0
    for t in threads:
        t.join()
    hist = hdr.new_histogram()
    for lst in lags:
        for v in lst:
            hist.record_value(max(0, v // 1000))
    n = int(hist.get_total_count())
    return {
        "queries": n,
        "elapsed_s": elapsed,
        "achieved": n / elapsed,
        "lag": _summary(hist),
        "late": sum(1 for lst in lags for v in lst if v > 10_000_000),
        "dropped": 0,
    }


# ----------------------------------------------------------------------------- parent


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    if src != ROOT:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH", "")) if p)
    return env


def _run_child(cmd: list[str], timeout_s: float, src: Path) -> tuple[dict[str, Any] | None, str]:
    watch = CpuWatch()
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=src,
            env=_env(src),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout_s:.0f}s"
    use = watch.stop()
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return None, f"exit {proc.returncode}: {' | '.join(tail)}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return None, "no JSON on stdout"
    out: dict[str, Any] = json.loads(lines[-1])
    out["own_cores"] = use.own_cores
    out["other_cores"] = use.other_cores
    return out, ""


def _run_e2e(src: Path, seconds: float, keep: str | None) -> tuple[dict[str, Any] | None, str]:
    with tempfile.TemporaryDirectory(prefix="snowload-bench-open-") as tmp:
        workload = Path(tmp) / "open5k.toml"
        workload.write_text(OPEN5K_TOML, encoding="utf-8")
        cmd = [
            sys.executable,
            "-m",
            "snowload.cli",
            "run",
            str(workload),
            "--duration",
            f"{seconds:g}s",
            "--json",
            # a throwaway results database: benchmark runs stay out of the user's history
            "--db",
            str(Path(tmp) / "results.db"),
        ]
        watch = CpuWatch()
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=seconds + 120,
                cwd=src,
                env=_env(src),
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, "timed out"
        use = watch.stop()
    if keep:  # the whole summary (and stderr), to look into an odd run afterwards
        Path(keep).mkdir(parents=True, exist_ok=True)
        stem = Path(keep) / f"e2e-{time.strftime('%H%M%S')}-{os.getpid()}-{time.monotonic_ns()}"
        stem.with_suffix(".json").write_text(proc.stdout, encoding="utf-8")
        stem.with_suffix(".stderr").write_text(proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-2:]
        return None, f"exit {proc.returncode}: {' | '.join(tail)}"
    m = json.loads(proc.stdout)["phases"]["MEASUREMENT"]
    op = m["open"]
    return {
        "queries": m["count"],
        "elapsed_s": m["duration_s"],
        "achieved": op["achieved_rate"],
        "target_rate": op["target_rate"],
        "lag": {k: op["lag"].get(k, 0.0) for k in ("p50_ms", "p99_ms", "max_ms")},
        "late": op["late"],
        "dropped": op["dropped"],
        "corrected": {"p99_ms": m["p99_ms"]},
        "service": {"p99_ms": op["service"].get("p99_ms", 0.0)},
        "own_cores": use.own_cores,
        "other_cores": use.other_cores,
    }, ""


def measure(cfg: Config, args: argparse.Namespace) -> tuple[dict[str, Any] | None, str]:
    src = Path(cfg.src)
    me = [sys.executable, str(Path(__file__).resolve()), "--child", cfg.kind]
    common = ["--rate", f"{cfg.rate:g}", "--connections", str(cfg.connections)]
    if cfg.kind == "executor":
        cmd = [*me, *common, "--arrival", cfg.arrival, "--seconds", f"{args.seconds:g}"]
        return _run_child(cmd, args.seconds + 60, src)
    if cfg.kind == "floor":
        return _run_child([*me, *common, "--seconds", f"{args.floor_seconds:g}"], 60, src)
    if cfg.kind == "e2e":
        return _run_e2e(src, args.seconds, args.keep_e2e)
    raise ValueError(cfg.kind)


def sources(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(name, resolved dir) per --src; the name is empty when there is only one."""
    out = []
    for item in args.src or [str(ROOT)]:
        name, _, path = item.rpartition("=")
        src = Path(path).resolve()
        out.append((name or ("repo" if src == ROOT else src.name), str(src)))
    if len(out) == 1:
        return [("", out[0][1])]
    return out


def configs(args: argparse.Namespace) -> list[Config]:
    """Each configuration once per checkout, the checkouts back to back."""
    out: list[Config] = []
    conns = [int(c) for c in args.connections.split(",")]
    srcs = sources(args)
    for c in conns:
        for r in (float(x) for x in args.rates.split(",")):
            out.extend(Config("executor", r, c, "constant", d, n) for n, d in srcs)
        if not args.no_poisson:
            out.extend(Config("executor", GOAL_RATE, c, "poisson", d, n) for n, d in srcs)
    if not args.no_floor:  # no snowload code but Schedule: measured once
        out.append(Config("floor", GOAL_RATE, 1, "constant", srcs[0][1]))
        out.append(Config("floor", GOAL_RATE, max(conns), "constant", srcs[0][1]))
    if not args.no_e2e:
        out.extend(Config("e2e", GOAL_RATE, 16, "constant", d, n) for n, d in srcs)
    return out


def measure_quietly(cfg: Config, args: argparse.Namespace, rep: int) -> dict[str, Any] | None:
    """One measurement; repeated (up to --retries times) while other processes used more
    than --max-other cores during it. Keeps the least disturbed attempt."""
    best: dict[str, Any] | None = None
    for attempt in range(1, args.retries + 2):
        before = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else float("nan")
        out, err = measure(cfg, args)
        if out is None:
            print(f"  rep {rep} {cfg.label:<34} FAILED: {err}", flush=True)
            return best
        out.update(rep=rep, attempt=attempt, other_cores_before=before)
        disturbed = out["other_cores"] > args.max_other
        lag = out["lag"]
        print(
            f"  rep {rep} {cfg.label:<34} {out['achieved']:>8,.0f}/s  lag p50 "
            f"{lag['p50_ms']:.3f} p99 {lag['p99_ms']:.3f} max {lag['max_ms']:.1f} ms  "
            f"late {out['late']:,}  (own {out['own_cores']:.2f}, other "
            f"{out['other_cores']:.2f} cores)" + ("  disturbed" if disturbed else ""),
            flush=True,
        )
        if best is None or out["other_cores"] < best["other_cores"]:
            best = out
        if not disturbed:
            break
    return best


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _cell(values: list[float], fmt: str) -> str:
    """median, and (min-max) when there is more than one repetition."""
    if not values:
        return "-"
    m = format(_med(values), fmt)
    if len(values) == 1:
        return m
    return f"{m} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def report(results: dict[Config, list[dict[str, Any]]]) -> dict[str, Any]:
    w = max([32, *(len(c.label) for c in results)])
    header = (
        f"{'configuration':<{w}} {'achieved/s':>24} {'% tgt':>6} {'lag p50 ms':>11} "
        f"{'lag p99 ms':>20} {'lag max ms':>11} {'late':>7} {'drop':>5} "
        f"{'corr p99':>9} {'svc p99':>8} {'collect':>8} {'other':>6} {'n':>2}"
    )
    print(header)
    print("-" * len(header))
    summary: dict[str, Any] = {}
    for cfg, rs in results.items():
        if not rs:
            print(f"{cfg.label:<{w}} no successful run")
            continue

        def col(path: str, rs: list[dict[str, Any]] = rs) -> list[float]:
            vals = []
            for r in rs:
                v: Any = r
                for part in path.split("."):
                    v = v.get(part) if isinstance(v, dict) else None
                if v is not None:
                    vals.append(float(v))
            return vals

        achieved = col("achieved")
        pct = [a / cfg.rate * 100 for a in achieved]
        is_floor = cfg.kind == "floor"
        corr = "-" if is_floor else f"{_med(col('corrected.p99_ms')):.2f}"
        svc = "-" if is_floor else f"{_med(col('service.p99_ms')):.3f}"
        coll = col("collect_ms_median")
        print(
            f"{cfg.label:<{w}} {_cell(achieved, ',.0f'):>24} {_med(pct):>5.1f}% "
            f"{_med(col('lag.p50_ms')):>11.3f} {_cell(col('lag.p99_ms'), '.2f'):>20} "
            f"{_med(col('lag.max_ms')):>11.1f} {_med(col('late')):>7,.0f} "
            f"{_med(col('dropped')):>5,.0f} {corr:>9} {svc:>8} "
            f"{(f'{_med(coll):.1f}' if coll else '-'):>8} "
            f"{_med(col('other_cores')):>6.2f} {len(rs):>2}"
        )
        summary[cfg.label] = {
            "config": cfg.__dict__,
            "median_achieved": _med(achieved),
            "median_pct_of_target": _med(pct),
            "median_lag_p50_ms": _med(col("lag.p50_ms")),
            "median_lag_p99_ms": _med(col("lag.p99_ms")),
            "median_lag_max_ms": _med(col("lag.max_ms")),
            "runs": rs,
        }
    print()
    print("achieved: completed queries / duration, median (min-max) over repetitions; % tgt:")
    print("median achieved / target. lag: actual start - intended start, merged over every")
    print("collect() of the run; late: lag > 10 ms; drop: dropped (max_lag; unset here).")
    print("corr p99: latency from the intended start; svc p99: service time (start to end).")
    print("collect: wall ms per collect() call (median), GIL waits included; in-process only.")
    print("other: cores used by other processes on the host during the run (of 2).")
    print("sleep floor: the same Schedule and sleep, no query: wake-up latency + GIL only.")
    print("Medians of per-run percentiles, except the ranges shown.")
    print()
    print(f"Goal: lag p99 <= {GOAL_LAG_P99_MS:g} ms at {GOAL_RATE:,.0f} queries/s (constant):")
    for cfg, rs in results.items():
        if cfg.kind == "floor" or cfg.rate != GOAL_RATE or cfg.arrival != "constant" or not rs:
            continue
        p99 = _med([r["lag"]["p99_ms"] for r in rs])
        worst = max(r["lag"]["p99_ms"] for r in rs)
        ok = "MET" if p99 <= GOAL_LAG_P99_MS else "NOT MET"
        print(f"  {cfg.label:<{w}} median {p99:.2f} ms, worst {worst:.2f} ms: {ok}")
        summary[cfg.label]["goal_met"] = p99 <= GOAL_LAG_P99_MS
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rates", default="1000,5000,20000", help="total queries/s")
    parser.add_argument("--connections", default="8,16", help="comma-separated")
    parser.add_argument("--no-poisson", action="store_true")
    parser.add_argument("--no-floor", action="store_true", help="skip the sleep-floor rows")
    parser.add_argument("--no-e2e", action="store_true", help="skip the snowload run row")
    parser.add_argument("--floor-seconds", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="1 rep x 4 s, no quiet wait")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="before each run wait up to this long for other processes to use < 0.3 cores",
    )
    parser.add_argument(
        "--max-other",
        type=float,
        default=0.3,
        help="a run during which other processes used more cores than this is disturbed "
        "and repeated (see --retries)",
    )
    parser.add_argument("--retries", type=int, default=2, help="repeats of a disturbed run")
    parser.add_argument(
        "--src",
        action="append",
        metavar="[NAME=]DIR",
        help="checkout to import snowload from (default: this one); repeat to compare",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every number to FILE")
    parser.add_argument("--keep-e2e", metavar="DIR", help="keep each snowload run's JSON in DIR")
    parser.add_argument("--child", choices=("executor", "floor"), help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=GOAL_RATE, help=argparse.SUPPRESS)
    parser.add_argument("--arrival", default="constant", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "executor":
        print(
            json.dumps(child_executor(args.rate, int(args.connections), args.arrival, args.seconds))
        )
        return 0
    if args.child == "floor":
        print(json.dumps(child_floor(args.rate, int(args.connections), args.seconds)))
        return 0

    if args.quick:
        args.seconds, args.reps, args.quiet_wait, args.floor_seconds = 4.0, 1, 0.0, 2.0
        args.retries = 0
    env = print_header("open-mode scheduler accuracy: SELECT 1 on in-memory SQLite")
    print(
        f"{args.seconds:g} s per run, {args.reps} repetition(s), collect() once a second, "
        f"pid {os.getpid()}"
    )
    for name, src in sources(args):
        here = " (this checkout)" if Path(src) == ROOT else ""
        print(f"code under test: {name + ': ' if name else ''}{src}{here}")
    print(f"switch interval {sys.getswitchinterval() * 1000:g} ms, ", end="")
    try:
        slack = Path("/proc/self/timerslack_ns").read_text(encoding="utf-8").strip()
        print(f"timer slack {int(slack) / 1000:g} us")
    except OSError:
        print("timer slack unknown")
    print(flush=True)

    todo = configs(args)
    results: dict[Config, list[dict[str, Any]]] = {c: [] for c in todo}
    groups: list[list[Config]] = []
    for c in todo:
        if groups and groups[-1][0].same_run(c):
            groups[-1].append(c)
        else:
            groups.append([c])
    for rep in range(args.reps):
        # rotate whole groups, so that the variants of a configuration stay back to back
        shift = rep % len(groups)
        order = [c for g in groups[shift:] + groups[:shift] for c in g]
        for cfg in order:
            out = measure_quietly(cfg, args, rep + 1)
            if out is not None:
                results[cfg].append(out)
    print()
    summary = report(results)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"environment": env, "args": vars(args), "results": summary}, indent=2),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
