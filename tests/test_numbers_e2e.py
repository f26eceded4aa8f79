"""One real run (`snowload run --json`, two worker processes, SQLite) with two kinds of very
different latency, checked end to end against calculators that share no code with
snowload: the stored histograms decoded straight from the results database with hdrh
(``HdrHistogram.decode``, ``add``, ``get_value_at_percentile``, ``get_mean_value``,
``get_max_value``), and the statements SQLite itself executed (its trace) for the counts.
The same figures must come out of the JSON summary, ``runs show``, ``runs show
--percentiles`` (from the file, and from a daemon through ``runs --controller``), and
the API (GetRun, GetRunSeries, GetRunHistograms).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from typing import Any

import grpc
import pytest
from hdrh.histogram import HdrHistogram

from snowload.v1 import common_pb2, run_pb2, run_pb2_grpc
from tests.cluster import read_traces, start_daemon

pytestmark = pytest.mark.slow

WORKLOAD = '''
name = "numbers"
[target]
database = "numbers.db"
[setup]
sql = ["CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v INTEGER)",
       """INSERT OR IGNORE INTO t WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c
          WHERE n < 1000) SELECT n, n FROM c"""]
[load]
workers = 2
connections = 4
warmup = "1s"
duration = "2.5s"  # the planned end falls inside a second: the last one is partial
think_time = "1ms"
[[query]]
name = "lookup"
weight = 30
sql = "SELECT v FROM t WHERE k = ?"
params = [{ int = [1, 1000] }]
[[query]]
name = "slow"
weight = 1
sql = """WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ?)
         SELECT count(*) FROM c"""
params = [{ int = [200000, 200000] }]
[slo]
error_rate = 0
min_qps = 1
[slo.query.slow]
p50_ms = 0.001
'''

PHASES = {"WARMUP": common_pb2.STATE_WARMUP, "MEASUREMENT": common_pb2.STATE_MEASUREMENT}
SPECTRUM = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9, "p99.99": 99.99}


def hdr_decode(blob: bytes) -> HdrHistogram:
    decoded: HdrHistogram = HdrHistogram.decode(base64.b64encode(blob))
    return decoded


def ms(h: HdrHistogram, pct: float) -> float:
    return round(h.get_value_at_percentile(pct) / 1000.0, 4)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("numbers")
    traces = tmp / "traces"
    traces.mkdir()
    workload = tmp / "numbers.toml"
    workload.write_text(WORKLOAD)
    env = dict(
        os.environ,
        SNOWLOAD_HOME=str(tmp / "home"),
        SNOWLOAD_DB=str(tmp / "results.db"),
        SNOWLOAD_SQLITE_TRACE_DIR=str(traces),
    )
    done = subprocess.run(
        [sys.executable, "-m", "snowload.cli", "run", str(workload), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 4, done.stderr  # completed, the impossible slow p50 failed
    summary = json.loads(done.stdout)
    db = sqlite3.connect(tmp / "results.db")
    stored = {
        (phase, kind): hdr_decode(blob)
        for phase, kind, blob in db.execute(
            "SELECT phase, kind, encoded FROM histograms WHERE run_id = ?", (summary["run_id"],)
        )
    }
    raw = {
        (phase, kind): blob
        for phase, kind, blob in db.execute(
            "SELECT phase, kind, encoded FROM histograms WHERE run_id = ?", (summary["run_id"],)
        )
    }
    db.close()
    return {
        "tmp": tmp,
        "env": env,
        "summary": summary,
        "stored": stored,
        "raw": raw,
        "traces": read_traces(traces, summary["run_id"]),
    }


def cli(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "snowload.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def check_stats(name: str, got: dict[str, Any], h: HdrHistogram, duration_s: float) -> None:
    assert got["count"] == h.get_total_count(), name  # (no errors in this run)
    for key, pct in (("p50_ms", 50.0), ("p95_ms", 95.0), ("p99_ms", 99.0)):
        assert got[key] == ms(h, pct), (name, key)
    assert got["max_ms"] == round(h.get_max_value() / 1000.0, 4), name
    assert got["mean_ms"] == pytest.approx(h.get_mean_value() / 1000.0, abs=1.01e-4), name
    assert got["qps"] == pytest.approx(got["count"] / duration_s, rel=1e-3), name


def test_the_summary_equals_hdrhistograms_reading_of_the_stored_histograms(
    finished: dict[str, Any],
) -> None:
    """Fails if any summary figure (a percentile, max, mean, QPS, count; overall or per
    kind) is computed other than by HdrHistogram's rules from the merged data, e.g. an
    overall p99 averaged from the kinds', or counts lost or doubled on the way."""
    summary, stored = finished["summary"], finished["stored"]
    assert summary["state"] == "COMPLETED"
    traced = Counter((s.phase, s.kind) for s in finished["traces"])
    for phase_name, phase in PHASES.items():
        entry = summary["phases"][phase_name]
        duration = entry["duration_s"]
        # the overall histogram is the bucket-wise sum of the kinds' (hdrh's add)
        added = HdrHistogram(1, 3_600_000_000, 3)
        for kind in ("lookup", "slow"):
            added.add(stored[(phase, kind)])
        assert list(added.counts) == list(stored[(phase, "")].counts)
        check_stats(f"{phase_name}/all", entry, stored[(phase, "")], duration)
        for kind in ("lookup", "slow"):
            h = stored[(phase, kind)]
            check_stats(f"{phase_name}/{kind}", entry["by_kind"][kind], h, duration)
            # every statement SQLite executed in this phase is counted, once
            assert h.get_total_count() == traced[(phase, kind)], (phase_name, kind)
    meas = summary["phases"]["MEASUREMENT"]
    fast, slow = meas["by_kind"]["lookup"], meas["by_kind"]["slow"]
    assert slow["p50_ms"] > 10 * fast["p50_ms"], "the kinds must differ widely"
    assert abs((fast["p99_ms"] + slow["p99_ms"]) / 2 - meas["p99_ms"]) > 0.5


def test_slo_verdicts_in_the_summary_use_the_real_figures(finished: dict[str, Any]) -> None:
    """Fails if error_rate = 0 fails a run without errors, min_qps compares the wrong way,
    or a kind's latency verdict reads another figure than the kind's own."""
    summary = finished["summary"]
    meas = summary["phases"]["MEASUREMENT"]
    verdicts = {(v["kind"], v["metric"]): v for v in summary["slo"]["verdicts"]}
    assert set(verdicts) == {(None, "error_rate"), (None, "min_qps"), ("slow", "p50_ms")}
    assert (
        verdicts[(None, "error_rate")]["passed"] and verdicts[(None, "error_rate")]["actual"] == 0
    )
    assert verdicts[(None, "min_qps")]["passed"]
    assert verdicts[(None, "min_qps")]["actual"] == pytest.approx(meas["qps"], rel=1e-3)
    slow = verdicts[("slow", "p50_ms")]
    assert not slow["passed"]
    assert round(slow["actual"], 4) == ms(
        finished["stored"][(common_pb2.STATE_MEASUREMENT, "slow")], 50
    )
    assert summary["slo"]["passed"] is False


def test_runs_show_and_its_percentiles_read_the_same(finished: dict[str, Any]) -> None:
    """Fails if `runs show` or `--percentiles` picks a wrong percentile (p90, p99.9 and
    p99.99 are reported only there) or reads another histogram than the stored one."""
    summary, stored, env = finished["summary"], finished["stored"], finished["env"]
    shown = cli(env, "runs", "show", summary["run_id"], "--json", "--percentiles")
    assert shown["slo"] == summary["slo"]  # the stored verdicts are the ones the run gave
    for phase_name, phase in PHASES.items():
        assert shown["phases"][phase_name] == summary["phases"][phase_name]
        rows = shown["percentiles"][phase_name]
        assert set(rows) == {"all", "lookup", "slow"}
        for kind, row in rows.items():
            h = stored[(phase, "" if kind == "all" else kind)]
            for name, pct in SPECTRUM.items():
                assert row[name] == h.get_value_at_percentile(pct) / 1000.0, (kind, name)
            assert row["max"] == h.get_max_value() / 1000.0
            assert row["count"] == h.get_total_count()
    # the tail really has distinct figures here (the slow kind dominates it)
    tail = shown["percentiles"]["MEASUREMENT"]["all"]
    assert tail["p90"] < tail["p99"]


async def test_the_api_serves_the_same_numbers(finished: dict[str, Any]) -> None:
    """Fails if GetRun's summary or GetRunHistograms' bytes differ from what the store and
    HdrHistogram say (a daemon on the same results database serves them)."""
    summary, stored, tmp = finished["summary"], finished["stored"], finished["tmp"]
    proc, address = start_daemon(
        ["--listen", "127.0.0.1:0", "--db", str(tmp / "results.db")], finished["env"]
    )
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = run_pb2_grpc.RunServiceStub(channel)
            got = await stub.GetRun(run_pb2.GetRunRequest(run_id=summary["run_id"]), timeout=10)
            hists = await stub.GetRunHistograms(
                run_pb2.GetRunHistogramsRequest(run_id=summary["run_id"]), timeout=10
            )
            series = await stub.GetRunSeries(
                run_pb2.GetRunSeriesRequest(run_id=summary["run_id"]), timeout=10
            )
        env = {k: v for k, v in finished["env"].items() if k != "SNOWLOAD_DB"}
        args = ("runs", "--controller", address, "show", summary["run_id"], "--json")
        remote = await asyncio.to_thread(cli, env, *args, "--percentiles")
    finally:
        proc.terminate()
        proc.wait(10)
    phases = {p.phase: p for p in got.run.summary.phases}
    for phase_name, phase in PHASES.items():
        ps = phases[phase]
        for kind, s in (("", ps.overall), *ps.by_kind.items()):
            h = stored[(phase, kind)]
            assert s.count == h.get_total_count(), (phase_name, kind)
            assert s.p50_ms == h.get_value_at_percentile(50) / 1000.0
            assert s.p95_ms == h.get_value_at_percentile(95) / 1000.0
            assert s.p99_ms == h.get_value_at_percentile(99) / 1000.0
            assert s.max_ms == h.get_max_value() / 1000.0
            assert s.mean_ms == pytest.approx(h.get_mean_value() / 1000.0, rel=1e-9)
    # runs show through the API reads what runs show reads from the file
    local = cli(finished["env"], "runs", "show", summary["run_id"], "--json", "--percentiles")
    assert remote["percentiles"] == local["percentiles"]
    assert remote["phases"] == local["phases"] == summary["phases"]
    served = {(p.phase, p.kind): p.histogram for p in hists.phases}
    assert served == finished["raw"]
    # per second: the intervals add up to the run's totals
    seconds = sum(hdr_decode(i.histogram).get_total_count() for i in hists.intervals)
    assert seconds == sum(h.get_total_count() for (_, kind), h in stored.items() if not kind)
    check_series(
        list(series.points),
        {i.second: hdr_decode(i.histogram) for i in hists.intervals},
        got.run.plan,
    )


def check_series(
    points: list[common_pb2.SeriesPoint],
    seconds: dict[int, HdrHistogram],
    plan: common_pb2.PhasePlan,
) -> None:
    """Each second's figures are HdrHistogram's reading of that second's histogram, and
    its QPS divides by the second's true length. Seconds are cut on the run's clock:
    second k is [load start + k - 1 s, load start + k s), so each lasts a whole second
    except the last: the planned end falls inside it, and it lasts from its start to the
    end (it must not be divided by a whole second)."""
    assert [p.second for p in points] == sorted(seconds)
    start_ns = plan.load_start_time.ToNanoseconds()
    end_ns = plan.measurement_end_time.ToNanoseconds()
    assert start_ns and end_ns
    for p in points:
        h = seconds[p.second]
        assert p.overall.count == h.get_total_count(), p.second
        assert p.overall.p99_ms == h.get_value_at_percentile(99) / 1000.0, p.second
        assert p.overall.max_ms == h.get_max_value() / 1000.0, p.second
        second_start = start_ns + (p.second - 1) * 1_000_000_000
        expected = min(1e9, max(0, end_ns - second_start)) / 1e9
        length = p.duration.ToNanoseconds() / 1e9
        assert length == pytest.approx(expected, abs=0.002), p.second
        assert p.partial == (expected < 0.95), p.second
        assert p.overall.qps == pytest.approx(p.overall.count / length, rel=1e-6), p.second
    assert points[-1].duration.ToNanoseconds() < 0.9e9, "the load stops inside the last second"
