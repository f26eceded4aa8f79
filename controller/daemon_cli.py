"""``snowload controller``: the daemon (gRPC API, results store, optional local workers)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from controller.local_workers import LocalWorkers
from controller.prom_server import expose
from controller.server import Controller, ControllerSettings
from controller.store_open import StoreUnavailable, open_writable_store
from snowload import exposure
from snowload.channel import TOKEN_ENV
from snowload.exit_codes import ExitCode


async def _watch_parent(pid: int, stop: asyncio.Event) -> None:
    while os.getppid() == pid:
        await asyncio.sleep(0.5)
    stop.set()


def _check_exposure(args: argparse.Namespace) -> str:
    """Why this daemon configuration is refused, or '' if it is fine."""
    refused = exposure.refusal(
        args.listen, token=args.token, insecure=args.insecure, flag="--token", env=TOKEN_ENV
    )
    if refused:
        return refused
    metrics = args.metrics_listen
    if (
        metrics
        and not exposure.is_loopback(metrics.rsplit(":", 1)[0])
        and not args.token
        and not args.insecure
    ):
        return (
            f"refusing to serve metrics on {metrics} without a token: set --token "
            "(Prometheus sends it with 'authorization: {credentials: ...}'), or pass "
            "--insecure if the network is trusted"
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
        return ExitCode.BAD_INPUT
    try:
        store = open_writable_store(args.db)
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    settings = ControllerSettings(
        listen=args.listen,
        token=args.token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        max_active_runs=args.max_active_runs,
        loss_timeout_s=args.loss_timeout,
    )
    exporter = None
    if args.export_to:
        from controller.results_export import Destination, ExportError, RunExporter

        try:
            dest = Destination.parse(args.export_to, args.export_schema)
        except ExportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return ExitCode.BAD_INPUT
        exporter = RunExporter(store, dest)
    controller = Controller(settings, store)
    if exporter is not None:
        exporter.attach(controller.runs)
    try:
        await controller.start()
    except (OSError, RuntimeError) as exc:
        print(f"error: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    endpoint = None
    if args.metrics_listen:
        try:
            endpoint = expose(
                controller,
                args.metrics_listen,
                token=args.token,
                retention_s=args.metrics_retention,
            )
        except (OSError, ValueError) as exc:
            print(f"error: cannot serve metrics on {args.metrics_listen}: {exc}", file=sys.stderr)
            await controller.stop()
            return ExitCode.BAD_INPUT
        print(f"metrics on http://{endpoint.address}/metrics", file=sys.stderr, flush=True)
    print(f"snowload controller listening on {controller.address}", file=sys.stderr, flush=True)
    local = LocalWorkers(
        controller.address,
        args.local_workers,
        log_level=args.log_level,
        token=args.token,
        tls_ca=args.tls_cert,
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
    if exporter is not None:
        await exporter.drain()
    await local.stop()
    if endpoint is not None:
        endpoint.stop()
    return ExitCode.OK
