"""``snowload worker --controller HOST:PORT``: attach to a controller and serve runs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from snowload.channel import ChannelConfig
from snowload.durations import parse_duration
from snowload.logs import configure
from worker.agent import ORPHAN_TIMEOUT_S, Agent

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="snowload worker",
        description="Attach to a controller and serve its runs: open connections to the "
        "target, run queries, stream measurements back. Start as many as you like; each "
        "dials the controller (credentials for the target stay on this host).",
    )
    p.add_argument(
        "--controller", required=True, metavar="HOST:PORT", help="the controller's address"
    )
    p.add_argument("--capacity", type=int, default=1024, help="most connections to open")
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label shown in ListWorkers (repeatable), e.g. zone=eu-west-1a",
    )
    p.add_argument(
        "--id", dest="worker_id", default=None, help="worker id (default: host-pid-rand)"
    )
    p.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=LOG_LEVELS,
        help="DEBUG, INFO, WARNING (default), ERROR",
    )
    p.add_argument(
        "--connect-delay",
        type=_duration,
        default=0.0,
        help="fault injection for tests: extra delay per connection open (e.g. 2s)",
    )
    p.add_argument(
        "--token", default=None, help="bearer token for the controller (default: $SNOWLOAD_TOKEN)"
    )
    p.add_argument("--tls", action="store_true", help="TLS with the system trust store")
    p.add_argument("--tls-ca", default=None, help="PEM CA of the controller's certificate")
    p.add_argument("--tls-cert", default=None, help="PEM client certificate (mutual TLS)")
    p.add_argument("--tls-key", default=None, help="PEM client key (mutual TLS)")
    p.add_argument(
        "--orphan-timeout",
        type=_duration,
        default=ORPHAN_TIMEOUT_S,
        help="stop issuing queries after this long without the controller "
        f"(default {ORPHAN_TIMEOUT_S:g}s)",
    )
    p.add_argument(
        "--parent-pid", type=int, default=0, help="drain and exit when this process dies"
    )
    return p


async def _amain(args: argparse.Namespace) -> int:
    labels = dict(item.split("=", 1) for item in args.label if "=" in item)
    agent = Agent(
        args.controller,
        capacity=args.capacity,
        labels=labels,
        worker_id=args.worker_id,
        connect_delay_s=args.connect_delay,
        orphan_timeout_s=args.orphan_timeout,
        channel=ChannelConfig.from_env(
            args.controller,
            token=args.token,
            tls_ca=args.tls_ca,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls=args.tls,
        ),
    )
    loop = asyncio.get_running_loop()
    shutdown: list[asyncio.Task[None]] = []

    def begin_shutdown() -> None:
        if not shutdown:
            shutdown.append(loop.create_task(agent.shutdown()))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, begin_shutdown)
    watcher = None
    if args.parent_pid:
        watcher = loop.create_task(_watch_parent(args.parent_pid, begin_shutdown))
    await agent.serve()
    if watcher is not None:
        watcher.cancel()
    for task in shutdown:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return 0


async def _watch_parent(pid: int, on_gone: object) -> None:
    while os.getppid() == pid:
        await asyncio.sleep(0.5)
    assert callable(on_gone)
    on_gone()


GIL_SWITCH_INTERVAL_S = 0.001


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(args.log_level, "%(asctime)s worker %(levelname)s %(message)s")
    # a connection thread back from the database waits for the GIL at most this long
    # (default 5 ms): phase boundaries and latencies are not held up by the agent's loop
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    return asyncio.run(_amain(args))


if __name__ == "__main__":
    sys.exit(main())
