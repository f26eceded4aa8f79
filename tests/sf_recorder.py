"""An HTTP proxy on 127.0.0.1:0 between the snowflake connector and the fakesnow server
that records every request as the connector sent it (path, JSON body, arrival time), so
tests can assert on what really goes over the wire: each statement's QUERY_TAG, its bind
values, the login's session parameters and timeouts. The connector has no request hook.
"""

from __future__ import annotations

import gzip
import http.client
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}
)


@dataclass(frozen=True)
class Recorded:
    time_ns: int
    path: str
    body: dict[str, Any]


class SnowflakeRecorder:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self._forward("POST")

            def do_GET(self) -> None:
                self._forward("GET")

            def _forward(self, method: str) -> None:
                arrived = time.time_ns()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                text = (
                    gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
                )
                try:
                    body = json.loads(text) if text else {}
                except ValueError:
                    body = {"_raw": text.decode("utf-8", "replace")}
                with recorder._lock:
                    recorder.requests.append(Recorded(arrived, self.path, body))
                up = http.client.HTTPConnection("127.0.0.1", recorder.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                up.request(method, self.path, body=raw or None, headers=headers)
                resp = up.getresponse()
                data = resp.read()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_BY_HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                up.close()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def snapshot(self) -> list[Recorded]:
        with self._lock:
            return list(self.requests)

    def queries(self) -> list[Recorded]:
        return [r for r in self.snapshot() if r.path.startswith("/queries/v1/query-request")]

    def logins(self) -> list[Recorded]:
        return [r for r in self.snapshot() if r.path.startswith("/session/v1/login-request")]
