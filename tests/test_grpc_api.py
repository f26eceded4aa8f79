"""The public gRPC surface of a real in-process controller: reflection, health, RunService
errors, and whole runs driven by real local worker processes against real SQLite files."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from snowload import hdr
from snowload.v1 import common_pb2, run_pb2
from tests.helpers_grpc import (
    LIFECYCLE,
    RPC_TIMEOUT_S,
    SEED_ROWS,
    WATCH_TIMEOUT_S,
    phase,
    running_cluster,
    state_name,
    tiny_workload,
    wait_for_workers,
    watch_to_end,
)

PENDING = common_pb2.STATE_PENDING
PREPARING = common_pb2.STATE_PREPARING
WARMUP = common_pb2.STATE_WARMUP
MEASUREMENT = common_pb2.STATE_MEASUREMENT
PROCESSING = common_pb2.STATE_PROCESSING
COMPLETED = common_pb2.STATE_COMPLETED
FAILED = common_pb2.STATE_FAILED
CANCELLED = common_pb2.STATE_CANCELLED

RUN_SERVICE = "snowload.v1.RunService"
CONTROL_SERVICE = "snowload.v1.ControlService"
HEALTH_SERVICE = "grpc.health.v1.Health"
RUN_METHODS = {"StartRun", "StopRun", "GetRun", "ListRuns", "WatchRun", "ListWorkers"}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Target databases of every worker started in a test live under this directory."""
    path = tmp_path / "snowload-home"
    path.mkdir()
    monkeypatch.setenv("SNOWLOAD_HOME", str(path))
    return path


def _check_latency(stats: common_pb2.LatencyStats, what: str) -> None:
    assert stats.count > 0, what
    assert stats.errors == 0, what
    assert stats.qps > 0, what
    assert 0 < stats.p50_ms <= stats.p95_ms <= stats.p99_ms <= stats.max_ms, (what, stats)


async def _expect_status(awaitable: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await awaitable  # type: ignore[misc]
    assert info.value.code() == code, info.value
    return info.value


# ------------------------------------------------------------------ reflection and health


async def test_reflection_lists_services_and_resolves_run_service() -> None:
    async with running_cluster() as c:
        stub = reflection_pb2_grpc.ServerReflectionStub(c.channel)
        call = stub.ServerReflectionInfo(timeout=RPC_TIMEOUT_S)

        async def ask(**request: str) -> reflection_pb2.ServerReflectionResponse:
            await call.write(reflection_pb2.ServerReflectionRequest(**request))
            response = await call.read()
            assert isinstance(response, reflection_pb2.ServerReflectionResponse)
            assert not response.HasField("error_response"), response.error_response
            return response

        listed = await ask(list_services="")
        names = {s.name for s in listed.list_services_response.service}
        assert {RUN_SERVICE, CONTROL_SERVICE, HEALTH_SERVICE} <= names, names

        found = await ask(file_containing_symbol=RUN_SERVICE)
        assert found.HasField("file_descriptor_response")
        files = {
            f.name: f
            for f in map(
                descriptor_pb2.FileDescriptorProto.FromString,
                found.file_descriptor_response.file_descriptor_proto,
            )
        }
        assert "snowload/v1/run.proto" in files, sorted(files)
        run_file = files["snowload/v1/run.proto"]
        assert run_file.package == "snowload.v1"
        assert {s.name for s in run_file.service} == {"RunService"}

        # What grpcurl does: fetch every dependency by file name until the set is closed,
        # then the service resolves in a fresh descriptor pool.
        missing = [d for f in files.values() for d in f.dependency if d not in files]
        while missing:
            name = missing.pop()
            if name in files:
                continue
            got = await ask(file_by_filename=name)
            for raw in got.file_descriptor_response.file_descriptor_proto:
                fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
                files[fd.name] = fd
                missing.extend(d for d in fd.dependency if d not in files)
            assert name in files, name
        await call.done_writing()

        pool = descriptor_pool.DescriptorPool()
        added: set[str] = set()

        def add(name: str) -> None:
            if name in added:
                return
            for dep in files[name].dependency:
                add(dep)
            pool.Add(files[name])
            added.add(name)

        for name in list(files):
            add(name)
        service = pool.FindServiceByName(RUN_SERVICE)
        assert {m.name for m in service.methods} >= RUN_METHODS
        watch = service.methods_by_name["WatchRun"]
        assert watch.server_streaming
        assert watch.output_type.full_name == "snowload.v1.WatchRunResponse"


@pytest.mark.parametrize("service", ["", RUN_SERVICE, CONTROL_SERVICE])
async def test_health_reports_serving(service: str) -> None:
    async with running_cluster() as c:
        stub = health_pb2_grpc.HealthStub(c.channel)
        response = await stub.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT_S
        )
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_of_unknown_service_is_not_found() -> None:
    async with running_cluster() as c:
        stub = health_pb2_grpc.HealthStub(c.channel)
        await _expect_status(
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5),
            grpc.StatusCode.NOT_FOUND,
        )


# ------------------------------------------------------------------ StartRun validation


def _line_of(text: str, needle: str) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(lines) == 1, (needle, lines)
    return lines[0]


def _bad_requests() -> list[tuple[str, run_pb2.StartRunRequest, list[str]]]:
    good = tiny_workload()
    negative_weight = good.replace("weight = 1\n", "weight = -3\n")
    typo = good.replace("connections = 4", "conections = 4")
    broken = good.replace('warmup = "1s"', 'warmup = "1s')
    bad_duration = good.replace('duration = "2s"', 'duration = "soon"')
    oversized = good + "# " + "x" * (1 << 20) + "\n"
    return [
        (
            "validation-error",
            run_pb2.StartRunRequest(workload_toml=negative_weight, source_name="bad.toml"),
            [
                f"bad.toml:{_line_of(negative_weight, 'weight = -3')}: query[1].weight: ",
                "must be a positive number, got -3",
            ],
        ),
        (
            "unknown-field",
            run_pb2.StartRunRequest(workload_toml=typo, source_name="bad.toml"),
            [
                f"bad.toml:{_line_of(typo, 'conections')}: load.conections: unknown field",
                "did you mean 'connections'?",
            ],
        ),
        (
            "toml-syntax",
            run_pb2.StartRunRequest(workload_toml=broken),
            [f"workload_toml:{_line_of(broken, 'warmup = ')}: invalid TOML"],
        ),
        (
            "bad-duration-in-file",
            run_pb2.StartRunRequest(workload_toml=bad_duration, source_name="bad.toml"),
            [f"bad.toml:{_line_of(bad_duration, 'soon')}: load.duration: ", '"soon"'],
        ),
        ("empty", run_pb2.StartRunRequest(workload_toml=""), ["workload_toml is empty"]),
        ("blank", run_pb2.StartRunRequest(workload_toml=" \n\t\n"), ["workload_toml is empty"]),
        (
            "oversized",
            run_pb2.StartRunRequest(workload_toml=oversized),
            ["workload_toml is larger than 1048576 bytes"],
        ),
        (
            "bad-warmup-override",
            run_pb2.StartRunRequest(workload_toml=good, warmup="soon"),
            ["override", "invalid duration 'soon'"],
        ),
        (
            "bad-duration-override",
            run_pb2.StartRunRequest(workload_toml=good, duration="-1s"),
            ["override", "duration must not be negative, got '-1s'"],
        ),
        (
            "too-few-connections-override",
            run_pb2.StartRunRequest(workload_toml=good, workers=8, connections=2),
            ["overrides: connections: must be at least load.workers (8)"],
        ),
    ]


BAD_REQUESTS = _bad_requests()


@pytest.mark.parametrize(
    ("request_", "expected"),
    [pytest.param(req, exp, id=name) for name, req, exp in BAD_REQUESTS],
)
async def test_start_run_rejects_bad_input(
    request_: run_pb2.StartRunRequest, expected: list[str]
) -> None:
    async with running_cluster() as c:
        error = await _expect_status(
            c.runs.StartRun(request_, timeout=RPC_TIMEOUT_S), grpc.StatusCode.INVALID_ARGUMENT
        )
        details = error.details() or ""
        for part in expected:
            assert part in details, (part, details)
        # still answering, and nothing was created
        listed = await c.runs.ListRuns(run_pb2.ListRunsRequest(), timeout=RPC_TIMEOUT_S)
        assert list(listed.runs) == []
        assert c.controller.runs.active == {}


async def test_bad_requests_in_a_row_leave_the_controller_usable() -> None:
    async with running_cluster() as c:
        for name, request, _ in BAD_REQUESTS:
            error = await _expect_status(
                c.runs.StartRun(request, timeout=RPC_TIMEOUT_S), grpc.StatusCode.INVALID_ARGUMENT
            )
            assert error.details(), name
            listed = await c.runs.ListRuns(run_pb2.ListRunsRequest(), timeout=RPC_TIMEOUT_S)
            assert list(listed.runs) == [], name
        # a good request is still accepted afterwards
        started = await c.runs.StartRun(
            run_pb2.StartRunRequest(workload_toml=tiny_workload()), timeout=RPC_TIMEOUT_S
        )
        listed = await c.runs.ListRuns(run_pb2.ListRunsRequest(), timeout=RPC_TIMEOUT_S)
        assert [r.run_id for r in listed.runs] == [started.run.run_id]


# ------------------------------------------------------------------ unknown runs


async def test_unknown_run_id_is_not_found() -> None:
    async with running_cluster() as c:
        for run_id in ("does-not-exist", ""):
            await _expect_status(
                c.runs.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=RPC_TIMEOUT_S),
                grpc.StatusCode.NOT_FOUND,
            )
            await _expect_status(
                c.runs.StopRun(run_pb2.StopRunRequest(run_id=run_id), timeout=RPC_TIMEOUT_S),
                grpc.StatusCode.NOT_FOUND,
            )
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await watch_to_end(c.runs, run_id)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND


# ------------------------------------------------------------------ whole runs


async def test_full_run_with_two_workers(home: Path) -> None:
    async with running_cluster(workers=2) as c:
        started = await c.runs.StartRun(
            run_pb2.StartRunRequest(workload_toml=tiny_workload(), source_name="tiny.toml"),
            timeout=RPC_TIMEOUT_S,
        )
        run_id = started.run.run_id
        assert run_id
        assert started.run.state == PENDING
        assert started.run.workers == 2
        assert started.run.connections == 4

        messages = await watch_to_end(c.runs, run_id)

        # the stream: lifecycle order, one final message at the very end
        assert messages, "WatchRun yielded nothing"
        assert all(m.run.run_id == run_id for m in messages)
        assert [m.final for m in messages] == [False] * (len(messages) - 1) + [True]
        states = [m.run.state for m in messages]
        assert all(s in LIFECYCLE for s in states), [state_name(s) for s in states]
        order = [LIFECYCLE.index(s) for s in states]
        assert order == sorted(order), [state_name(s) for s in states]
        final = messages[-1].run
        assert final.state == COMPLETED, state_name(final.state)
        assert final.reason == "duration_elapsed"

        # GetRun: the same terminal state, every lifecycle event, the summary
        got = (await c.runs.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)).run
        assert got.state == COMPLETED
        assert got.reason == "duration_elapsed"
        assert got.end_time == final.end_time
        assert got.summary == final.summary
        assert [e.state for e in got.events] == list(LIFECYCLE)
        assert got.events[-1].reason == "duration_elapsed"
        assert got.HasField("start_time")
        assert got.measurement_start_time.ToNanoseconds() > got.start_time.ToNanoseconds()
        assert got.measurement_end_time.ToNanoseconds() > got.measurement_start_time.ToNanoseconds()

        measurement = phase(got.summary, MEASUREMENT)
        warmup = phase(got.summary, WARMUP)
        assert measurement is not None, got.summary
        assert warmup is not None, got.summary
        for ps in (measurement, warmup):
            name = state_name(ps.phase)
            _check_latency(ps.overall, name)
            assert set(ps.by_kind) == {"lookup", "insert"}
            for kind, stats in ps.by_kind.items():
                _check_latency(stats, f"{name}/{kind}")
            assert ps.overall.count == sum(s.count for s in ps.by_kind.values())
        assert measurement.duration.ToTimedelta().total_seconds() >= 2.0

        # the real database: setup ran once, and every counted insert is a row
        db = home / "targets" / "grpc_api.db"
        assert db.is_file()
        with closing(sqlite3.connect(db)) as conn:
            (rows,) = conn.execute("SELECT count(*) FROM items").fetchone()
        inserts = measurement.by_kind["insert"].count + warmup.by_kind["insert"].count
        assert rows == SEED_ROWS + inserts

        # a finished run cannot be stopped
        error = await _expect_status(
            c.runs.StopRun(run_pb2.StopRunRequest(run_id=run_id), timeout=RPC_TIMEOUT_S),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert run_id in (error.details() or "")

        # a watch opened after the end: exactly the terminal state
        late = await watch_to_end(c.runs, run_id)
        assert len(late) == 1, late
        assert late[0].final
        assert late[0].run.state == COMPLETED
        assert late[0].run.reason == "duration_elapsed"
        assert late[0].run == got

        listed = await c.runs.ListRuns(run_pb2.ListRunsRequest(), timeout=RPC_TIMEOUT_S)
        assert [(r.run_id, r.state) for r in listed.runs] == [(run_id, COMPLETED)]

        # the stored histograms: per phase and kind, and per second, the same counts
        hists = await c.runs.GetRunHistograms(
            run_pb2.GetRunHistogramsRequest(run_id=run_id), timeout=RPC_TIMEOUT_S
        )
        by_key = {(h.phase, h.kind): hdr.decode(h.histogram) for h in hists.phases}
        for kind, stats in measurement.by_kind.items():
            assert by_key[(MEASUREMENT, kind)].get_total_count() == stats.count - stats.errors
        assert by_key[(MEASUREMENT, "")].get_total_count() == (
            measurement.overall.count - measurement.overall.errors
        )
        series = await c.runs.GetRunSeries(
            run_pb2.GetRunSeriesRequest(run_id=run_id), timeout=RPC_TIMEOUT_S
        )
        points = {p.second: p for p in series.points}
        assert hists.intervals
        for interval in hists.intervals:
            point = points[interval.second]
            count = hdr.decode(interval.histogram).get_total_count()
            assert count == point.overall.count - point.overall.errors
            assert interval.end_time.ToNanoseconds() > interval.start_time.ToNanoseconds()
        await _expect_status(
            c.runs.GetRunHistograms(
                run_pb2.GetRunHistogramsRequest(run_id="no-such-run"), timeout=RPC_TIMEOUT_S
            ),
            grpc.StatusCode.NOT_FOUND,
        )

        workers = (
            await c.runs.ListWorkers(run_pb2.ListWorkersRequest(), timeout=RPC_TIMEOUT_S)
        ).workers
        assert len(workers) == 2
        assert len({w.worker_id for w in workers}) == 2
        pids = {p.pid for p in c.workers.procs}
        for w in workers:
            assert w.connected, w
            assert w.run_id == "", w
            assert w.labels["local"] == "true"
            assert w.pid in pids


async def test_no_slo_verdict_reads_as_passed_before_the_run_has_one() -> None:
    """slo_passed is unset (absent in JSON) until the verdicts exist: a PENDING or
    PREPARING run has not passed anything, and a run without [slo] never has."""
    toml = tiny_workload(duration="1s") + "\n[slo]\np95_ms = 60000\n"
    async with running_cluster(workers=2) as c:
        started = await c.runs.StartRun(
            run_pb2.StartRunRequest(workload_toml=toml), timeout=RPC_TIMEOUT_S
        )
        assert not started.run.HasField("slo_passed")
        assert "sloPassed" not in json_format.MessageToJson(started.run)
        messages = await watch_to_end(c.runs, started.run.run_id)
        assert all(not m.run.HasField("slo_passed") for m in messages[:-1])
        final = messages[-1].run
        assert final.HasField("slo_passed") and final.slo_passed and final.slo
        plain = await c.runs.StartRun(
            run_pb2.StartRunRequest(workload_toml=tiny_workload(duration="1s")),
            timeout=RPC_TIMEOUT_S,
        )
        done = await watch_to_end(c.runs, plain.run.run_id)
        assert done[-1].run.state == COMPLETED and not done[-1].run.HasField("slo_passed")


async def test_stop_run_during_measurement() -> None:
    async with running_cluster(workers=2) as c:
        started = await c.runs.StartRun(
            run_pb2.StartRunRequest(workload_toml=tiny_workload(), duration="5m"),
            timeout=RPC_TIMEOUT_S,
        )
        run_id = started.run.run_id
        assert started.run.duration.ToTimedelta().total_seconds() == 300

        messages: list[run_pb2.WatchRunResponse] = []
        stopped: run_pb2.StopRunResponse | None = None
        measured_before_stop = 0
        call = c.runs.WatchRun(run_pb2.WatchRunRequest(run_id=run_id), timeout=WATCH_TIMEOUT_S)
        async for msg in call:
            messages.append(msg)
            # stop once MEASUREMENT has measured something (the first interval report)
            if stopped is None and msg.run.state == MEASUREMENT and msg.progress.count > 0:
                measured_before_stop = msg.progress.count
                stopped = await c.runs.StopRun(
                    run_pb2.StopRunRequest(run_id=run_id), timeout=RPC_TIMEOUT_S
                )
                assert stopped.run.run_id == run_id
                # stopping is under way: a second StopRun is refused
                await _expect_status(
                    c.runs.StopRun(run_pb2.StopRunRequest(run_id=run_id), timeout=RPC_TIMEOUT_S),
                    grpc.StatusCode.FAILED_PRECONDITION,
                )
        assert stopped is not None, [state_name(m.run.state) for m in messages]

        final = messages[-1]
        assert final.final
        assert final.run.state == CANCELLED, state_name(final.run.state)
        assert final.run.reason == "user_requested"
        assert [m.final for m in messages].count(True) == 1

        got = (await c.runs.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)).run
        assert got.state == CANCELLED
        assert got.reason == "user_requested"
        assert [e.state for e in got.events] == [
            PENDING,
            PREPARING,
            WARMUP,
            MEASUREMENT,
            CANCELLED,
        ]
        assert got.events[-1].reason == "user_requested"
        assert got.HasField("measurement_end_time")
        measurement = phase(got.summary, MEASUREMENT)
        assert measurement is not None, got.summary
        assert measurement.overall.count >= measured_before_stop > 0
        assert measurement.overall.errors == 0
        assert 0 < measurement.duration.ToTimedelta().total_seconds() < 300
        assert phase(got.summary, WARMUP) is not None

        await _expect_status(
            c.runs.StopRun(run_pb2.StopRunRequest(run_id=run_id), timeout=RPC_TIMEOUT_S),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        # the workers are free again
        workers = await wait_for_workers(c.runs, 2)
        assert all(w.run_id == "" for w in workers)


async def test_run_needing_more_workers_than_attached_fails_no_workers() -> None:
    async with running_cluster(workers=1) as c:
        started = await c.runs.StartRun(
            run_pb2.StartRunRequest(workload_toml=tiny_workload(workers=3, ready_timeout="1s")),
            timeout=RPC_TIMEOUT_S,
        )
        run_id = started.run.run_id
        messages = await watch_to_end(c.runs, run_id)
        final = messages[-1]
        assert final.final
        assert final.run.state == FAILED, state_name(final.run.state)
        assert final.run.reason == "no_workers"
        assert "needed 3" in final.run.message
        assert "1 attached" in final.run.message
        assert {m.run.state for m in messages} <= {PENDING, FAILED}

        got = (await c.runs.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)).run
        assert got.state == FAILED
        assert got.reason == "no_workers"
        assert [e.state for e in got.events] == [PENDING, FAILED]
        assert not got.HasField("start_time")
        assert list(got.summary.phases) == []

        workers = (
            await c.runs.ListWorkers(run_pb2.ListWorkersRequest(), timeout=RPC_TIMEOUT_S)
        ).workers
        assert len(workers) == 1
        assert workers[0].connected
        assert workers[0].run_id == ""
