"""A worker's report with histogram bytes that are not a snowload histogram: refused
before anything of it is merged, named where users look, and the daemon goes on.

The histograms are checked against HdrHistogram's own decoder and methods (hdrh), not
against the functions under test."""

from __future__ import annotations

import asyncio
import base64
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from hdrh.codec import V2_COMPRESSION_COOKIE_BASE, PayloadHeader
from hdrh.histogram import HdrHistogram

from controller import lifecycle as lc
from controller.recovery import InterruptedRun
from controller.report_check import InvalidReport, check_report
from controller.server import Controller, ControllerSettings
from controller.store import MemoryRunStore
from controller.store_sqlite import SqliteRunStore
from snowload import hdr
from snowload.v1 import common_pb2, control_pb2, run_pb2, run_pb2_grpc
from tests.cluster import WorkerProcs, attached, wait_for, workload
from tests.crafted_worker import CraftedWorker
from tests.test_faults import make

MEASUREMENT = common_pb2.STATE_MEASUREMENT


def encoded(*values: int) -> bytes:
    hist = hdr.new_histogram()
    for v in values:
        hdr.record(hist, v)
    return hdr.encode(hist)


def wrapped(raw_payload: bytes, body: bytes | None = None) -> bytes:
    """A compressed V2 envelope around ``raw_payload`` (or around ``body`` as it is)."""
    compressed = zlib.compress(raw_payload) if body is None else body
    cookie = (int(V2_COMPRESSION_COOKIE_BASE) | 0x10).to_bytes(4, "big")
    return cookie + len(compressed).to_bytes(4, "big") + compressed


def our_header(payload_len: int) -> bytes:
    hist = hdr.new_histogram()
    return bytes(
        PayloadHeader(
            0x1C849303,
            payload_len,
            0,
            hdr.SIGNIFICANT_DIGITS,
            hdr.LOWEST_US,
            hdr.HIGHEST_US,
            hist.int_to_double_conversion_ratio,
        )
    )


def past_the_range() -> bytes:
    """Our layout's header, then a count of 1 for every bucket and 50 more: decoding
    writes every bucket before it runs past the end."""
    counts = b"\x02" * (hdr.new_histogram().counts_len + 50)  # zigzag varint of 1
    return wrapped(our_header(len(counts)) + counts)


def other_layout() -> bytes:
    hist = HdrHistogram(1, 60_000_000, 2)
    hist.record_value(1500)
    return base64.b64decode(hist.encode())


GOOD = encoded(120, 1500, 1500, 900_000)

BAD = {
    "wrong cookie": (b"\x1c\x84\x93\x13" + GOOD[4:], "not a compressed V2 HdrHistogram"),
    "truncated": (GOOD[:-5], "truncated"),
    "corrupt body": (GOOD[:12] + bytes(b ^ 0x5A for b in GOOD[12:]), "corrupt"),
    "garbage": (b"\x00\x01garbage", "not a compressed V2 HdrHistogram"),
    "another layout": (other_layout(), "layout 1..60000000 µs with 2 significant digits"),
    "counts past the range": (past_the_range(), "counts past the layout's range"),
    "inflates without end": (
        wrapped(our_header(0) + b"\x00" * 5_000_000),
        "past the layout's size",
    ),
    "a small body that inflates past the layout's size": (
        wrapped(our_header(0) + b"\x00" * 300_000),
        "past the layout's size",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_read_span_refuses_bytes_that_are_not_a_snowload_histogram(case: str) -> None:
    data, says = BAD[case]
    with pytest.raises(hdr.HistogramError) as caught:
        hdr.read_span(data)
    assert says in str(caught.value)


def test_a_refused_histogram_leaves_nothing_behind_for_the_next_one() -> None:
    """Fails if a decode that failed half-way leaves its counts in the reused buffers:
    the next, valid histogram would carry them (read_span and add_encoded alike)."""
    oracle = HdrHistogram.decode(base64.b64encode(GOOD))
    for _ in range(3):
        with pytest.raises(hdr.HistogramError):
            hdr.read_span(past_the_range())
        with pytest.raises(IndexError):
            hdr.add_encoded([hdr.new_histogram()], past_the_range())
        via_span, via_encoded = hdr.new_histogram(), hdr.new_histogram()
        span = hdr.read_span(GOOD)
        hdr.add_span([via_span], span)
        hdr.release(span)
        hdr.add_encoded([via_encoded], GOOD)
        for got in (via_span, via_encoded):
            assert got.get_total_count() == oracle.get_total_count() == 4
            assert bytes(got.counts) == bytes(oracle.counts)[: len(bytes(got.counts))]
            for p in (1.0, 50.0, 99.0, 100.0):
                assert got.get_value_at_percentile(p) == oracle.get_value_at_percentile(p)


def kind(
    name: str, histogram: bytes, count: int, phase: int = MEASUREMENT
) -> control_pb2.KindInterval:
    return control_pb2.KindInterval(
        kind=name,
        phase=phase,  # type: ignore[arg-type]
        count=count,
        histogram=histogram,
    )


@pytest.mark.parametrize(
    ("kinds", "field", "says"),
    [
        (
            [kind("q", GOOD, 4), kind("q", BAD["truncated"][0], 1, common_pb2.STATE_WARMUP)],
            "kinds[1].histogram",
            "trunc",
        ),
        (
            [kind("q", GOOD, 5)],
            "kinds[0].histogram",
            "holds 4 latencies, but the kind's count is 5",
        ),
        ([kind("nope", GOOD, 4)], "kinds[0].kind", "'nope' is not a query of the run"),
        ([kind("q", GOOD, 4)] * 50, "kinds", "50 kinds, more than the run's queries"),
    ],
)
def test_check_report_names_the_field(
    kinds: list[control_pb2.KindInterval], field: str, says: str
) -> None:
    report = control_pb2.MetricsReport(interval_id=1, kinds=kinds)
    with pytest.raises(InvalidReport) as caught:
        check_report(report, frozenset({"q"}))
    assert caught.value.field.startswith(field), caught.value
    assert says in str(caught.value)


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[Controller]:
    """An in-process controller on port 0 that stores its runs in a SQLite file."""
    ctl = Controller(ControllerSettings(), SqliteRunStore(tmp_path / "results.db"))
    await ctl.start()
    yield ctl
    await ctl.stop()


VALID_VALUES = (1500,) * 6 + (2_000_000,)
"""What the crafted worker's one valid interval holds (µs)."""


def crafted_report(
    interval: int, origin_ns: int, histogram: bytes, count: int
) -> control_pb2.MetricsReport:
    report = control_pb2.MetricsReport(
        interval_id=interval,
        first_interval_id=1,
        active_connections=1,
        kinds=[kind("q", histogram, count)],
    )
    report.start_time.FromNanoseconds(origin_ns + (interval - 1) * 1_000_000_000)
    report.end_time.FromNanoseconds(origin_ns + interval * 1_000_000_000)
    return report


async def run_with_a_crafted_worker(
    controller: Controller, policy: str, name: str
) -> tuple[CraftedWorker, run_pb2.Run, dict[str, int]]:
    """A run of the real worker "good" and a crafted one that sends one valid interval,
    then one whose histogram is truncated. The crafted worker, the run as the API stores
    it, and what the good worker says it ran in MEASUREMENT."""
    async with CraftedWorker(controller.address, name) as crafted:
        await attached(controller, 2)
        run = controller.runs.start(workload(make(workers=2, duration="2s", policy=policy)))
        await asyncio.wait_for(crafted.started.wait(), 30)
        assert crafted.start is not None
        origin = crafted.start.start_time.ToNanoseconds()
        await wait_for(lambda: run.state == lc.MEASUREMENT, 30, "MEASUREMENT")
        crafted.report(crafted_report(1, origin, encoded(*VALID_VALUES), len(VALID_VALUES)))
        await wait_for(lambda: run.metrics.intervals_from(name) == 1, 10, "the valid interval")
        crafted.report(crafted_report(2, origin, GOOD[:-5], 4))
        await asyncio.wait_for(crafted.ended.wait(), 10)
        assert run.task is not None
        await asyncio.wait_for(asyncio.shield(run.task), 60)
    good = run.finished["good"]
    good_counts = Counter({t.kind: t.count for t in good.totals if t.phase == MEASUREMENT})
    async with grpc.aio.insecure_channel(controller.address) as channel:
        got = await run_pb2_grpc.RunServiceStub(channel).GetRun(
            run_pb2.GetRunRequest(run_id=run.run_id), timeout=10
        )
    return crafted, got.run, dict(good_counts)


async def test_a_report_with_bad_histogram_bytes_is_refused_and_named_and_the_daemon_goes_on(
    controller: Controller, workers: WorkerProcs, tmp_path: Path
) -> None:
    """Fails if the bad interval (or anything of it) reaches the run's numbers, if the
    crafted worker's stream does not end with INVALID_ARGUMENT naming it and the field,
    if the run does not apply the worker-loss policy with a reason that says why, or if
    the daemon or the real worker stop serving runs."""
    workers.spawn("good")
    await attached(controller, 1)  # first: the run's setup is the real worker's
    expected: dict[str, int] = {}
    for policy, name in (("continue", "crafted-1"), ("fail", "crafted-2")):
        crafted, stored, good = await run_with_a_crafted_worker(controller, policy, name)
        assert crafted.error is not None, "the stream ended without an error"
        assert crafted.error.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = crafted.error.details() or ""
        assert name in details and "kinds[0].histogram" in details and "truncated" in details

        measured = next(p for p in stored.summary.phases if p.phase == MEASUREMENT)
        # the good worker's queries and the crafted worker's one valid interval, no more
        assert good["q"] > 0
        assert measured.overall.count == good["q"] + len(VALID_VALUES)
        assert measured.overall.errors == 0
        if policy == "continue":
            assert stored.state == common_pb2.STATE_COMPLETED, stored.message
            assert stored.degraded
            warned = [w for w in stored.warnings if name in w]
            assert warned and "invalid report for interval 2" in warned[0], stored.warnings
            assert "kinds[0].histogram" in warned[0]
        else:
            assert stored.state == common_pb2.STATE_FAILED
            assert stored.reason == "invalid_report"
            assert name in stored.message and "kinds[0].histogram" in stored.message
        # the crafted worker's valid interval is there: its 2 s value is the max
        assert measured.overall.max_ms == pytest.approx(
            HdrHistogram(1, hdr.HIGHEST_US, 3).get_highest_equivalent_value(2_000_000) / 1000
        )
        expected[stored.run_id] = good["q"] + len(VALID_VALUES)
    # what the results file holds, read back by another store and hdrh's own decoder
    store = SqliteRunStore(tmp_path / "results.db")
    try:
        for run_id, count in expected.items():
            run = store.get(run_id)
            assert run is not None
            measured = next(p for p in run.summary.phases if p.phase == MEASUREMENT)
            assert measured.overall.count == count
            stored_hist = HdrHistogram.decode(
                base64.b64encode(store.histograms(run_id)[(MEASUREMENT, "q")])
            )
            assert stored_hist.get_total_count() == count
            assert stored_hist.get_max_value() == stored_hist.get_highest_equivalent_value(
                2_000_000
            )
    finally:
        store.close()
    # the real worker kept its stream through both runs and is idle for the next one
    rec = controller.registry.workers["good"]
    await wait_for(lambda: rec.idle, 20, "the real worker to be idle again")
    assert rec.outbox is not None and not rec.lost


def test_a_bad_report_for_an_interrupted_run_adds_nothing_and_the_next_good_one_counts() -> None:
    """The reports a crash-interrupted run's workers send again are checked too: fails if
    a bad one raises anything but InvalidReport, marks its interval received, or leaves
    anything in the run's numbers."""
    run = run_pb2.Run(run_id="interrupted", run_workers=[run_pb2.RunWorker(worker_id="w")])
    interrupted = InterruptedRun(MemoryRunStore(), run)
    with pytest.raises(InvalidReport):
        interrupted.add("w", crafted_report(1, 0, BAD["corrupt body"][0], 4))
    assert interrupted.metrics.intervals_from("w") == 0
    assert interrupted.metrics.received_count() == 0
    assert interrupted.add("w", crafted_report(1, 0, GOOD, 4))
    interrupted.metrics.settle()
    total = interrupted.metrics.phase_histogram(MEASUREMENT)
    oracle = HdrHistogram.decode(base64.b64encode(GOOD))
    assert total.get_total_count() == 4
    assert total.get_value_at_percentile(50.0) == oracle.get_value_at_percentile(50.0)
    assert total.get_max_value() == oracle.get_max_value()
