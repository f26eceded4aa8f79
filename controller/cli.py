"""``snowload run`` (headless), ``snowload controller`` (the daemon), ``snowload runs``.

Exit codes of ``snowload run``: 0 the run COMPLETED and its SLOs passed, 4 it completed
but an SLO failed, 3 it FAILED or was CANCELLED, 2 bad input (nothing ran).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import grpc
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from controller import lifecycle as lc
from controller import runs_cli
from controller.local_workers import LocalWorkers
from controller.report import summary_dict, summary_table
from controller.server import Controller, ControllerSettings
from controller.store import RunStore, open_store
from controller.store_sqlite import SchemaTooNew
from snowload.channel import TOKEN_ENV, ChannelConfig, open_channel
from snowload.durations import format_duration, parse_duration
from snowload.v1 import run_pb2, run_pb2_grpc
from snowload.workload import Overrides, WorkloadError, load_file

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 3
EXIT_SLO_FAILED = 4
DB_HELP = "results database (default: $SNOWLOAD_DB, else <data dir>/results.db)"


def _duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snowload")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a workload headless with local workers")
    run.add_argument("workload", help="workload file (TOML)")
    run.add_argument("--workers", type=int, help="worker processes (overrides the file)")
    run.add_argument("--connections", type=int, help="total connections (overrides the file)")
    run.add_argument("--warmup", type=_duration_arg, help="warmup, e.g. 5s (0s skips it)")
    run.add_argument("--duration", type=_duration_arg, help="measurement duration, e.g. 30s")
    run.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    run.add_argument("--db", help=DB_HELP)
    run.add_argument("--log-level", default="WARNING")
    remote = run.add_argument_group(
        "remote", "run on a controller daemon and its workers instead of local ones"
    )
    remote.add_argument("--controller", metavar="HOST:PORT", help="the daemon's address")
    remote.add_argument(
        "--token", default=None, help="bearer token for the daemon (default: $SNOWLOAD_TOKEN)"
    )
    remote.add_argument("--tls", action="store_true", help="TLS with the system trust store")
    remote.add_argument("--tls-ca", default=None, help="PEM CA of the daemon's certificate")
    remote.add_argument("--tls-cert", default=None, help="PEM client certificate (mutual TLS)")
    remote.add_argument("--tls-key", default=None, help="PEM client key (mutual TLS)")

    ctl = sub.add_parser("controller", help="run the controller daemon")
    ctl.add_argument(
        "--listen", default="127.0.0.1:7070", help="HOST:PORT to bind (default 127.0.0.1:7070)"
    )
    ctl.add_argument("--local-workers", type=int, default=0, help="start N local workers")
    ctl.add_argument("--db", help=DB_HELP)
    ctl.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV, ""),
        help="bearer token every client must send (default: $SNOWLOAD_TOKEN)",
    )
    ctl.add_argument("--tls-cert", default="", help="PEM certificate chain: serve TLS")
    ctl.add_argument("--tls-key", default="", help="PEM private key for --tls-cert")
    ctl.add_argument(
        "--tls-client-ca", default="", help="PEM CA: require client certificates (mutual TLS)"
    )
    ctl.add_argument(
        "--insecure",
        action="store_true",
        help="allow listening beyond loopback without a token",
    )
    ctl.add_argument(
        "--max-active-runs", type=int, default=16, help="refuse new runs beyond this many"
    )
    ctl.add_argument(
        "--loss-timeout",
        type=_duration_arg,
        default=3.0,
        help="a worker silent for longer than this is lost (default 3s)",
    )
    ctl.add_argument(
        "--parent-pid",
        type=int,
        default=0,
        help="shut down (cleanly) when this process dies, e.g. the TUI that started it",
    )
    ctl.add_argument("--log-level", default="INFO")
    runs_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_BAD_INPUT if exc.code else EXIT_OK
    logging.basicConfig(
        level=getattr(args, "log_level", "WARNING").upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if args.command == "run":
        return run_main(args)
    if args.command == "runs":
        return runs_cli.main(args)
    return asyncio.run(controller_main(args))


# ---------------------------------------------------------------------------- run


def run_main(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    if not err.is_terminal:
        err = Console(stderr=True, width=120, soft_wrap=True)
    overrides = Overrides(
        workers=args.workers,
        connections=args.connections,
        warmup_s=args.warmup,
        duration_s=args.duration,
    )
    try:
        workload = load_file(args.workload, overrides)
    except WorkloadError as exc:
        _error(err, str(exc))
        return EXIT_BAD_INPUT
    text = Path(args.workload).read_text(encoding="utf-8")
    request = run_pb2.StartRunRequest(
        workload_toml=text,
        source_name=str(args.workload),
        workers=args.workers or 0,
        connections=args.connections or 0,
        warmup=format_duration(args.warmup) if args.warmup is not None else "",
        duration=format_duration(args.duration) if args.duration is not None else "",
    )
    if args.controller:
        if args.db:
            _error(err, "--db names a local results database: the daemon stores remote runs")
            return EXIT_BAD_INPUT
        config = ChannelConfig.from_env(
            args.controller,
            token=args.token,
            tls_ca=args.tls_ca,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls=args.tls,
        )
        try:
            final = asyncio.run(_run_remote(request, config, err))
        except grpc.aio.AioRpcError as exc:
            _error(err, f"controller {args.controller}: {exc.code().name}: {exc.details()}")
            bad = exc.code() == grpc.StatusCode.INVALID_ARGUMENT
            return EXIT_BAD_INPUT if bad else EXIT_RUN_FAILED
        return _report(final, err, json_out=args.json)
    try:
        store = open_store(args.db)
    except (OSError, sqlite3.Error, SchemaTooNew) as exc:
        _error(err, f"results database: {exc}")
        return EXIT_BAD_INPUT
    final = asyncio.run(_run_headless(request, workload.load.workers, err, store))
    return _report(final, err, json_out=args.json)


def _report(final: run_pb2.Run, err: Console, *, json_out: bool) -> int:
    err.print(summary_table(final))
    if final.message:
        err.print(
            f"{lc.state_name(final.state)}: {final.reason} — {final.message}",
            markup=False,
            highlight=False,
        )
    if json_out:
        print(json.dumps(summary_dict(final), indent=2))
    if final.state != lc.COMPLETED:
        return EXIT_RUN_FAILED
    return EXIT_OK if final.slo_passed else EXIT_SLO_FAILED


def _error(err: Console, message: str) -> None:
    """Print an error verbatim: messages quote TOML ([[query]]) and file names."""
    err.print(Text("error: ", style="red") + Text(message), highlight=False, soft_wrap=True)


async def _run_headless(
    request: run_pb2.StartRunRequest, workers: int, err: Console, store: RunStore
) -> run_pb2.Run:
    controller = Controller(ControllerSettings(listen="127.0.0.1:0"), store)
    await controller.start()
    local = LocalWorkers(controller.address, workers)
    local.start()
    try:
        async with grpc.aio.insecure_channel(controller.address) as channel:
            return await _start_and_follow(run_pb2_grpc.RunServiceStub(channel), request, err)
    finally:
        await local.stop()
        await controller.stop()


async def _run_remote(
    request: run_pb2.StartRunRequest, config: ChannelConfig, err: Console
) -> run_pb2.Run:
    """The daemon runs it on its workers and stores it; this follows it like a local run
    (and Ctrl-C stops it there)."""
    async with open_channel(config) as channel:
        stub = run_pb2_grpc.RunServiceStub(channel)
        final = await _start_and_follow(stub, request, err)
        err.print(f"stored by the controller at {config.address} as run {final.run_id}")
        return final


async def _start_and_follow(
    stub: run_pb2_grpc.RunServiceStub, request: run_pb2.StartRunRequest, err: Console
) -> run_pb2.Run:
    started = await stub.StartRun(request, timeout=10)
    run_id = started.run.run_id
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[object]] = []

    def on_signal() -> None:
        if not stopping:
            err.print("stopping the run (Ctrl-C again to wait less patiently)…")
            stopping.append(
                loop.create_task(stub.StopRun(run_pb2.StopRunRequest(run_id=run_id), timeout=10))
            )

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        return await _watch_with_progress(stub, run_id, err)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        for task in stopping:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await task


async def _watch_with_progress(
    stub: run_pb2_grpc.RunServiceStub, run_id: str, err: Console
) -> run_pb2.Run:
    """Follow the run to its end: a live progress bar on a terminal, plain lines in logs."""
    render = _ProgressBar(err) if err.is_terminal else _ProgressLines(err, run_id)
    last: run_pb2.WatchRunResponse | None = None
    with render:
        async for update in stub.WatchRun(run_pb2.WatchRunRequest(run_id=run_id)):
            last = update
            render.update(update)
    if last is None or not last.final:
        # the stream ended without a terminal state: ask for it
        got: run_pb2.GetRunResponse = await stub.GetRun(
            run_pb2.GetRunRequest(run_id=run_id), timeout=10
        )
        return got.run
    return last.run


def _stats_text(prog: run_pb2.Progress) -> str:
    return (
        f"QPS {prog.qps:>9,.0f}  p95 {prog.p95_ms:7.2f} ms  "
        f"errors {prog.errors:,}  conns {prog.active_connections}"
    )


class _ProgressBar:
    def __init__(self, err: Console) -> None:
        columns = (
            TextColumn("[bold]{task.fields[phase]:<11}"),
            BarColumn(bar_width=30),
            TimeElapsedColumn(),
            TextColumn("{task.fields[stats]}"),
        )
        self.progress = Progress(*columns, console=err, transient=False, refresh_per_second=4)
        self.task = self.progress.add_task("run", total=None, phase="PENDING", stats="")

    def __enter__(self) -> _ProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def update(self, update: run_pb2.WatchRunResponse) -> None:
        run, prog = update.run, update.progress
        total = None
        if run.state == lc.WARMUP:
            total = run.warmup.ToTimedelta().total_seconds()
        elif run.state == lc.MEASUREMENT:
            total = run.duration.ToTimedelta().total_seconds()
        done = prog.state_elapsed.ToTimedelta().total_seconds()
        self.progress.update(
            self.task,
            phase=lc.state_name(run.state),
            total=total,
            completed=min(done, total) if total else 0,
            stats=_stats_text(prog),
        )


class _ProgressLines:
    """Non-interactive output (CI logs): a line per state change and every 5 seconds."""

    EVERY_S = 5.0

    def __init__(self, err: Console, run_id: str) -> None:
        self.err = err
        self.run_id = run_id
        self.state = -1
        self.printed_at = 0.0

    def __enter__(self) -> _ProgressLines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, update: run_pb2.WatchRunResponse) -> None:
        run, prog = update.run, update.progress
        elapsed = prog.state_elapsed.ToTimedelta().total_seconds()
        if run.state != self.state:
            self.state = run.state
            self.printed_at = time.monotonic()
            self.err.print(f"run {self.run_id} {lc.state_name(run.state)}", highlight=False)
        elif time.monotonic() - self.printed_at >= self.EVERY_S and run.state in lc.LOAD_PHASES:
            self.printed_at = time.monotonic()
            self.err.print(
                f"run {self.run_id} {lc.state_name(run.state)} {elapsed:5.0f}s  "
                + _stats_text(prog),
                highlight=False,
            )


# ---------------------------------------------------------------------------- daemon


async def _watch_parent(pid: int, stop: asyncio.Event) -> None:
    while os.getppid() == pid:
        await asyncio.sleep(0.5)
    stop.set()


def _check_exposure(args: argparse.Namespace) -> str:
    """Why this daemon configuration is refused, or '' if it is fine."""
    host = args.listen.rsplit(":", 1)[0].strip("[]")
    loopback = host in ("localhost", "") or host.startswith("127.") or host == "::1"
    if not loopback and not args.token and not args.insecure:
        return (
            f"refusing to listen on {args.listen} without a token: anyone who reaches it "
            "could start load against your databases. Set --token (or SNOWLOAD_TOKEN), "
            "or pass --insecure if the network is trusted"
        )
    if bool(args.tls_cert) != bool(args.tls_key):
        return "--tls-cert and --tls-key go together"
    if args.tls_client_ca and not args.tls_cert:
        return "--tls-client-ca needs --tls-cert and --tls-key"
    if args.tls_client_ca and args.local_workers:
        return "--local-workers cannot present client certificates; start workers with --tls-cert"
    return ""


async def controller_main(args: argparse.Namespace) -> int:
    refusal = _check_exposure(args)
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        store = open_store(args.db)
    except (OSError, sqlite3.Error, SchemaTooNew) as exc:
        print(f"error: results database: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    settings = ControllerSettings(
        listen=args.listen,
        token=args.token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        max_active_runs=args.max_active_runs,
        loss_timeout_s=args.loss_timeout,
    )
    controller = Controller(settings, store)
    try:
        await controller.start()
    except (OSError, RuntimeError) as exc:
        print(f"error: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"snowload controller listening on {controller.address}", file=sys.stderr, flush=True)
    local = LocalWorkers(
        controller.address, args.local_workers, token=args.token, tls_ca=args.tls_cert
    )
    local.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = loop.create_task(_watch_parent(args.parent_pid, stop)) if args.parent_pid else None
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    print("shutting down: cancelling active runs…", file=sys.stderr, flush=True)
    await controller.stop()
    await local.stop()
    return EXIT_OK
