"""``snowload controller --metrics-listen HOST:PORT``: the Prometheus endpoint.

prometheus_client serves the text (or OpenMetrics) format from a thread of its own; each
scrape builds the families on the controller's event loop (controller/prom_families.py),
so it reads a consistent state and never races the merge. With a token set, a scrape must
send ``Authorization: Bearer <token>`` (Prometheus: ``authorization: {credentials: ...}``);
beyond loopback, a token is required as for the API (or --insecure).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from controller.prom_families import RETENTION_S, Retained, collect

if TYPE_CHECKING:
    from controller.runs import ActiveRun
    from controller.server import Controller

log = logging.getLogger("snowload.controller")
SCRAPE_TIMEOUT_S = 10.0


class _LoopCollector(Collector):
    def __init__(self, loop: asyncio.AbstractEventLoop, build: Callable[[], list[Metric]]):
        self._loop = loop
        self._build = build

    def collect(self) -> Iterable[Metric]:
        async def snapshot() -> list[Metric]:
            return self._build()

        future = asyncio.run_coroutine_threadsafe(snapshot(), self._loop)
        return future.result(SCRAPE_TIMEOUT_S)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: " + format, *args)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


def _authorized(token: str, app: Any) -> Any:
    expected = token.encode()

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        scheme, _, credential = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            credential.strip().encode("latin-1", "replace"), expected
        ):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="snowload"')],
        )
        return [b"missing or invalid bearer token\n"]

    return guarded


class MetricsEndpoint:
    def __init__(
        self,
        listen: str,
        loop: asyncio.AbstractEventLoop,
        build: Callable[[], list[Metric]],
        token: str = "",
    ) -> None:
        self.listen = listen
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_LoopCollector(loop, build))
        app = make_wsgi_app(registry)
        self._app = _authorized(token, app) if token else app
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        assert self._server is not None
        host, port = self._server.socket.getsockname()[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        """Bind and serve; raises OSError (e.g. the port is in use)."""
        host, _, port = self.listen.rpartition(":")
        self._server = make_server(
            host.strip("[]") or "127.0.0.1",
            int(port),
            self._app,
            server_class=_Server,
            handler_class=_Quiet,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-endpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


def expose(
    controller: Controller, listen: str, *, token: str = "", retention_s: float = RETENTION_S
) -> MetricsEndpoint:
    """Serve ``controller``'s metrics on ``listen`` (call on its event loop; raises
    OSError if the address cannot be bound). Finished runs stay ``retention_s``."""
    retained = Retained(retention_s)
    before = controller.runs.on_run_end

    def ended(run: ActiveRun) -> None:
        if before is not None:
            before(run)
        retained.ended(run)

    controller.runs.on_run_end = ended
    endpoint = MetricsEndpoint(
        listen,
        asyncio.get_running_loop(),
        lambda: collect(controller.runs, controller.registry, retained, controller.runs.ingest),
        token,
    )
    endpoint.start()
    return endpoint
