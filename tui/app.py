"""``snowload tui [--controller HOST:PORT]``: the terminal UI.

Without ``--controller`` it starts a controller process of its own (with local workers) on
a free loopback port and stops it on exit, so the TUI alone is a complete app. It talks to
any controller only through the public gRPC API (RunService).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Iterable
from dataclasses import replace

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui.client import ConnectionSettings, RunClient
from tui.local_controller import LocalController, LocalControllerError
from tui.screens.compare import CompareScreen
from tui.screens.detail import DetailScreen
from tui.screens.launch import LaunchScreen
from tui.screens.live import LiveScreen
from tui.screens.runs import RunsScreen

ADDRESS_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^\s:/]+):(\d{1,5})$")


class SnowloadApp(App[None]):
    """The snowload TUI. Give it a controller address, or a :class:`LocalController` to
    start; with ``offline=True`` it talks to nothing (screens then show fixed data)."""

    TITLE = "snowload"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    """Screens narrower than 100 columns stack side-by-side tables and grid their KPIs."""
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    """Screens shorter than 36 rows draw lower plots."""
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("l", "launch", "Launch"),
        Binding("h", "runs", "Runs"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        controller: str | None = None,
        *,
        local: LocalController | None = None,
        offline: bool = False,
        settings: ConnectionSettings | None = None,
    ) -> None:
        """``settings`` (token, TLS, timeouts) apply to whichever address is used."""
        super().__init__()
        self.address = controller or (settings.address if settings else None)
        self.local = local
        self.offline = offline
        self._settings = settings
        self.client: RunClient | None = None
        self._settled = asyncio.Event()
        """Set once the client exists or there will be none (no controller)."""
        self.failed = False
        self.connection_status = (
            "offline" if offline else f"connecting to {self.address}…" if self.address else ""
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer leaves out the screen you are on."""
        here = {"runs": RunsScreen, "launch": LaunchScreen}.get(action)
        return here is None or not isinstance(self.screen, here)

    # -- connection ------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.offline:
            self.sub_title = "offline"
            self._settled.set()
            return
        if self.address:
            self._connect(self.address)
        elif self.local is not None:
            self.connection_status = "starting a local controller with workers…"
            self.sub_title = "starting a local controller…"
            self._start_local()
        else:
            self.failed = True
            self.connection_status = "no controller address given"
            self._settled.set()
        self.push_screen(RunsScreen())

    def _connect(self, address: str) -> None:
        self.address = address
        self.sub_title = address
        self._open_client(address)

    @work(exclusive=True, group="connect")
    async def _open_client(self, address: str) -> None:
        """Create the client in a worker on the app's loop, as grpc.aio requires (opening a
        TLS channel reads its certificate files)."""
        settings = replace(self._settings or ConnectionSettings(address), address=address)
        try:
            self.client = RunClient(settings)
        except OSError as exc:
            self.failed = True
            self.connection_status = f"cannot open a channel to {address}: {exc}"
            self.notify(self.connection_status, title="Controller", severity="error")
        else:
            self.failed = False
            self.connection_status = f"controller {address}"
        self._settled.set()
        if isinstance(self.screen, RunsScreen):
            self.screen.refresh_runs()

    @work(thread=True, exclusive=True, group="local-controller")
    def _start_local(self) -> None:
        local = self.local
        assert local is not None
        try:
            address = local.start()
        except LocalControllerError as exc:
            self.call_from_thread(self._local_failed, str(exc))
            return
        self.call_from_thread(self._local_ready, address)

    def _local_ready(self, address: str) -> None:
        self._connect(address)
        self.sub_title = f"local controller {address}"
        self.notify(f"local controller listening on {address}")

    def _local_failed(self, message: str) -> None:
        self._settled.set()
        self.failed = True
        self.connection_status = message
        self.sub_title = "no controller"
        self.notify(message, title="Local controller", severity="error", timeout=30)
        if isinstance(self.screen, RunsScreen):
            self.screen.refresh_runs()

    async def wait_client(self) -> RunClient | None:
        """The client, once connected; None if there is no controller to talk to."""
        await self._settled.wait()
        return self.client

    async def on_unmount(self) -> None:
        if self.client is not None:
            await self.client.close()

    # -- navigation --------------------------------------------------------------------------

    def open_run(self, run_id: str, state: int) -> None:
        from tui import format as fmt

        if fmt.is_terminal(state):
            self.open_detail(run_id)
        else:
            self.open_live(run_id)

    def open_live(self, run_id: str, *, replace: bool = False) -> None:
        screen = LiveScreen(run_id)
        if replace:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def open_detail(self, run_id: str) -> None:
        self.push_screen(DetailScreen(run_id))

    def open_compare(self, run_a: str, run_b: str) -> None:
        self.push_screen(CompareScreen(run_a, run_b))

    def action_launch(self) -> None:
        if not isinstance(self.screen, LaunchScreen):
            self.push_screen(LaunchScreen())

    async def action_runs(self) -> None:
        if any(isinstance(s, RunsScreen) for s in self.screen_stack):
            while not isinstance(self.screen, RunsScreen):
                await self.pop_screen()
        else:
            await self.push_screen(RunsScreen())

    def action_compare(self) -> None:
        runs = next((s for s in self.screen_stack if isinstance(s, RunsScreen)), None)
        if isinstance(self.screen, RunsScreen):
            self.screen.action_compare()
        elif runs is not None and len(runs.marked) == 2:
            self.open_compare(runs.marked[0], runs.marked[1])
        else:
            self.notify("Open Runs (h), mark two runs with space, then press c.")

    def action_stop_run(self) -> None:
        if isinstance(self.screen, LiveScreen):
            self.screen.action_stop()
        else:
            self.notify("Stop works on the Live screen of a running run.")

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Launch a run", "Choose a workload file and start it", self.action_launch
        )
        yield SystemCommand("Runs", "The history of runs (filter, open, compare)", self.action_runs)
        yield SystemCommand(
            "Compare two runs", "Side by side: the two runs marked on Runs", self.action_compare
        )
        yield SystemCommand(
            "Stop the run", "Stop the run shown on the Live screen", self.action_stop_run
        )
        yield from super().get_system_commands(screen)


# --------------------------------------------------------------------------------- main


def _address(text: str) -> str:
    if not ADDRESS_RE.match(text):
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snowload tui",
        description="The terminal UI. Without --controller it starts a local controller "
        "with local workers and stops it on exit.",
    )
    parser.add_argument(
        "--controller", type=_address, metavar="HOST:PORT", help="a running controller"
    )
    parser.add_argument(
        "--local-workers",
        type=int,
        default=2,
        metavar="N",
        help="workers of the local controller (default 2; without --controller only)",
    )
    parser.add_argument("--db", help="results database of the local controller")
    parser.add_argument(
        "--token", default=None, help="bearer token for the controller (default: $SNOWLOAD_TOKEN)"
    )
    parser.add_argument("--tls", action="store_true", help="TLS with the system trust store")
    parser.add_argument("--tls-ca", default=None, help="PEM CA of the controller's certificate")
    parser.add_argument("--tls-cert", default=None, help="PEM client certificate (mutual TLS)")
    parser.add_argument("--tls-key", default=None, help="PEM client key (mutual TLS)")
    web = parser.add_argument_group("serving the TUI to web browsers (textual-serve)")
    web.add_argument(
        "--serve",
        metavar="HOST:PORT",
        help="serve the TUI to web browsers on this address instead (port 0: any free "
        "port); beyond loopback it needs --serve-token",
    )
    web.add_argument(
        "--serve-token",
        default=None,
        help="token a browser presents once, as ?token= (default: $SNOWLOAD_SERVE_TOKEN)",
    )
    web.add_argument(
        "--insecure", action="store_true", help="allow --serve beyond loopback without a token"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    if args.serve is not None:
        from tui.serve import serve_main

        return serve_main(args)
    local = None
    if args.controller is None:
        local = LocalController(max(0, args.local_workers), db=args.db, token=args.token)
    settings = ConnectionSettings(
        args.controller or "",
        token=args.token,
        tls=args.tls,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
    app = SnowloadApp(args.controller, local=local, settings=settings)
    try:
        app.run()
    finally:
        if local is not None and local.running:
            print(f"stopping the local controller at {local.address}…", file=sys.stderr)
            local.stop()
    return 0
