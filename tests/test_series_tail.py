"""The run's last seconds: a second the load stopped in is partial, rated over the part of
it the load covered, marked in the exports, and never read as a collapse.

Real worker processes on SQLite; the oracles are the run's own stop instant (its
measurement end) and the statements SQLite executed (the driver's trace files)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration

from controller import export
from controller import lifecycle as lc
from controller.metrics import RunMetrics
from controller.server import Controller
from snowload import hdr
from snowload.report import summary_dict
from snowload.v1 import common_pb2, control_pb2
from tests.cluster import WorkerProcs, attached, read_traces, run_to_end, workload

CONNECTIONS = 4
WORKLOAD = f"""
name = "tail"
[target]
driver = "sqlite"
database = "tail.db"
[setup]
sql = ["DROP TABLE IF EXISTS kv", "CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)",
       "INSERT INTO kv VALUES (1, 'a'), (2, 'b')"]
[load]
workers = 2
connections = {CONNECTIONS}
warmup = "0s"
duration = "2.5s"
think_time = "2ms"
[[query]]
name = "get"
sql = "SELECT v FROM kv WHERE k = ?"
params = [{{ int = [1, 2] }}]
"""


def seconds_of(d: Duration) -> float:
    return d.ToNanoseconds() / 1e9


async def test_the_second_the_load_stopped_in_is_partial_and_rated_over_its_true_length(
    controller: Controller, workers: WorkerProcs, traces: Path
) -> None:
    workers.spawn("a")
    workers.spawn("b")
    await attached(controller, 2)
    run = await run_to_end(controller, workload(WORKLOAD))
    assert run.state == lc.COMPLETED, run.message
    points = controller.runs.series(run.run_id)
    stop_ns = run.measurement_end_ns
    assert stop_ns

    # the load stopped half-way through the third second: two full seconds, then the tail
    full = [p for p in points if not p.partial]
    tail = [p for p in points if p.partial]
    assert [p.second for p in full] == [1, 2], [(p.second, p.partial) for p in points]
    assert tail and tail[0].second == 3
    for p in full:
        assert p.end_time.ToNanoseconds() <= stop_ns + 50_000_000
        assert seconds_of(p.duration) == pytest.approx(1.0, abs=0.05)
    for p in points:  # every rate is the count over the length the load covered
        length = seconds_of(p.duration)
        assert p.overall.qps == pytest.approx(p.overall.count / length if length else 0.0)
        for stats in p.by_kind.values():
            assert stats.qps == pytest.approx(stats.count / length if length else 0.0)

    # the true length of the last second: from the end of the one before to the stop
    last = tail[0]
    true_length = (stop_ns - full[-1].end_time.ToNanoseconds()) / 1e9
    assert 0.3 < true_length < 0.7
    assert seconds_of(last.duration) == pytest.approx(true_length, abs=0.02)
    # SQLite's own record: the statements executed after the second second ended are the
    # last second's queries (up to the ones in flight at that edge)
    statements = read_traces(traces, run.run_id)
    after = [s for s in statements if s.time_ns > full[-1].end_time.ToNanoseconds()]
    assert abs(len(after) - last.overall.count) <= 2 * CONNECTIONS
    # ... so its rate is the run's rate, not a collapse
    full_rate = sum(p.overall.count for p in full) / sum(seconds_of(p.duration) for p in full)
    assert last.overall.qps == pytest.approx(len(after) / true_length, rel=0.1)
    assert last.overall.qps > 0.5 * full_rate

    # what a client sees at the end: the newest full second and rolling rates over full ones
    progress = run.update(final=True).progress
    assert progress.latest.second == 2 and not progress.latest.partial
    assert progress.qps == pytest.approx(full[-1].overall.qps)
    assert progress.qps_10s == pytest.approx(full_rate)

    # the exports say which seconds are partial
    out = io.StringIO()
    export.write_csv(points, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["partial"] for r in rows] == ["false", "false"] + ["true"] * len(tail)
    assert float(rows[2]["duration_s"]) == pytest.approx(true_length, abs=0.02)
    series = [export.point_row(p) for p in points]
    assert json.loads(json.dumps(series))[2]["partial"] is True
    # and the totals still count every query, the tail's included
    meas = summary_dict(run.to_proto())["phases"]["MEASUREMENT"]
    assert meas["count"] == sum(p.overall.count for p in points)


T0_NS = 1_000_000_000_000
SECOND = 1_000_000_000
SKEW = {"a": 0, "b": 3_000_000}
"""Worker b ticks 3 ms after worker a."""


def interval(
    k: int, count: int, *, start_ns: int, end_ns: int, last: bool = False
) -> control_pb2.MetricsReport:
    rep = control_pb2.MetricsReport(
        run_id="r", interval_id=k, active_connections=0 if last else 4, last=last
    )
    rep.start_time.FromNanoseconds(start_ns)
    rep.end_time.FromNanoseconds(end_ns)
    h = hdr.new_histogram()
    for i in range(count):
        h.record_value(100 + i % 50)
    kind = rep.kinds.add(kind="q", count=count, histogram=hdr.encode(h))
    kind.phase = common_pb2.STATE_MEASUREMENT
    return rep


def two_workers(stop_ns: int, drain_ns: int, counts: dict[int, int]) -> RunMetrics:
    """Workers a and b, ticking every second from T0 (b 3 ms later), the load stopped at
    ``stop_ns``; a worker's last report runs from its last tick to the stop + drain."""
    metrics = RunMetrics()
    metrics.expect(list(SKEW))
    for w, skew in SKEW.items():
        k, start = 1, T0_NS + skew
        while start + SECOND <= stop_ns:
            metrics.add(w, interval(k, counts[k], start_ns=start, end_ns=start + SECOND))
            k, start = k + 1, start + SECOND
        if w == "a":
            metrics.stop_load(stop_ns)
        end = stop_ns + drain_ns
        metrics.add(w, interval(k, counts[k], start_ns=start, end_ns=end, last=True))
    metrics.settle()
    return metrics


def test_the_second_the_load_stopped_in_covers_up_to_the_stop() -> None:
    """The stop 400 ms into second 3, 150 ms of drain: second 3's rate is its count over
    0.4 s (not over the 0.55 s its reports span), and it is not a rolling second."""
    stop = T0_NS + 2 * SECOND + 400_000_000
    metrics = two_workers(stop, 150_000_000, {1: 1000, 2: 1000, 3: 410})
    points = {p.second: p for p in metrics.series_protos()}
    assert [points[s].partial for s in sorted(points)] == [False, False, True]
    third = points[3]
    assert third.duration.ToNanoseconds() == stop - (T0_NS + 2 * SECOND)  # 0.4 s
    assert third.overall.count == 820
    assert third.overall.qps == pytest.approx(820 / 0.4)
    assert third.by_kind["q"].qps == pytest.approx(820 / 0.4)
    full = [points[s] for s in (1, 2)]
    full_rate = 4000 / sum(p.duration.ToNanoseconds() / 1e9 for p in full)
    assert metrics.rolling_qps(10) == pytest.approx(full_rate)
    latest = metrics.complete_point()
    assert latest is not None and latest.second == 2


def test_a_second_that_only_drained_has_no_length_and_no_rate() -> None:
    """The stop 2 ms after worker a's second tick (before b's, 3 ms after it): second 2
    is full, second 3 only drained the queries in flight: counted, 0 s long, 0 QPS."""
    stop = T0_NS + 2 * SECOND + 2_000_000
    metrics = two_workers(stop, 90_000_000, {1: 1000, 2: 1000, 3: 6})
    points = {p.second: p for p in metrics.series_protos()}
    assert [points[s].partial for s in sorted(points)] == [False, False, True]
    assert points[2].duration.ToNanoseconds() == pytest.approx(SECOND, abs=3_000_000)
    drained = points[3]
    assert drained.overall.count == 6  # worker a's: b's last report is its second 2
    assert drained.duration.ToNanoseconds() == 0 and drained.overall.qps == 0
    assert metrics.phase_totals[common_pb2.STATE_MEASUREMENT].count == 4006  # in the totals
