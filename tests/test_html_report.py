"""``snowload runs report``: one self-contained HTML file per report, every second of the
series drawn, the latency spectrum as HdrHistogram reads it, every section filled, several
runs overlaid and compared, and bad input answered in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from controller import lifecycle as lc
from controller.cli import main
from controller.report_html import spectrum
from controller.report_html.tables import NO_QUERY_LOG, SLOWEST_PER_KIND
from controller.store_sqlite import SqliteRunStore
from snowload import hdr
from tests.report_dom import ReportDom
from tests.report_runs import MadeRun, made_run

MB = 1_000_000


def stored(tmp_path: Path, *made: MadeRun) -> Path:
    db = tmp_path / "results.db"
    store = SqliteRunStore(db)
    for m in made:
        store.save(m.record)
    store.close()
    return db


def report(
    db: Path, out: Path, *run_ids: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    code = main(["runs", "report", "--db", str(db), *run_ids, "-o", str(out)])
    return code, capsys.readouterr().err


def assert_self_contained(text: str) -> None:
    assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';' in text
    assert not re.search(r"https?://", text), "the report names a URL"
    for needle in ("<script", "<link", "@import", "url(", "<iframe", "<object", "src="):
        assert needle not in text, needle


def test_a_30_minute_run_of_8_kinds_fits_in_a_megabyte_with_every_second_drawn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = made_run(seconds=1800, warmup=60, kinds=8, samples_per_histogram=1500)
    db = stored(tmp_path, made)
    out = tmp_path / "run.html"
    code, err = report(db, out, made.record.run.run_id[:6], capsys=capsys)
    assert code == 0, err
    size = out.stat().st_size
    assert size <= MB, f"{size:,} bytes"
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    dom = ReportDom(text)
    series = made.record.series
    warmup = [p for p in series if p.phase == lc.WARMUP]
    partial = [p for p in series if p.partial]
    assert len(partial) == 1 and len(warmup) == 60
    for key in ("qps", "p50_ms", "p95_ms", "p99_ms"):
        # every second drawn once: full seconds on the lines, partial ones as markers
        assert dom.count(series=key) == len(series), key
        assert dom.count(tag="markers", series=key) == len(partial), key
        assert dom.count(tag="line", series=key, phase="warmup") == len(warmup), key
    # the partial second sits apart: its rate (300/s) is not drawn as part of the line
    qps_line = dom.select(tag="line", series="qps", phase="measurement")[0]
    assert len({y for _, y in qps_line.points}) == 1  # 800/s every full second
    # the spectrum: all kinds and each of the 8 kinds, one vertex per percentile
    lines = dom.select(tag="line", series="spectrum")
    assert sorted(d.data["kind"] for d in lines) == sorted(
        ["all kinds", *(f"kind_{i}" for i in range(8))]
    )
    for d in lines:
        kind = "" if d.data["kind"] == "all kinds" else d.data["kind"]
        count = len(made.samples[(lc.MEASUREMENT, kind)])
        assert d.count == len(spectrum.percentiles(count)), d.data
        # higher percentiles are higher latencies: y (pixels, downwards) never rises
        assert all(b[1] <= a[1] for a, b in zip(d.points, d.points[1:], strict=False))
    # open model, warehouse: one vertex per second too
    assert dom.count(series="lag_p99_ms") == len(series)
    assert dom.count(series="dropped") == len(series)
    assert dom.count(series="warehouse-queued") == len(series)
    assert "wrote" in err and f"{size:,} bytes" in err


def test_the_spectrum_is_hdrhistograms_percentile_distribution() -> None:
    made = made_run(seconds=5, warmup=1, kinds=1, samples_per_histogram=20_000)
    samples = made.samples[(lc.MEASUREMENT, "")]
    oracle = HdrHistogram(1, 3_600_000_000, 3)
    for v in samples:
        oracle.record_value(v)
    points = spectrum.points(made.record.histograms[(lc.MEASUREMENT, "")])
    wanted = spectrum.percentiles(len(samples))
    assert len(points) == len(wanted) > 60
    assert wanted[0] == 0.0 and 100 / (100 - wanted[-1]) <= len(samples)
    assert 100 / (100 - wanted[-1]) > len(samples) / 2 ** (1 / spectrum.TICKS_PER_HALF)
    ordered = sorted(samples)
    for (x, ms), p in zip(points, wanted, strict=True):
        assert x == pytest.approx(1 / (1 - p / 100))
        assert ms == oracle.get_value_at_percentile(p) / 1000
        # and the raw samples agree to HdrHistogram's 3 significant digits
        raw = ordered[max(0, int(p / 100 * len(ordered) + 0.5) - 1)]
        assert ms * 1000 == pytest.approx(raw, rel=2e-3, abs=1)


def test_every_section_is_filled_and_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from controller import runs_report

    made = made_run(seconds=40, warmup=5, kinds=3)
    made.queries[0]["params"] = None
    db = stored(tmp_path, made)
    out = tmp_path / "r.html"
    # the query log, as the store hands it over
    monkeypatch.setattr(runs_report, "query_log", lambda store, run_id: made.queries)
    code, err = report(db, out, made.record.run.run_id, capsys=capsys)
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    dom = ReportDom(text)
    body = "".join(dom.text)
    # header: target (escaped), state and reason, SLO verdicts
    assert "snowflake:bench_wh/orders &lt;report &amp; check&gt;" in text
    assert "COMPLETED (duration_elapsed)" in body
    assert [r[:2] + r[4:] for r in dom.rows("slo")] == [
        ["all", "p95_ms", "pass"],
        ["kind_0", "error_rate", "pass"],
    ]
    # the phase timeline: one bar per phase before the end
    assert text.count('<rect class="phase"') == 5
    # per kind: all + 3 kinds in each of the two phases
    assert [(r[0], r[1]) for r in dom.rows("kinds")][:4] == [
        ("WARMUP", "all"),
        ("WARMUP", "kind_0"),
        ("WARMUP", "kind_1"),
        ("WARMUP", "kind_2"),
    ]
    # errors with their text (escaped), failed queries from the log
    assert "statement &lt;timed out&gt; after 30 s &amp; more" in text
    assert len(dom.rows("failed")) == 3 * 5  # five per kind
    # the slowest queries: slowest first, at most SLOWEST_PER_KIND per kind
    slow = dom.rows("slowest")
    latencies = [float(r[2].replace(",", "")) for r in slow]
    assert latencies == sorted(latencies, reverse=True)
    assert latencies[0] == pytest.approx(max(q["latency_ms"] for q in made.queries), abs=5e-4)
    assert len(slow) == 3 * SLOWEST_PER_KIND
    assert "o&#x27;brien &amp; &lt;co&gt;" in text and "<co>" not in text
    assert NO_QUERY_LOG not in body
    # server-side timings, warehouse credits, open model, find_max steps
    assert len(dom.rows("server")) == 3 * 4
    assert "0.123456 credits" in body
    assert [r[0] for r in dom.rows("open")] == ["WARMUP", "MEASUREMENT"]
    assert [r[0] for r in dom.rows("find-max")] == ["8", "16", "24", "32"]
    assert "best: 24 connections" in body


def test_two_runs_are_overlaid_and_compared_with_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = made_run("aaaa11112222", seconds=30, warmup=5, kinds=2, seed=3, intervals=200)
    b = made_run("bbbb33334444", seconds=25, warmup=5, kinds=2, seed=4, scale=1.5, intervals=200)
    db = stored(tmp_path, a, b)
    out = tmp_path / "two.html"
    code, err = report(db, out, "aaaa11112222", "bbbb33334444", capsys=capsys)
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    dom = ReportDom(text)
    for m in (a, b):
        run_id = m.record.run.run_id
        assert dom.count(run=run_id, series="qps") == len(m.record.series)
        assert dom.count(run=run_id, series="p99_ms") == len(m.record.series)
        assert len(dom.select(tag="line", run=run_id, series="spectrum")) == 1
    # deltas: B against A, from each run's own measurement figures
    ma = next(p for p in a.record.run.summary.phases if p.phase == lc.MEASUREMENT)
    mb = next(p for p in b.record.run.summary.phases if p.phase == lc.MEASUREMENT)
    header = dom.tables["deltas"][0]
    row = next(r for r in dom.rows("deltas") if r[0] == "all")
    cell = row[header.index("p95_ms")]
    want = (mb.overall.p95_ms - ma.overall.p95_ms) / ma.overall.p95_ms
    assert cell.startswith(f"{ma.overall.p95_ms:,.4g} → {mb.overall.p95_ms:,.4g} ({want:+.1%})")
    assert [r[0] for r in dom.rows("deltas")] == ["all", "kind_0", "kind_1"]
    # with the verdicts and 95 % intervals `runs compare` gives; every latency 1.5 x: slower
    assert main(["runs", "--db", str(db), "compare", "aaaa11112222", "bbbb33334444", "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    for r in dom.rows("deltas"):
        kind = r[0]
        assert r[header.index("verdict")] == compared["verdicts"][kind]
        for metric in ("p50_ms", "p99_ms"):
            d = compared["by_kind"][kind][metric]
            low, high = d["relative_ci95"]
            assert r[header.index(metric)].endswith(f" [{low:+.1%}, {high:+.1%}] {d['verdict']}")
    assert compared["by_kind"]["all"]["p50_ms"]["verdict"] == "slower"
    # the open model's and find_max's figures
    mode = {r[0]: r for r in dom.rows("mode-deltas")}
    assert mode["find_max_best_level"][1:4] == ["24.000", "24.000", "0.000"]
    assert mode["lag_p99_ms"][1] == f"{ma.lag.p99_ms:,.3f}"
    # and each run in full after the comparison, the second with no query log
    assert text.count("<details open>") == 2
    assert NO_QUERY_LOG in "".join(dom.text)


def test_an_unknown_run_or_an_unwritable_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = made_run(seconds=5, warmup=1, kinds=1)
    db = stored(tmp_path, made)
    out = tmp_path / "x.html"
    code, err = report(db, out, made.record.run.run_id, "nosuchrun", capsys=capsys)
    assert code == 2
    assert err == f"error: no run 'nosuchrun' in {db}\n"
    assert not out.exists()
    code, err = report(db, tmp_path / "missing" / "x.html", made.record.run.run_id, capsys=capsys)
    assert code == 2
    assert err.startswith("error: cannot write ") and err.count("\n") == 1


def test_a_run_still_active_is_reported_as_far_as_it_got_and_marked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = made_run(seconds=5, warmup=1, kinds=1, state=lc.MEASUREMENT)
    db = tmp_path / "results.db"
    store = SqliteRunStore(db)
    store.put(made.record.run)  # an active run has its row, not yet its series
    store.close()
    out = tmp_path / "active.html"
    code, err = report(db, out, made.record.run.run_id, capsys=capsys)
    assert code == 0
    assert err.startswith(f"note: run {made.record.run.run_id} is still MEASUREMENT")
    dom = ReportDom(out.read_text(encoding="utf-8"))
    body = "".join(dom.text)
    assert "this run was still MEASUREMENT when the report was made" in body
    assert "the per-second series is stored when the run ends" in body
    assert "histograms are stored when the run ends" in body
    assert [r[1] for r in dom.rows("kinds")] == ["all", "kind_0"] * 2


def test_spectrum_percentiles_stop_where_the_count_does() -> None:
    assert spectrum.percentiles(1) == [0.0]
    ps = spectrum.percentiles(1000)
    assert ps[:2] == [0.0, pytest.approx(100 * (1 - 0.5 ** (1 / 5)))]
    assert all(1 / (1 - p / 100) <= 1000 for p in ps)
    assert hdr.spectrum(b"") == {} and spectrum.points(b"") == []


def test_query_log_entries_are_read_in_any_shape() -> None:
    from types import SimpleNamespace

    from google.protobuf.timestamp_pb2 import Timestamp

    from controller.report_html.model import query_entry

    started = Timestamp()
    started.FromNanoseconds(1_780_000_000_123_456_000)
    as_object = SimpleNamespace(
        kind="get",
        phase=lc.MEASUREMENT,
        worker="w-1",
        connection=3,
        started_at=started,
        latency_ms=12.5,
        params=(7, "x"),
        server_id="01b2-abc",
        error="",
    )
    as_dict = {
        "kind": "get",
        "phase": "MEASUREMENT",
        "worker": "w-1",
        "connection": 3,
        "started_at": "2026-05-28T20:26:40.123456Z",
        "latency_ms": 12.5,
        "params": [7, "x"],
        "server_id": "01b2-abc",
        "error": None,
    }
    assert query_entry(as_object) == query_entry(as_dict)
    assert query_entry(dict(as_dict, params=None)).params is None  # record_params = false
