"""One keep-alive HTTP(S) connection to Snowflake's REST API, for the lean statement path.

One persistent socket per snowload connection (TLS with the default, verified context),
each request written in one send and its response read by ``http.client``'s
HTTPResponse: no requests/urllib3 session, no per-request cookie jars, header
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
        self._sock: socket.socket | None = None
        default_port = 443 if protocol == "https" else 80
        self._host_header = host if port == default_port else f"{host}:{port}"
        self._closed = threading.Event()
        self.backoff_base_s = BACKOFF_BASE_S
        self.backoff_cap_s = BACKOFF_CAP_S
        self.requests_sent = 0
        """Requests attempted (retries included), for tests and benchmarks."""

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), self.socket_timeout_s)
            # a request is one send; without TCP_NODELAY (urllib3 sets it too) Nagle's
            # algorithm may still hold a large body's tail for a delayed ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            self._sock = sock
        return self._sock

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _once(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Any:
        """One exchange: (status, reason, body bytes), reopening a stale socket once.

        The request goes out in one send (http.client sends head and body apart: twice
        the system calls, and on loopback twice the wake-ups of the server); the
        response is read by http.client's own HTTPResponse (status line, headers,
        Content-Length or chunked body, keep-alive)."""
        lines = [f"{method} {url} HTTP/1.1\r\nHost: {self._host_header}\r\n"]
        lines.extend(f"{k}: {v}\r\n" for k, v in headers.items())
        if body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        head = "".join(lines)
        breaks = len(lines) + 1  # (the request line and Host share the first element)
        if head.count("\n") != breaks or head.count("\r") != breaks:
            raise ValueError("a request line or header value holds a line break")
        wire = head.encode("latin-1") + body if body is not None else head.encode("latin-1")
        for attempt in (0, 1):
            reused = self._sock is not None
            self.requests_sent += 1
            try:
                sock = self._socket()
                sock.sendall(wire)
                resp = http.client.HTTPResponse(sock, method=method)
                resp.begin()
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
            except ssl.SSLCertVerificationError as exc:  # (no retry makes it valid)
                raise _failed(path, exc) from exc
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
        sock = self._sock
        if sock is not None:
            # (from another thread: wake a blocked read; the owner drops the connection)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
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
