"""``snowload tui --serve HOST:PORT``: the TUI in a web browser, through textual-serve.

Each browser tab runs its own ``snowload tui`` process against one controller: the one
named by ``--controller``, or a local controller this command starts once and shares
(so every tab sees the same runs, live). The exposure rule is the controller's: loopback
by default; beyond it a token (``--serve-token``), which a browser presents once as
``?token=`` and then keeps in a same-site cookie. The websocket that drives a tab also
refuses pages from another origin, so a web site open in the same browser cannot drive
the TUI of a token-less loopback server.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from snowload import exposure
from snowload.exit_codes import ExitCode
from tui.local_controller import LocalController, LocalControllerError

SERVE_TOKEN_ENV = "SNOWLOAD_SERVE_TOKEN"
COOKIE = "snowload_serve_token"
REFUSAL = "missing or invalid token: open this page once as /?token=<the --serve-token>"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TuiServer(Server):
    """textual-serve's server with a token, an origin check and a port chosen at bind
    time (``:0`` works: the address it prints is the one it got)."""

    def __init__(self, command: str, host: str, port: int, token: str) -> None:
        super().__init__(command, host=host, port=port, title="snowload")
        self.token = token
        self._tabs: set[web.WebSocketResponse] = set()

    async def _make_app(self) -> web.Application:
        app: web.Application = await super()._make_app()
        app.middlewares.append(self._guard)
        return app

    def _token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/ws" and not _same_origin(request):
            raise web.HTTPForbidden(text="the websocket is for pages of this server only")
        if not self.token:
            return await handler(request)
        if self._token_ok(request.query.get("token")):
            # keep it in a cookie and take it out of the address bar (and the history)
            query = {k: v for k, v in request.query.items() if k != "token"}
            response = web.HTTPSeeOther(request.rel_url.with_query(query))
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
            raise response
        if self._token_ok(request.cookies.get(COOKIE)) or self._token_ok(_bearer(request)):
            return await handler(request)
        raise web.HTTPUnauthorized(text=REFUSAL)

    async def on_startup(self, app: web.Application) -> None:
        """(textual-serve prints a banner here; this command prints its own line)"""

    async def on_shutdown(self, app: web.Application) -> None:
        """Close every tab's websocket: its handler then stops the tab's TUI."""
        for ws in list(self._tabs):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the server is stopping")

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """textual-serve's handler, and the tab's TUI process waited for (killed after
        :data:`QUIT_S` s) so that none outlives the server."""
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        await websocket.prepare(request)
        self._tabs.add(websocket)

        async def close() -> None:
            await websocket.close()

        service = AppService(
            self.command,
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=close,
            download_manager=self.download_manager,
            debug=self.debug,
        )
        try:
            await service.start(width, height)
            await self._process_messages(websocket, service)
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            self._tabs.discard(websocket)
            await service.stop()
            await _reap(service)
        return websocket

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        # the page's websocket address follows the address and scheme the browser used (a
        # server on 0.0.0.0 is reached by some other name; a TLS proxy says https)
        scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
        self.public_url = f"{'https' if scheme == 'https' else 'http'}://{request.host}"
        response: web.StreamResponse = await super().handle_index(request)
        return response

    async def run(self, started: Callable[[str], None]) -> None:
        """Serve until SIGINT or SIGTERM; ``started`` gets the address once bound."""
        app = await self._make_app()
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            port = runner.addresses[0][1]
            self.port = port
            started(f"http://{_host_for_url(self.host)}:{port}/")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await runner.cleanup()


QUIT_S = 5.0


async def _reap(service: AppService) -> None:
    process = service._process  # (textual-serve asks it to quit, but does not wait)
    if process is None or process.returncode is not None:
        return
    try:
        await asyncio.wait_for(process.wait(), QUIT_S)
    except TimeoutError:
        process.kill()
        await process.wait()


def _bearer(request: web.Request) -> str | None:
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else None


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser page (a script, a test)
        return True
    return urlsplit(origin).netloc == request.host


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _split(listen: str) -> tuple[str, int] | None:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        return None
    return host.strip("[]"), int(port)


def session_command(args: argparse.Namespace, controller: str) -> str:
    """The ``snowload tui`` each browser tab runs (secrets travel in the environment)."""
    cmd = [sys.executable, "-m", "snowload.cli", "tui", "--controller", controller]
    if args.tls:
        cmd.append("--tls")
    for flag, value in (
        ("--tls-ca", args.tls_ca),
        ("--tls-cert", args.tls_cert),
        ("--tls-key", args.tls_key),
    ):
        if value:
            cmd += [flag, value]
    return shlex.join(cmd)


def serve_main(args: argparse.Namespace) -> int:
    token = args.serve_token or os.environ.get(SERVE_TOKEN_ENV, "")
    where = _split(args.serve)
    if where is None:
        print(f"error: --serve: expected HOST:PORT, got {args.serve!r}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    refused = exposure.refusal(
        args.serve,
        token=token,
        insecure=args.insecure,
        flag="--serve-token",
        env=SERVE_TOKEN_ENV,
    )
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if args.token:
        os.environ["SNOWLOAD_TOKEN"] = args.token  # for the tabs' TUIs: not on a command line
    local = None
    controller = args.controller
    if controller is None:
        local = LocalController(max(0, args.local_workers), db=args.db, token=args.token)
        try:
            controller = local.start()
        except LocalControllerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return ExitCode.ERROR
    server = TuiServer(session_command(args, controller), where[0], where[1], token)

    def started(url: str) -> None:
        hint = f" (open {url}?token=… once)" if token else ""
        print(f"snowload tui serving on {url}{hint}", file=sys.stderr, flush=True)

    try:
        asyncio.run(server.run(started))
    except OSError as exc:
        print(f"error: cannot listen on {args.serve}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    finally:
        if local is not None and local.running:
            local.stop()
    return ExitCode.OK
