"""``snowload run``: a workload headless, on local workers or a controller daemon's.

Ctrl-C (or SIGTERM) stops the run cleanly: it ends CANCELLED (``user_requested``) and what
was measured is reported (exit 3). A second Ctrl-C stops waiting for it to wind down:
local workers are stopped at once, a daemon's run goes on stopping there (exit 130).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from pathlib import Path

import grpc
from rich.console import Console
from rich.text import Text

from controller import lifecycle as lc
from controller.gate import GateResult, too_short_for_gate
from controller.local_workers import LocalWorkers
from controller.render_summary import measured_anything, print_summary
from controller.report import summary_dict
from controller.run_baseline import Baseline, BaselineError, judge, resolve
from controller.run_progress import ProgressBar, ProgressLines
from controller.server import Controller, ControllerSettings
from controller.store import RunStore, open_store
from controller.store_open import StoreUnavailable, open_writable_store
from controller.store_remote import RemoteRunStore
from snowload.channel import ChannelConfig, open_channel
from snowload.durations import format_duration
from snowload.exit_codes import ExitCode
from snowload.v1 import run_pb2, run_pb2_grpc
from snowload.verdicts import TooShort
from snowload.workload import Overrides, Workload, WorkloadError, load_file

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StoppedWaiting(Exception):
    """A second Ctrl-C: the user stopped waiting for the run to wind down."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def run_main(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    if not err.is_terminal:
        err = Console(stderr=True, width=120, soft_wrap=True)
    try:
        return _run(args, err)
    except KeyboardInterrupt:  # before the run existed, or a third Ctrl-C while tearing down
        err.print("interrupted")
        return ExitCode.INTERRUPTED


def _run(args: argparse.Namespace, err: Console) -> int:
    overrides = Overrides(
        workers=args.workers,
        connections=args.connections,
        warmup_s=args.warmup,
        duration_s=args.duration,
    )
    try:
        workload = load_file(args.workload, overrides)
    except WorkloadError as exc:
        error(err, str(exc))
        return ExitCode.BAD_INPUT
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
            error(err, "--db names a local results database: the daemon stores remote runs")
            return ExitCode.BAD_INPUT
        config = ChannelConfig.from_env(
            args.controller,
            token=args.token,
            tls_ca=args.tls_ca,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls=args.tls,
        )
        remote = RemoteRunStore(config)
        try:
            baseline = _baseline(args, remote, workload, err)
        except grpc.RpcError as exc:
            remote.close()
            error(err, f"controller {args.controller}: {exc.code().name}: {exc.details()}")
            return ExitCode.RUN_FAILED
        if baseline is False:
            remote.close()
            return ExitCode.BAD_INPUT
        try:
            final = asyncio.run(_run_remote(request, config, err))
        except grpc.aio.AioRpcError as exc:
            error(err, f"controller {args.controller}: {exc.code().name}: {exc.details()}")
            bad = exc.code() == grpc.StatusCode.INVALID_ARGUMENT
            return ExitCode.BAD_INPUT if bad else ExitCode.RUN_FAILED
        except StoppedWaiting as exc:
            err.print(
                f"not waiting: the controller goes on stopping run {exc.run_id} "
                f"('snowload runs --controller {args.controller} show {exc.run_id}')",
                highlight=False,
            )
            remote.close()
            return ExitCode.INTERRUPTED
        try:
            return _report_gated(final, err, args, remote, baseline)
        finally:
            remote.close()
    try:
        store = open_writable_store(args.db)
    except StoreUnavailable as exc:
        error(err, str(exc))
        return ExitCode.BAD_INPUT
    baseline = _baseline(args, store, workload, err)
    if baseline is False:
        store.close()
        return ExitCode.BAD_INPUT
    try:
        final = asyncio.run(
            _run_headless(request, workload.load.workers, err, store, args.log_level)
        )
    except StoppedWaiting as exc:
        err.print(
            f"not waiting: the workers were stopped at once; run {exc.run_id} is recorded "
            "as CANCELLED",
            highlight=False,
        )
        return ExitCode.INTERRUPTED
    if baseline is None:
        return report(final, err, json_out=args.json)
    with contextlib.closing(open_store(args.db)) as reopened:  # (the controller closed it)
        return _report_gated(final, err, args, reopened, baseline)


def _baseline(
    args: argparse.Namespace, store: RunStore, workload: Workload, err: Console
) -> Baseline | bool | None:
    """The baseline (None without --baseline; False: refused, with the reason printed)."""
    if not args.baseline:
        return None
    short = too_short_for_gate(workload.load.duration_s)
    if short is not None:
        error(err, f"--baseline: {short}")
        return False
    try:
        return resolve(store, args.baseline, workload, force=args.force)
    except BaselineError as exc:
        error(err, str(exc))
        return False


def _report_gated(
    final: run_pb2.Run,
    err: Console,
    args: argparse.Namespace,
    store: RunStore,
    baseline: Baseline | bool | None,
) -> int:
    if not isinstance(baseline, Baseline) or final.state != lc.COMPLETED:
        return report(final, err, json_out=args.json)
    try:
        found = judge(store, baseline, final, args.max_regression)
    except TooShort as exc:
        code = report(final, err, json_out=args.json)
        error(err, f"no comparison with the baseline: {exc}")
        return code if code != ExitCode.OK else ExitCode.BAD_INPUT
    return report(final, err, json_out=args.json, gated=found)


def report(
    final: run_pb2.Run, err: Console, *, json_out: bool, gated: GateResult | None = None
) -> int:
    """The summary on stderr (and as JSON on stdout); the exit code of the run."""
    print_summary(err, final)
    if final.message and final.state != lc.COMPLETED and measured_anything(final):
        err.print(
            f"{lc.state_name(final.state)}: {final.reason} — {final.message}",
            markup=False,
            highlight=False,
        )
    if gated is not None:
        for line in gated.lines():
            err.print(line, markup=False, highlight=False)
        if not gated.passed:
            names = ", ".join(m.value for m in gated.regressions)
            err.print(
                f"REGRESSION: worse than the baseline beyond {gated.margin:.0%}: {names}",
                style="bold red",
                highlight=False,
            )
    if json_out:
        out = summary_dict(final)
        if gated is not None:
            out["baseline"] = gated.as_dict()
        print(json.dumps(out, indent=2))
    if final.state != lc.COMPLETED:
        return ExitCode.RUN_FAILED
    if final.HasField("slo_passed") and not final.slo_passed:
        return ExitCode.SLO_FAILED
    if gated is not None and not gated.passed:
        return ExitCode.REGRESSION
    return ExitCode.OK


def error(err: Console, message: str) -> None:
    """Print an error verbatim: messages quote TOML ([[query]]) and file names."""
    err.print(Text("error: ", style="red") + Text(message), highlight=False, soft_wrap=True)


async def _run_headless(
    request: run_pb2.StartRunRequest,
    workers: int,
    err: Console,
    store: RunStore,
    log_level: str,
) -> run_pb2.Run:
    controller = Controller(ControllerSettings(listen="127.0.0.1:0"), store)
    await controller.start()
    local = LocalWorkers(controller.address, workers, log_level=log_level)
    local.start()
    patient = True
    try:
        async with grpc.aio.insecure_channel(controller.address) as channel:
            return await _start_and_follow(run_pb2_grpc.RunServiceStub(channel), request, err)
    except StoppedWaiting:
        patient = False
        raise
    finally:
        await local.stop(timeout_s=10.0 if patient else 0.0)
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
    follow = loop.create_task(_watch_with_progress(stub, run_id, err))
    stopping: list[asyncio.Task[None]] = []

    async def stop_run() -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            await stub.StopRun(run_pb2.StopRunRequest(run_id=run_id), timeout=10)

    def on_signal() -> None:
        if not stopping:
            err.print("stopping the run (Ctrl-C again to stop waiting)…")
            stopping.append(loop.create_task(stop_run()))
        else:
            follow.cancel()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    try:
        return await follow
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if follow.cancelled() and task is not None and not task.cancelling():
            raise StoppedWaiting(run_id) from None
        raise
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        if stopping:
            await asyncio.wait(stopping, timeout=10)


async def _watch_with_progress(
    stub: run_pb2_grpc.RunServiceStub, run_id: str, err: Console
) -> run_pb2.Run:
    """Follow the run to its end: a live progress bar on a terminal, plain lines in logs."""
    render = ProgressBar(err) if err.is_terminal else ProgressLines(err, run_id)
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
