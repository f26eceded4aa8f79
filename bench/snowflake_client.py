"""How many worker processes a Snowflake workload needs: the client's own cost.

A local stand-in for Snowflake's REST endpoints (bench/snowflake_stub.py, a process of its
own) answers every login and query at once with a canned one-row result, so only the
client is measured: snowflake-connector-python alone, and snowload's driver on each of
its statement paths (``options.statement_path``).

  bare      N threads, each with its own connection, ``cursor.execute(sql, [id],
            _statement_params={"QUERY_TAG": ...})`` + ``fetchall()`` in a tight loop: what
            the connector alone allows one process.
  connector snowload's worker.executor.Executor with the Snowflake driver on the
  lean      connector's cursor / on its lean path, N connection threads, phase
            MEASUREMENT, ``collect()`` once a second as the agent does: what one worker
            process delivers.
  breakdown one thread: the bare connector, the connector path and the lean path, blocks
            of 200 queries interleaved: µs of CPU per query each.
  rss       one process opens K connections (through the driver, 32 at a time) and runs
            one query on each; RSS growth per connection, K = 1, 100, 250, 500, per path.

Each measurement runs in a fresh process; CPU is the process's user+system time over the
window, divided by the queries completed in it (µs of CPU per query). Client and stand-in
share this host's cores, so the stand-in's own CPU is reported too, and the load average.

    python bench/snowflake_client.py                 # 3 x 8 s per row
    python bench/snowflake_client.py --quick         # 1 x 3 s, smoke test
    python bench/snowflake_client.py --profile       # + cProfile of one connection's loop
    python bench/snowflake_client.py --connections 8 --reps 2 --seconds 5
    python bench/snowflake_client.py --src before=/tmp/old --src after=. --rounds 4

``--src [NAME=]DIR`` (repeatable) runs only the breakdown, once per source per round,
sources alternating, each importing ``snowload``/``worker`` from its DIR (e.g. a
``git archive`` of an earlier commit): an A/B of the per-query CPU of a driver change,
with the bare connector in the same process as the yardstick.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PATHS = ("connector", "lean")
"""snowload's two statement paths (``options.statement_path``)."""
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SQL = "SELECT total FROM orders WHERE id = ?"
TAG = "sl/bench000/w0/M/lookup"
WORKLOAD = """
name = "sf-client-bench"
[target]
driver = "snowflake"
connection = "stub"
options = {{ statement_path = "{path}" }}
[load]
connections = {connections}
duration = "{seconds}s"
max_parallel_connects = 32
[[query]]
name = "lookup"
sql = "{sql}"
params = [{{ int = [1, 100000] }}]
"""


def write_home(port: int) -> Path:
    home = Path(tempfile.mkdtemp(prefix="sf-client-bench-"))
    toml = home / "connections.toml"
    toml.write_text(
        f'[stub]\naccount = "stub"\nuser = "bench"\npassword = "bench-not-a-secret"\n'
        f'host = "127.0.0.1"\nport = {port}\nprotocol = "http"\n'
        'database = "SLDB"\nschema = "PUBLIC"\n',
        encoding="utf-8",
    )
    toml.chmod(0o600)
    return home


def start_stub() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "snowflake_stub.py")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, int(line.split()[-1])


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# ------------------------------------------------------------------------ children


def child_bare(connections: int, seconds: float) -> dict[str, Any]:
    import snowflake.connector

    conns = [
        snowflake.connector.connect(
            connection_name="stub",
            paramstyle="qmark",
            platform_detection_timeout_seconds=0.0,
            client_session_keep_alive=False,
            session_parameters={"USE_CACHED_RESULT": "FALSE"},
        )
        for _ in range(connections)
    ]
    counts = [0] * connections
    stop = threading.Event()
    go = threading.Barrier(connections + 1)

    def loop(i: int) -> None:
        cur = conns[i].cursor()
        params = {"QUERY_TAG": TAG}
        go.wait()
        n = 0
        while not stop.is_set():
            cur.execute(SQL, [n], _statement_params=params)
            cur.fetchall()
            n += 1
        counts[i] = n

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    go.wait()
    t0, c0 = time.perf_counter(), cpu_s()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed, cpu = time.perf_counter() - t0, cpu_s() - c0
    for c in conns:
        c.close()
    total = sum(counts)
    return {"queries": total, "qps": total / elapsed, "cpu_us": cpu / max(1, total) * 1e6}


def child_snowload(connections: int, seconds: float, path: str) -> dict[str, Any]:
    from snowload.v1 import common_pb2
    from snowload.workload import parse_toml
    from worker.drivers import get_driver
    from worker.executor import Executor, RunPlan
    from worker.generators import Sequences

    workload = parse_toml(
        WORKLOAD.format(connections=connections, seconds=seconds, sql=SQL, path=path)
    )
    plan = RunPlan(
        run_id="bench000-0000",
        workload=workload,
        worker_index=0,
        connections=connections,
        sequences=Sequences(0, 1),
    )
    ex = Executor(plan, get_driver(workload.target.driver), phase=common_pb2.STATE_PREPARING)
    ex.open_connections()
    ex.set_phase(common_pb2.STATE_MEASUREMENT)
    total = 0

    def take() -> None:
        nonlocal total
        total += sum(cell.count for cell in ex.collect().values())

    ex.start()
    time.sleep(0.5)  # every thread in its loop
    take()
    total = 0
    t0, c0 = time.perf_counter(), cpu_s()
    k = 1
    while t0 + k < t0 + seconds:
        time.sleep(max(0.0, t0 + k - time.perf_counter()))
        take()
        k += 1
    time.sleep(max(0.0, t0 + seconds - time.perf_counter()))
    take()
    elapsed, cpu = time.perf_counter() - t0, cpu_s() - c0
    ex.stop(5.0)
    errors = sum(len(t.errors) for t in ex.threads)
    return {
        "queries": total,
        "qps": total / elapsed,
        "cpu_us": cpu / max(1, total) * 1e6,
        "errors": errors,
    }


def child_rss(counts: list[int], path: str) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from snowload.workload import parse_toml
    from worker.drivers import get_driver
    from worker.tags import Tag

    workload = parse_toml(WORKLOAD.format(connections=1, seconds=1, sql=SQL, path=path))
    driver = get_driver(workload.target.driver)
    query = workload.queries[0]
    opened: list[Any] = []
    # the connector's imports and first-use caches, before the baseline
    warm = driver.connect(workload.target, 30)
    warm.execute(warm.compile(query, Tag("bench000", 0, 4, "lookup")), [1])
    base = rss_mb()
    out: dict[str, Any] = {"base_mb": base, "points": []}

    def one(_: int) -> Any:
        conn = driver.connect(workload.target, 30)
        conn.execute(conn.compile(query, Tag("bench000", 0, 4, "lookup")), [1])
        return conn

    with ThreadPoolExecutor(32) as pool:
        for k in counts:
            opened.extend(pool.map(one, range(k - len(opened))))
            now = rss_mb()
            out["points"].append({"connections": k, "rss_mb": now, "per_conn_mb": (now - base) / k})
    for conn in opened:
        conn.close()
    warm.close()
    return out


def _run_one(conn: Any, compiled: Any, i: int) -> None:
    conn.execute(compiled, [i])


def child_breakdown(blocks: int) -> dict[str, Any]:
    """CPU per query on one thread, blocks of 200 queries interleaved (so a busy host
    disturbs all alike): the bare connector (cursor.execute + fetchall), and snowload's
    driver on the connector path and on the lean path."""
    import snowflake.connector

    from snowload.workload import parse_toml
    from worker.drivers import get_driver
    from worker.tags import Tag

    bare = snowflake.connector.connect(
        connection_name="stub",
        paramstyle="qmark",
        platform_detection_timeout_seconds=0.0,
        client_session_keep_alive=False,
        session_parameters={"USE_CACHED_RESULT": "FALSE"},
    )
    cur = bare.cursor()
    params = {"QUERY_TAG": TAG}
    runs: dict[str, Any] = {}
    opened: list[Any] = [bare]
    for path in ("connector", "lean"):
        workload = parse_toml(WORKLOAD.format(connections=1, seconds=1, sql=SQL, path=path))
        conn = get_driver(workload.target.driver).connect(workload.target, 30)
        opened.append(conn)
        compiled = conn.compile(workload.queries[0], Tag("bench000", 0, 4, "lookup"))
        runs[path] = functools.partial(_run_one, conn, compiled)

    def run_bare(i: int) -> None:
        cur.execute(SQL, [i], _statement_params=params)
        cur.fetchall()

    runs["bare"] = run_bare
    spent = dict.fromkeys(runs, 0.0)
    order = list(runs)
    for b in range(blocks):
        for name in order[b % len(order) :] + order[: b % len(order)]:
            c0 = cpu_s()
            for i in range(200):
                runs[name](i)
            spent[name] += cpu_s() - c0
    for conn in opened:
        conn.close()
    return {k: v / (blocks * 200) * 1e6 for k, v in spent.items()}


def child_profile(seconds: float, path: str) -> dict[str, Any]:
    import cProfile
    import io
    import pstats

    from snowload.workload import parse_toml
    from worker.drivers import get_driver
    from worker.tags import Tag

    workload = parse_toml(WORKLOAD.format(connections=1, seconds=1, sql=SQL, path=path))
    conn = get_driver(workload.target.driver).connect(workload.target, 30)
    compiled = conn.compile(workload.queries[0], Tag("bench000", 0, 4, "lookup"))
    for i in range(50):
        conn.execute(compiled, [i])
    prof = cProfile.Profile()
    n = 0
    end = time.perf_counter() + seconds
    prof.enable()
    while time.perf_counter() < end:
        conn.execute(compiled, [n])
        n += 1
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    conn.close()
    return {"queries": n, "text": buf.getvalue()}


# ------------------------------------------------------------------------ parent


CONSULTED = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "requests_ca_bundle"}
CONSULTED |= {"curl_ca_bundle"}


def run_child(
    args: list[str], home: Path, timeout_s: float, keep_env: bool = False, src: Path = ROOT
) -> dict[str, Any]:
    env = dict(os.environ, SNOWFLAKE_HOME=str(home), PYTHONPATH=str(src))
    if not keep_env:  # a container's environment: no proxy, no CA bundle (http stand-in)
        env = {k: v for k, v in env.items() if k.lower() not in CONSULTED}
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def stub_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--connections", default="1,8,32", help="threads per process")
    parser.add_argument("--rss", default="1,100,250,500", help="connection counts for RSS")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--src",
        action="append",
        metavar="[NAME=]DIR",
        help="A/B of the breakdown: import snowload/worker from DIR (repeatable)",
    )
    parser.add_argument("--rounds", type=int, default=4, help="rounds of --src")
    parser.add_argument(
        "--keep-env",
        action="store_true",
        help="keep proxy and CA-bundle variables in the measured processes' environment",
    )
    args = parser.parse_args()
    if args.child:
        mode, rest = args.child[0], args.child[1:]
        if mode == "bare":
            out = child_bare(int(rest[0]), float(rest[1]))
        elif mode in PATHS:
            out = child_snowload(int(rest[0]), float(rest[1]), mode)
        elif mode == "breakdown":
            out = child_breakdown(int(rest[0]))
        elif mode == "rss":
            out = child_rss([int(x) for x in rest[0].split(",")], rest[1])
        else:
            out = child_profile(float(rest[0]), rest[1])
        print(json.dumps(out))
        return
    if args.quick:
        args.seconds, args.reps = 3.0, 1
    sys.path.insert(0, str(HERE))
    from benchenv import print_header

    print_header("snowflake client: one worker process against an instant stand-in")
    stub, port = start_stub()
    home = write_home(port)
    try:
        if args.src:
            compare_sources(args, home)
            return
        for n in (int(x) for x in args.connections.split(",")):
            for mode in ("bare", *PATHS):
                rows = []
                for _ in range(args.reps):
                    load0, s0 = os.getloadavg()[0], stub_cpu(stub.pid)
                    cmd = [mode, str(n), str(args.seconds)]
                    r = run_child(cmd, home, args.seconds + 120, args.keep_env)
                    r["stub_cores"] = (stub_cpu(stub.pid) - s0) / args.seconds
                    r["load"] = max(load0, os.getloadavg()[0])
                    rows.append(r)
                qps = statistics.median(r["qps"] for r in rows)
                each = ", ".join(f"{r['qps']:.0f}" for r in rows)
                cpu = statistics.median(r["cpu_us"] for r in rows)
                print(
                    f"{mode:9s} {n:4d} threads: {qps:7.0f} q/s  {cpu:6.0f} µs CPU/query  "
                    f"(runs {each}; stand-in "
                    f"{statistics.median(r['stub_cores'] for r in rows):.2f} cores; load "
                    f"{max(r['load'] for r in rows):.1f})",
                    flush=True,
                )
        r = run_child(["breakdown", str(6 if args.quick else 15)], home, 600, args.keep_env)
        print(
            "one thread, interleaved blocks: "
            + ", ".join(f"{k} {v:.0f} µs CPU/query" for k, v in r.items())
            + f" (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        for path in PATHS:
            r = run_child(["rss", args.rss, path], home, 600, args.keep_env)
            print(f"RSS, {path} path: {r['base_mb']:.1f} MB after one warm connection")
            for p in r["points"]:
                print(
                    f"  {p['connections']:4d} connections: {p['rss_mb']:7.1f} MB, "
                    f"{p['per_conn_mb']:.3f} MB per connection"
                )
        if args.profile:
            for path in PATHS:
                cmd = ["profile", str(args.seconds), path]
                r = run_child(cmd, home, args.seconds + 60, args.keep_env)
                print(f"cProfile of one {path} connection, {r['queries']} queries:\n{r['text']}")
    finally:
        stub.terminate()
        stub.wait(10)


def compare_sources(args: argparse.Namespace, home: Path) -> None:
    """The breakdown once per source per round, sources alternating (their order rotating
    by round); medians per source of CPU µs per query, and of its ratio to the bare
    connector's in the same process."""
    sources = []
    for item in args.src:
        name, _, path = item.rpartition("=")
        src = Path(path).resolve()
        sources.append((name or src.name, src))
    blocks = str(6 if args.quick else 15)
    got: dict[str, list[dict[str, float]]] = {name: [] for name, _ in sources}
    for r in range(args.rounds):
        for name, src in sources[r % len(sources) :] + sources[: r % len(sources)]:
            load = os.getloadavg()[0]
            out = run_child(["breakdown", blocks], home, 600, args.keep_env, src)
            out["load"] = max(load, os.getloadavg()[0])
            got[name].append(out)
            print(
                f"round {r + 1} {name:10s} "
                + ", ".join(f"{k} {v:.0f}" for k, v in out.items() if k != "load")
                + f" µs CPU/query (load {out['load']:.1f})",
                flush=True,
            )
    for name, rows in got.items():
        med = {k: statistics.median(o[k] for o in rows) for k in ("bare", *PATHS)}
        ratio = {p: statistics.median(o[p] / o["bare"] for o in rows) for p in PATHS}
        print(
            f"{name:10s} median of {len(rows)}: "
            + ", ".join(f"{k} {v:.0f} µs" for k, v in med.items())
            + "; / bare: "
            + ", ".join(f"{p} {v:.3f}" for p, v in ratio.items())
            + f" (load {min(o['load'] for o in rows):.1f}-{max(o['load'] for o in rows):.1f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
