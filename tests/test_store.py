"""One suite for every RunStore implementation, plus what only the SQLite store does."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from controller import lifecycle as lc
from controller.metric_cells import PackedCell, PackedSchedule
from controller.store import (
    IntervalHistogram,
    MemoryRunStore,
    RunRecord,
    RunStore,
    StoredSecond,
    open_store,
)
from controller.store_sqlite import SCHEMA_VERSION, SchemaTooNew, SqliteRunStore
from snowload import hdr
from snowload.v1 import common_pb2, run_pb2


def make_run(run_id: str, create_s: int, state: lc.State = lc.COMPLETED) -> run_pb2.Run:
    run = run_pb2.Run(
        run_id=run_id,
        name=f"name-{run_id}",
        state=state,
        reason="duration_elapsed" if state == lc.COMPLETED else "",
        target="sqlite",
        mode=common_pb2.LOAD_MODE_CLOSED,
        workers=2,
        connections=8,
        workload_json='{"name": "x"}',
        slo_passed=True,
        enrichment=common_pb2.ENRICHMENT_STATUS_SKIPPED,
    )
    run.create_time.FromSeconds(create_s)
    run.start_time.FromSeconds(create_s + 1)
    run.warmup.FromSeconds(2)
    run.duration.FromSeconds(10)
    phase = run.summary.phases.add(phase=lc.MEASUREMENT)
    phase.overall.count = 1000
    phase.overall.p95_ms = 1.5
    phase.by_kind["get"].count = 600
    phase.by_kind["put"].count = 400
    run.events.add(state=lc.PENDING).event_time.FromSeconds(create_s)
    run.events.add(state=lc.PREPARING).event_time.FromSeconds(create_s + 1)
    run.run_workers.add(worker_id="w0", index=0, connections=4, count=600)
    run.run_workers.add(worker_id="w1", index=1, connections=4, count=400)
    run.slo.add(metric="p95_ms", limit=2.0, actual=1.5, passed=True)
    run.error_samples.add(
        kind="put", category="constraint", message="UNIQUE constraint failed: t.k"
    )
    run.degraded = True
    run.warnings.append("worker w1 was lost")
    run.warehouse.name = "LOAD_WH"
    run.warehouse.size = "Medium"
    run.credits = 0.25
    run.cost = 0.75
    return run


class StoreSuite:
    """Subclasses provide ``store``; every test here runs against each implementation."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> RunStore:
        raise NotImplementedError

    def test_get_unknown_is_none(self, store: RunStore) -> None:
        assert store.get("nope") is None
        assert store.series("nope") == []
        assert store.histograms("nope") == {}

    def test_put_then_get_round_trips_everything(self, store: RunStore) -> None:
        run = make_run("r1", 1000)
        store.put(run)
        assert store.get("r1") == run

    def test_put_updates_state_in_place(self, store: RunStore) -> None:
        run = make_run("r1", 1000, state=lc.MEASUREMENT)
        store.put(run)
        run.state = lc.FAILED
        run.reason = "worker_lost"
        run.events.add(state=lc.FAILED, reason="worker_lost").event_time.FromSeconds(1005)
        store.put(run)
        got = store.get("r1")
        assert got is not None
        assert got.state == lc.FAILED and got.reason == "worker_lost"
        assert [e.state for e in got.events] == [lc.PENDING, lc.PREPARING, lc.FAILED]
        assert len(store.list_runs(10)) == 1

    def test_list_is_newest_first_paged_and_brief(self, store: RunStore) -> None:
        for i in range(7):
            store.put(make_run(f"r{i}", 1000 + i))
        page1 = store.list_runs(3)
        page2 = store.list_runs(3, 3)
        page3 = store.list_runs(3, 6)
        assert [r.run_id for r in page1] == ["r6", "r5", "r4"]
        assert [r.run_id for r in page2] == ["r3", "r2", "r1"]
        assert [r.run_id for r in page3] == ["r0"]
        assert page1[0].summary.phases[0].overall.count == 1000
        assert page1[0].workload_json == ""  # details stay out of listings

    def test_save_keeps_series_and_histograms(self, store: RunStore) -> None:
        h = hdr.new_histogram()
        for v in (100, 200, 300, 5000):
            h.record_value(v)
        encoded = hdr.encode(h)
        points = [
            common_pb2.SeriesPoint(
                second=s,
                phase=lc.MEASUREMENT,
                overall=common_pb2.LatencyStats(count=10 * s, qps=10.0 * s, p95_ms=0.3),
            )
            for s in range(1, 6)
        ]
        record = RunRecord(
            run=make_run("r1", 1000),
            series=points,
            histograms={(lc.MEASUREMENT, ""): encoded, (lc.MEASUREMENT, "get"): encoded},
            intervals=[IntervalHistogram(1, lc.MEASUREMENT, 10, 20, encoded)],
        )
        store.save(record)
        assert store.series("r1") == points
        hists = store.histograms("r1")
        assert set(hists) == {(lc.MEASUREMENT, ""), (lc.MEASUREMENT, "get")}
        assert hdr.decode(hists[(lc.MEASUREMENT, "get")]).get_total_count() == 4
        assert store.intervals("r1") == [IntervalHistogram(1, lc.MEASUREMENT, 10, 20, encoded)]

    def test_run_queries_filters_orders_and_pages(self, store: RunStore) -> None:
        entries = []
        rows = [  # kind, phase, ms, error, slowest
            ("get", lc.WARMUP, 9.0, "", True),
            ("get", lc.MEASUREMENT, 3.0, "", True),
            ("put", lc.MEASUREMENT, 7.0, "", True),
            ("put", lc.MEASUREMENT, 1.0, "lock timeout", False),
            ("get", lc.MEASUREMENT, 5.0, "", True),
            ("get", lc.MEASUREMENT, 8.0, "", False),  # sampled only
        ]
        for n, (kind, phase, ms, error, slowest) in enumerate(rows, start=1):
            e = common_pb2.QueryEntry(
                entry_id=n,
                kind=kind,
                phase=phase,
                latency_ms=ms,
                error=error,
                slowest=slowest,
                sampled=not slowest,
                params_json=f"[{n}]",
                server_id=str(n),
            )
            e.start_time.FromSeconds(1000 + n)
            entries.append(e)
        store.save(RunRecord(run=make_run("r1", 1000), queries=entries))
        ids = [e.entry_id for e in store.run_queries("r1")]
        assert ids == [1, 2, 3, 4, 5, 6]
        assert [e.entry_id for e in store.run_queries("r1", limit=2, offset=3)] == [4, 5]
        assert [e.entry_id for e in store.run_queries("r1", kind="put")] == [3, 4]
        assert [e.entry_id for e in store.run_queries("r1", phase=lc.WARMUP)] == [1]
        assert [e.entry_id for e in store.run_queries("r1", errors=True)] == [4]
        # the N slowest of the slowest kept, slowest first (a sampled-only 8 ms is not one)
        slow = store.run_queries("r1", slowest=2, phase=lc.MEASUREMENT)
        assert [(e.entry_id, e.latency_ms) for e in slow] == [(3, 7.0), (5, 5.0)]
        got = store.run_queries("r1", errors=True)[0]
        assert (got.params, got.server_id, got.error, got.kind) == ([4], "4", "lock timeout", "put")
        assert got.started_at == "1970-01-01T00:16:44Z" and got.phase == lc.MEASUREMENT
        assert store.run_queries("nope") == []

    def test_seconds_appended_while_running_survive_the_final_save(self, store: RunStore) -> None:
        store.put(make_run("r1", 1000, state=lc.MEASUREMENT))
        h = hdr.new_histogram()
        h.record_value(250)
        one = hdr.encode(h)
        h.record_value(900)
        two = hdr.encode(h)

        def second(s: int, encoded: bytes, errors: int) -> StoredSecond:
            point = common_pb2.SeriesPoint(
                second=s, phase=lc.MEASUREMENT, overall=common_pb2.LatencyStats(count=s)
            )
            cells = {(lc.MEASUREMENT, "get"): PackedCell(encoded, b"", {"lock": errors})}
            lag = {lc.MEASUREMENT: PackedSchedule(encoded, late=s, dropped=errors)}
            return StoredSecond(point, s * 10, s * 10 + 10, encoded, cells, lag)

        store.append_seconds("r1", [second(1, one, 0), second(2, one, 1)])
        store.append_seconds("r1", [second(2, two, 3), second(3, one, 0)])  # 2 replaced
        stored = store.stored_seconds("r1")
        assert [s.second for s in stored] == [1, 2, 3]
        assert stored[1] == second(2, two, 3)
        # the end of the run adds its row and totals; the seconds stay
        store.save(RunRecord(run=make_run("r1", 1000), histograms={(lc.MEASUREMENT, ""): two}))
        assert [p.second for p in store.series("r1")] == [1, 2, 3]
        assert [i.second for i in store.intervals("r1")] == [1, 2, 3]
        assert store.stored_seconds("r1")[1].cells[(lc.MEASUREMENT, "get")].errors == {"lock": 3}

    def test_find_by_unique_prefix(self, store: RunStore) -> None:
        store.put(make_run("abcd1234", 1000))
        store.put(make_run("abce9999", 1001))
        found = store.find("abcd")
        assert found is not None and found.run_id == "abcd1234"
        assert store.find("abc") is None  # too short to guess

    def test_close_interrupted_closes_only_active_runs(self, store: RunStore) -> None:
        store.put(make_run("done", 1000))
        store.put(make_run("busy", 1001, state=lc.MEASUREMENT))
        store.put(make_run("waiting", 1002, state=lc.PENDING))
        assert sorted(store.close_interrupted()) == ["busy", "waiting"]
        for run_id in ("busy", "waiting"):
            run = store.get(run_id)
            assert run is not None
            assert run.state == lc.FAILED
            assert run.reason == "controller_restarted"
            assert run.events[-1].state == lc.FAILED
            assert run.HasField("end_time")
        done = store.get("done")
        assert done is not None and done.state == lc.COMPLETED
        assert store.close_interrupted() == []

    def test_kind_intervals_and_tags(self, store: RunStore) -> None:
        hist = hdr.new_histogram()
        hist.record_value(1500)
        enc = hdr.encode(hist)
        intervals = [
            IntervalHistogram(1, lc.MEASUREMENT, 0, 1_000_000_000, enc),
            IntervalHistogram(2, lc.MEASUREMENT, 1_000_000_000, 2_000_000_000, enc),
            IntervalHistogram(1, lc.MEASUREMENT, 0, 1_000_000_000, enc, "get"),
            IntervalHistogram(2, lc.MEASUREMENT, 1_000_000_000, 2_000_000_000, enc, "put"),
        ]
        store.save(RunRecord(run=make_run("r-kinds", 100), intervals=intervals))
        store.put(make_run("r-other", 200))
        assert store.intervals("r-kinds") == intervals[:2]
        assert store.kind_intervals("r-kinds") == intervals[2:]
        assert store.tagged("base") is None
        store.tag("base", "r-kinds")
        store.tag("nightly", "r-kinds")
        assert store.tagged("base") == "r-kinds"
        assert store.tags("r-kinds") == ["base", "nightly"]
        store.tag("base", "r-other")  # a name moves
        assert store.tagged("base") == "r-other"
        assert store.tags("r-kinds") == ["nightly"]


class TestMemoryStore(StoreSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> RunStore:
        return MemoryRunStore()


class TestSqliteStore(StoreSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> RunStore:
        return SqliteRunStore(tmp_path / "results.db")

    def test_history_survives_reopening(self, tmp_path: Path) -> None:
        path = tmp_path / "r.db"
        first = SqliteRunStore(path)
        first.put(make_run("r1", 1000))
        first.close()
        again = SqliteRunStore(path)
        assert again.get("r1") == make_run("r1", 1000)

    def test_wal_and_schema_version(self, tmp_path: Path) -> None:
        store = SqliteRunStore(tmp_path / "r.db")
        assert store.schema_version == SCHEMA_VERSION
        db = sqlite3.connect(tmp_path / "r.db")
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    def test_newer_schema_is_refused_and_left_untouched(self, tmp_path: Path) -> None:
        path = tmp_path / "future.db"
        db = sqlite3.connect(path)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.close()
        with pytest.raises(SchemaTooNew, match="schema version"):
            SqliteRunStore(path)
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1

    def test_default_location_honours_env(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SNOWLOAD_DB", str(tmp_path / "env.db"))
        store = open_store()
        assert isinstance(store, SqliteRunStore)
        assert store.path == tmp_path / "env.db"
        monkeypatch.delenv("SNOWLOAD_DB")
        monkeypatch.setenv("SNOWLOAD_HOME", str(tmp_path / "home"))
        store = open_store()
        assert isinstance(store, SqliteRunStore)
        assert store.path == tmp_path / "home" / "results.db"


def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    from controller.store_sqlite import MIGRATIONS

    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO runs (run_id, name, state, mode, target, create_ns, workers, connections,"
        " warmup_ns, duration_ns) VALUES ('old', 'old-run', 6, 1, 'sqlite', 5, 1, 1, 0, 1)"
    )
    db.execute("INSERT INTO error_samples VALUES ('old', 'lock', 'database is locked')")
    db.commit()
    db.close()
    store = SqliteRunStore(path)
    assert store.schema_version == SCHEMA_VERSION > 1
    old = store.get("old")
    assert old is not None and old.name == "old-run" and old.state == lc.COMPLETED
    assert not old.HasField("server")
    assert [(e.kind, e.category, e.message) for e in old.error_samples] == [
        ("", "lock", "database is locked")  # samples from before they named their kind
    ]
    assert not old.HasField("slo_passed")  # no verdicts: no claim that it passed
    run = make_run("new", 2000)
    run.server.status = common_pb2.ENRICHMENT_STATUS_COMPLETED
    run.server.timings.add(kind="get", calls=5, mean_ms=1.5)
    store.put(run)
    assert store.get("new") == run
