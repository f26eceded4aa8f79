"""snowload across hosts: network namespaces, slow links, partitions, PostgreSQL's log.

The lab (tests/net_cluster.py): a controller host, three worker hosts whose links to the
controller have one-way delays of 1, 10 and 40 ms, and a PostgreSQL host; real
``snowload controller`` and ``snowload worker`` processes. Partitions pull a host's
cable at the switch. The oracle is PostgreSQL's own statement log: every statement it
executed, with the tag (run, worker, phase, kind) the worker gave it, on the server's
clock.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from controller import lifecycle as lc
from snowload.v1 import run_pb2, run_pb2_grpc
from tests import netns
from tests.in_flight import issued_after
from tests.net_cluster import Deployment, Lab, Statement, lab, statements
from tests.pg import parse_failures

pytestmark = pytest.mark.slow

WORKLOAD = """
name = "net-{name}"
[target]
driver = "postgres"
dsn = "host={pg_host} port={pg_port} dbname=postgres user=postgres"
[setup]
sql = [
  "CREATE TABLE IF NOT EXISTS kv (k BIGINT PRIMARY KEY, v TEXT)",
  "INSERT INTO kv SELECT g, 'x' FROM generate_series(1, 100) g ON CONFLICT DO NOTHING",
]
[load]
workers = 3
connections = {connections}
warmup = "{warmup}"
duration = "{duration}"
think_time = "{think}"
on_worker_loss = "{policy}"
[[query]]
name = "get"
sql = "SELECT v FROM kv WHERE k = ?"
params = [{{ int = [1, 100] }}]
"""


@pytest.fixture(scope="module")
def net() -> Iterator[Lab]:
    why = netns.unavailable()
    if why is not None:
        pytest.skip(f"no multi-host lab: {why}")
    with lab() as made:
        yield made


@pytest.fixture
async def deploy(net: Lab, tmp_path: Path) -> AsyncIterator[Deployment]:
    d = Deployment(net, tmp_path)
    yield d
    d.close()


def workload(
    net: Lab,
    name: str,
    *,
    duration: str = "4s",
    warmup: str = "1s",
    think: str = "5ms",
    connections: int = 6,
    policy: str = "fail",
) -> str:
    return WORKLOAD.format(
        name=name,
        pg_host=net.pg.host,
        pg_port=net.pg.port,
        duration=duration,
        warmup=warmup,
        think=think,
        connections=connections,
        policy=policy,
    )


async def start_run(stub: run_pb2_grpc.RunServiceStub, text: str) -> str:
    started = await stub.StartRun(run_pb2.StartRunRequest(workload_toml=text), timeout=10)
    return started.run.run_id


async def wait_state(
    stub: run_pb2_grpc.RunServiceStub, run_id: str, states: set[int], timeout_s: float
) -> run_pb2.Run:
    deadline = time.monotonic() + timeout_s
    while True:
        got = await stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)
        if got.run.state in states:
            return got.run
        assert time.monotonic() < deadline, f"run still {lc.state_name(got.run.state)}"
        await asyncio.sleep(0.1)


async def wait_measuring(
    stub: run_pb2_grpc.RunServiceStub, run_id: str, seconds: int, timeout_s: float = 30
) -> None:
    """Until the run is in MEASUREMENT with ``seconds`` complete seconds."""
    async for update in stub.WatchRun(run_pb2.WatchRunRequest(run_id=run_id), timeout=timeout_s):
        if update.run.state == lc.MEASUREMENT and update.progress.latest.second >= seconds:
            return
        assert not lc.is_terminal(update.run.state), update.run.message
    raise AssertionError("the run ended before MEASUREMENT")


def run_counts(run: run_pb2.Run) -> Counter[tuple[int, str]]:
    return Counter(
        {
            (phase.phase, kind): stats.count
            for phase in run.summary.phases
            for kind, stats in phase.by_kind.items()
            if stats.count
        }
    )


def logged_counts(stmts: list[Statement]) -> Counter[tuple[int, str]]:
    return Counter((s.tag.phase, s.tag.kind) for s in stmts)


def hosts_by_index(run: run_pb2.Run) -> dict[int, str]:
    return {w.index: w.worker_id for w in run.run_workers}


def per_host(stmts: list[Statement]) -> Counter[str]:
    return Counter(s.host for s in stmts)


async def test_a_worker_host_cut_off_under_continue_degrades_the_run_and_counts_nothing_twice(
    net: Lab, deploy: Deployment
) -> None:
    """w3 is unplugged for 7 s (the loss timeout is 3 s): the run goes on without it and
    completes degraded. w3 comes back while the run still runs (its re-attach backoff
    reaches 5 s), is told to stop, and the reports it sends again must not count (nor may
    the run wait for the dropped worker's last interval): the run's totals are the
    survivors' statements exactly plus what w3 had reported before the cut, never more."""
    deploy.start()
    async with deploy.channel() as channel:
        stub = run_pb2_grpc.RunServiceStub(channel)
        await deploy.attached(stub)
        # long enough that w3, back after 7 s and a re-attach backoff of up to 5 s, still
        # finds the run going on a loaded host (it attaches again 8-12 s after the cut)
        text = workload(net, "continue", duration="21s", policy="continue")
        run_id = await start_run(stub, text)
        await wait_measuring(stub, run_id, 2)
        net.net.cut("w3")
        cut_s = time.time()
        await asyncio.sleep(7)
        net.net.heal("w3")
        # it re-attaches while the run still runs and sends its recent reports again
        deploy.worker_logs["w3"].wait_for("interval reports again", 15)
        assert (await wait_state(stub, run_id, lc.LOAD_PHASES, 1)).state == lc.MEASUREMENT
        run = await wait_state(stub, run_id, lc.TERMINAL, 40)
        assert run.state == lc.COMPLETED, run.message
        assert run.degraded
        assert any("w3" in w for w in run.warnings), run.warnings
        got = await stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)
        run = got.run

    logged = statements(net.pg, run_id, hosts_by_index(run))
    by_host = per_host(logged)
    workers = {w.worker_id: w for w in run.run_workers}
    # the survivors: what each counted itself is what the server executed
    for host in ("w1", "w2"):
        assert workers[host].count == by_host[host], host
    merged = sum(run_counts(run).values())
    survivors = by_host["w1"] + by_host["w2"]
    from_w3 = merged - survivors
    # w3's share of the totals is what it reported before the cut: at most its statements
    # up to the cut, at least those up to its last complete interval before it (1 s)
    before_cut = sum(1 for s in logged if s.host == "w3" and s.time_s <= cut_s)
    settled = sum(1 for s in logged if s.host == "w3" and s.time_s <= cut_s - 1.2)
    assert settled <= from_w3 <= before_cut, (settled, from_w3, before_cut)
    assert merged <= len(logged)
    print(f"w3: {from_w3} counted of {by_host['w3']} executed ({before_cut} before the cut)")


async def test_a_report_lost_in_flight_is_sent_again_and_nothing_is_lost(
    net: Lab, deploy: Deployment
) -> None:
    """w2 is unplugged for 4 s, longer than its keepalive needs to give up on the stream
    (2 s) and shorter than the controller's loss timeout (here 10 s): the reports it
    wrote into the dead stream are lost with it, the resend after the re-attach is what
    delivers them, and the run's counts are exactly the server's."""
    deploy.controller_args = ["--loss-timeout", "10s"]
    deploy.worker_args = ["--orphan-timeout", "15s"]
    deploy.start()
    async with deploy.channel() as channel:
        stub = run_pb2_grpc.RunServiceStub(channel)
        await deploy.attached(stub)
        run_id = await start_run(stub, workload(net, "resend", duration="10s"))
        await wait_measuring(stub, run_id, 2)
        net.net.cut("w2")
        await asyncio.sleep(4)
        net.net.heal("w2")
        await wait_state(stub, run_id, lc.TERMINAL, 40)
        run = (await stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)).run
    assert run.state == lc.COMPLETED, run.message
    assert not run.degraded
    workers = {w.worker_id: w for w in run.run_workers}
    assert "ping timeout" in deploy.worker_logs["w2"].text()  # the stream really died
    assert workers["w2"].recovered_reports >= 1, workers["w2"]
    assert workers["w1"].recovered_reports == workers["w3"].recovered_reports == 0
    logged = statements(net.pg, run_id, hosts_by_index(run))
    assert logged_counts(logged) == run_counts(run)
    by_host = per_host(logged)
    for host, worker in workers.items():
        assert worker.count == by_host[host], host


async def test_a_controller_host_cut_off_stops_every_worker_and_they_rejoin(
    net: Lab, deploy: Deployment
) -> None:
    """The controller host is unplugged for 10 s. Every worker stops issuing statements
    within its orphan timeout (2 s) + 1 s of the cut, by the server's clock; the
    controller loses them all (3 s) and fails the run (on_worker_loss = "fail"); healed,
    every worker re-attaches and stands idle, and the run's statements never resume."""
    orphan_s = 2.0
    deploy.worker_args = ["--orphan-timeout", f"{orphan_s:g}s"]
    deploy.start()
    async with deploy.channel() as channel:
        stub = run_pb2_grpc.RunServiceStub(channel)
        await deploy.attached(stub)
        run_id = await start_run(stub, workload(net, "orphans", duration="60s"))
        await wait_measuring(stub, run_id, 2)
        net.net.cut("ctl")
        cut_s = time.time()
        await asyncio.sleep(10)
        net.net.heal("ctl")
        healed_s = time.time()
        run = await wait_state(stub, run_id, lc.TERMINAL, 20)
        assert run.state == lc.FAILED, run.message
        assert run.reason == "worker_lost", run.reason
        deadline = time.monotonic() + 20
        while True:  # re-attach backoff reaches 5 s
            listed = await stub.ListWorkers(run_pb2.ListWorkersRequest(), timeout=5)
            idle = {w.worker_id for w in listed.workers if w.connected and not w.run_id}
            if idle == {"w1", "w2", "w3"}:
                break
            assert time.monotonic() < deadline, f"only {idle} re-attached idle"
            await asyncio.sleep(0.2)
        rejoined_s = time.time()
        run = (await stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)).run
    logged = statements(net.pg, run_id, hosts_by_index(run))
    for host in ("w1", "w2", "w3"):
        mine = [s.time_s for s in logged if s.host == host]
        assert mine and min(mine) < cut_s, host
        stopped = max(mine) - cut_s
        print(f"{host}: last statement {stopped:.2f}s after the cut")
        assert stopped <= orphan_s + 1.0, (host, stopped)
    assert not [s for s in logged if s.time_s > healed_s]
    print(f"re-attached idle {rejoined_s - healed_s:.1f}s after the heal")


SPREAD_MS = 5.0
STALL_S = 0.1
"""How long a loaded host may keep a worker process off the CPU: what its last statement
may precede the planned end by."""


SKEW_MS = 250
"""w3's clock runs this far ahead; w1 and w2 keep true clocks (so a run with three true
clocks would prove nothing more)."""


async def test_workers_on_slow_links_switch_phase_together_by_the_server_log(
    net: Lab, deploy: Deployment
) -> None:
    """The three worker links differ by up to 39 ms one way, yet by PostgreSQL's own log
    every worker switched to MEASUREMENT within 5 ms of the planned instant and stopped at
    the planned end: each maps the controller's planned instants onto its own clock (and
    absorbs a clock that is 250 ms off). The run counts exactly what the server ran."""
    deploy.worker_env["w3"] = {"SNOWLOAD_TEST_CLOCK_SKEW_MS": str(SKEW_MS)}
    deploy.start()
    async with deploy.channel() as channel:
        stub = run_pb2_grpc.RunServiceStub(channel)
        await deploy.attached(stub)
        text = workload(net, "spread", duration="2s", think="0s", connections=6)
        run_id = await start_run(stub, text)
        run = await wait_state(stub, run_id, lc.TERMINAL, 60)
        assert run.state == lc.COMPLETED, run.message
        run = (await stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)).run
    logged = statements(net.pg, run_id, hosts_by_index(run))
    # the oracle is the statements the server executed: none of the run's failed (a
    # failure refused before it ran would be counted by the run and not logged as run)
    assert not [f for f in parse_failures(net.pg.log_lines()) if run_id[:8] in f.sql]
    assert logged_counts(logged) == run_counts(run), {
        w.worker_id: (w.count, w.duplicate_reports, w.recovered_reports) for w in run.run_workers
    }  # (what a difference would need to be traced: each worker's count and resends)
    # each worker counted, over all phases, what the server ran for it, and all of it is
    # WARMUP or MEASUREMENT: nothing issued before the planned end was re-labelled
    by_host = per_host(logged)
    assert {w.worker_id: w.count for w in run.run_workers} == by_host
    assert sum(run_counts(run).values()) == sum(by_host.values())
    measured = [s for s in logged if s.tag.phase == lc.MEASUREMENT]
    first = {h: min(s.time_s for s in measured if s.host == h) for h in ("w1", "w2", "w3")}
    last = {h: max(s.time_s for s in measured if s.host == h) for h in ("w1", "w2", "w3")}
    first_spread = (max(first.values()) - min(first.values())) * 1000
    last_spread = (max(last.values()) - min(last.values())) * 1000
    offsets = {w.worker_id: w.clock_offset.ToNanoseconds() / 1e6 for w in run.run_workers}
    print(f"first M spread {first_spread:.0f} ms, last M spread {last_spread:.0f} ms; {offsets}")
    # (those spreads are of the server's stamps, set when a statement arrives: a loaded
    # host delays that by milliseconds, so the proof of the switch is per connection)
    # every worker began MEASUREMENT at the planned start: none before it (a statement is
    # logged after it was issued; the log's stamps are whole milliseconds) ...
    m_start = run.plan.measurement_start_time.ToNanoseconds() / 1e9
    assert min(first.values()) >= m_start - 0.002, (m_start, first)
    # ... and none more than SPREAD_MS after it: a worker that switched later (on a
    # command's arrival, or with its clock's 250 ms skew) would have issued WARMUP
    # statements after that, several per connection, while one that switched in time has
    # at most the one it had in flight logged after it
    warmup = [(s.time_s, s.pid) for s in logged if s.tag.phase == lc.WARMUP]
    late = issued_after(warmup, m_start + SPREAD_MS / 1000)
    assert not late, (late, m_start, first)
    # every worker went on until the planned end (none stopped early by more than a
    # loaded host may stall it), and no connection issued a MEASUREMENT statement after it
    m_end = run.plan.measurement_end_time.ToNanoseconds() / 1e9
    assert min(last.values()) >= m_end - STALL_S, (m_end, last)
    late = issued_after([(s.time_s, s.pid) for s in measured], m_end + 0.002)
    assert not late, (late, m_end, last)
    # the skew is real: w3's offset estimate absorbed it (its clock runs ahead), and the
    # true clocks are estimated as true
    assert abs(offsets["w3"] + SKEW_MS) < 20, offsets
    assert abs(offsets["w1"]) < 20 and abs(offsets["w2"]) < 20, offsets
