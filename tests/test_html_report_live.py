"""``snowload runs --controller ADDR report``: a run of a real daemon and worker, reported
while it is active (marked, with the live series and no spectrum yet) and again once it
has ended (every stored second drawn, the spectrum from its stored histograms)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

import grpc
import pytest

from controller import lifecycle as lc
from controller.cli import main
from snowload.v1 import run_pb2, run_pb2_grpc
from tests.cluster import start_daemon
from tests.report_dom import ReportDom

WORKLOAD = """
name = "live-report"
[target]
database = "live.db"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY)",
       "INSERT OR IGNORE INTO t VALUES (1), (2)"]
[load]
workers = 1
connections = 2
warmup = "1s"
duration = "60s"
think_time = "2ms"
[[query]]
name = "one"
sql = "SELECT k FROM t WHERE k = ?"
params = [{ int = [1, 2] }]
[[query]]
name = "total"
sql = "SELECT count(*) FROM t"
"""


def report(address: str, run_id: str, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["runs", "--controller", address, "report", run_id, "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    return err


async def test_a_live_run_then_the_same_run_ended(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = dict(os.environ, SNOWLOAD_HOME=str(tmp_path / "home"))
    proc, address = start_daemon(
        ["--listen", "127.0.0.1:0", "--local-workers", "1", "--db", str(tmp_path / "r.db")], env
    )
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = run_pb2_grpc.RunServiceStub(channel)
            started = await stub.StartRun(
                run_pb2.StartRunRequest(workload_toml=WORKLOAD), timeout=10
            )
            run_id = started.run.run_id
            deadline = time.monotonic() + 60
            while True:
                got = await stub.GetRunSeries(run_pb2.GetRunSeriesRequest(run_id=run_id))
                if any(p.phase == lc.MEASUREMENT for p in got.points):
                    break
                assert time.monotonic() < deadline, "no measured second within 60 s"
                await asyncio.sleep(0.2)

            live = tmp_path / "live.html"
            err = await asyncio.to_thread(report, address, run_id, live, capsys)
            assert "is still MEASUREMENT" in err
            dom = ReportDom(live.read_text(encoding="utf-8"))
            body = "".join(dom.text)
            assert "this run was still MEASUREMENT when the report was made" in body
            assert "no latency spectrum" in body and "still active" in body
            assert dom.count(series="qps") >= len(got.points) > 0
            assert dom.select(tag="line", series="spectrum") == []

            await stub.StopRun(run_pb2.StopRunRequest(run_id=run_id), timeout=10)
            async for update in stub.WatchRun(run_pb2.WatchRunRequest(run_id=run_id), timeout=60):
                if update.final:
                    assert update.run.state == lc.CANCELLED, update.run.message
            stored = (await stub.GetRunSeries(run_pb2.GetRunSeriesRequest(run_id=run_id))).points

            ended = tmp_path / "ended.html"
            err = await asyncio.to_thread(report, address, run_id, ended, capsys)
            assert "still" not in err
            dom = ReportDom(ended.read_text(encoding="utf-8"))
            assert "when the report was made" not in "".join(dom.text)
            assert dom.count(series="qps") == len(stored)
            assert dom.count(tag="markers", series="qps") == sum(p.partial for p in stored)
            measured = [p for p in stored if p.overall.count]
            assert dom.count(series="p99_ms") == len(measured)
            kinds = {d.data["kind"] for d in dom.select(tag="line", series="spectrum")}
            assert kinds == {"all kinds", "one", "total"}

            # the slowest queries: per kind, the API's slowest entries, slowest first
            html = ended.read_text(encoding="utf-8")
            table = re.search(r'<table class="slowest">.*?</table>', html, re.S)
            assert table is not None, "no slowest-queries table"
            rows = re.findall(
                r"<tr><td>([^<]*)</td><td>[^<]*</td><td class=\"num\">([^<]*)</td>", table.group(0)
            )
            for kind in ("one", "total"):
                api = await stub.GetRunQueries(
                    run_pb2.GetRunQueriesRequest(run_id=run_id, kind=kind, slowest=10)
                )
                assert api.entries, f"no slowest entries of {kind} from the API"
                want = [f"{e.latency_ms:,.3f}" for e in api.entries]
                assert [lat for k, lat in rows if k == kind] == want
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
