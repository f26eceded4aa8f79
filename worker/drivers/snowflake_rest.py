"""One keep-alive HTTP(S) connection to Snowflake's REST API, for the lean statement path.

``http.client`` on one persistent socket per snowload connection (TLS with the default,
verified context): no requests/urllib3 session, no per-request cookie jars, header
merging or environment lookups (a CA bundle named by ``REQUESTS_CA_BUNDLE`` or
``CURL_CA_BUNDLE`` is read once, when the client is made). What it keeps of the
connector's transport:

- retries with the connector's decorrelated-jitter backoff (1 s base, 16 s cap) for the
  HTTP codes the connector retries (5xx, 307, 308, 400, 403, 405, 408, 429) and for
  transport failures, until ``retry_window_s`` has passed; a retried request carries the
  same URL (the same ``requestId``: Snowflake runs a statement once per request id) plus
  ``retryCount`` and ``clientStartTime``, as the connector's do;
- a keep-alive socket the server closed while idle is reopened and the request sent
  again at once (no backoff);
- gzip: request bodies above ``GZIP_ABOVE`` bytes are compressed (below it gzip costs
  more CPU than it saves on the wire); gzip-encoded responses are accepted and inflated.

Failures that outlast the retries raise the connector's own OperationalError (errno
250003, ``Failed to execute request``) with the transport error as its cause, so that the
driver's ``classify``/``describe_error`` treat them as they treat the connector's.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import ssl
import threading
import time
import zlib
from typing import Any

from snowflake.connector.errors import OperationalError

ER_FAILED_TO_REQUEST = 250003
RETRYABLE_STATUS = frozenset({307, 308, 400, 403, 405, 408, 429})
GZIP_ABOVE = 16_384
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 16.0
_STALE = (
    http.client.RemoteDisconnected,
    http.client.CannotSendRequest,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)
"""What a keep-alive socket the server closed while idle raises on its next use."""


class HttpFailure(Exception):
    """A response other than 200 (after the retries): its status and body."""

    def __init__(self, status: int, reason: str, body: bytes) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status
        self.body = body


def retryable(status: int) -> bool:
    return 500 <= status < 600 or status in RETRYABLE_STATUS


class RestClient:
    """Blocking requests over one persistent connection, used by one thread (``close``
    excepted, from any thread)."""

    def __init__(
        self,
        protocol: str,
        host: str,
        port: int,
        socket_timeout_s: float,
        retry_window_s: float,
        user_agent: str,
        extra_headers: dict[str, str] | None = None,
        cafile: str | None = None,
    ) -> None:
        self.protocol = protocol
        self.host = host
        self.port = port
        self.socket_timeout_s = socket_timeout_s
        self.retry_window_s = retry_window_s
        self._headers = {"User-Agent": user_agent, "Accept-Encoding": "gzip"}
        self._headers.update(extra_headers or {})
        self._tls = ssl.create_default_context(cafile=cafile) if protocol == "https" else None
        self._conn: http.client.HTTPConnection | None = None
        self._closed = threading.Event()
        self.backoff_base_s = BACKOFF_BASE_S
        self.backoff_cap_s = BACKOFF_CAP_S
        self.requests_sent = 0
        """Requests put on the wire (retries included), for tests and benchmarks."""

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._tls is not None:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.socket_timeout_s, context=self._tls
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=self.socket_timeout_s
                )
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _once(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Any:
        """One exchange: (status, reason, body bytes), reopening a stale socket once."""
        for attempt in (0, 1):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                self.requests_sent += 1
                conn.request(method, url, body, headers)
                resp = conn.getresponse()
                data = resp.read()
            except _STALE:
                self._drop()
                if attempt or not reused:
                    raise
                continue
            except BaseException:
                self._drop()
                raise
            if resp.will_close:
                self._drop()
            if resp.getheader("Content-Encoding") == "gzip":
                data = zlib.decompress(data, 31)
            return resp.status, resp.reason, data
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        retry_params: bool = False,
    ) -> bytes:
        """The body of a 200 response to ``method path``, retrying as the connector does;
        raises the connector's OperationalError when the retries are exhausted."""
        all_headers = {**self._headers, **headers}
        if body is not None and len(body) > GZIP_ABOVE:
            body = zlib.compress(body, wbits=31)
            all_headers["Content-Encoding"] = "gzip"
        started = time.monotonic()
        started_ms = int(time.time() * 1000)
        sleep = self.backoff_base_s
        retries = 0
        url = path
        while True:
            try:
                status, reason, data = self._once(method, url, body, all_headers)
            except (OSError, http.client.HTTPException) as exc:
                failure: BaseException = exc
            else:
                if status == 200:
                    return bytes(data)
                failure = HttpFailure(status, reason, data)
                if not retryable(status):
                    raise _failed(path, failure)
            sleep = min(self.backoff_cap_s, random.uniform(self.backoff_base_s, sleep * 3))
            spent = time.monotonic() - started
            if self._closed.is_set() or spent + sleep > self.retry_window_s:
                raise _failed(path, failure)
            self._closed.wait(sleep)
            retries += 1
            if retry_params:
                sep = "&" if "?" in path else "?"
                url = f"{path}{sep}clientStartTime={started_ms}&retryCount={retries}"

    def close(self) -> None:
        self._closed.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            # (from another thread: wake a blocked read; the owner drops the connection)
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        self._drop()


def _failed(path: str, cause: BaseException) -> OperationalError:
    what = str(cause) or type(cause).__name__
    if isinstance(cause, TimeoutError):
        what = f"timed out ({what})"
    error = OperationalError(
        msg=f"Failed to execute request: {what} ({path.split('?', 1)[0]})",
        errno=ER_FAILED_TO_REQUEST,
    )
    error.__cause__ = cause
    return error
