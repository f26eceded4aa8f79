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
from collections.abc import Callable
from dataclasses import dataclass, field
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
    headers: dict[str, str] = field(default_factory=dict)


Answer = Callable[[str, dict[str, Any]], dict[str, Any] | None]
"""(path, JSON body) -> a JSON response to send instead of forwarding, or None."""


def result(columns: list[str], rows: list[list[str]]) -> dict[str, Any]:
    """A query response with text columns, as Snowflake sends a JSON result set (for
    statements the upstream cannot answer, e.g. SHOW SERVICE CONTAINERS)."""
    return {
        "data": {
            "parameters": [],
            "rowtype": [
                {
                    "name": name,
                    "database": "",
                    "schema": "",
                    "table": "",
                    "type": "text",
                    "byteLength": 16777216,
                    "length": 16777216,
                    "precision": None,
                    "scale": None,
                    "nullable": True,
                    "collation": None,
                }
                for name in columns
            ],
            "rowset": rows,
            "total": len(rows),
            "returned": len(rows),
            "queryId": "01b00000-0000-0000-0000-000000000001",
            "queryResultFormat": "json",
            "statementTypeId": 4096,
        },
        "code": None,
        "message": None,
        "success": True,
    }


def refusal(code: str, sqlstate: str, message: str) -> dict[str, Any]:
    """A statement Snowflake refuses (e.g. 003001 / 42501: insufficient privileges)."""
    return {
        "data": {"errorCode": code, "sqlState": sqlstate, "queryId": "01b00000-0000-0000-0000-2"},
        "code": code,
        "message": message,
        "success": False,
    }


class SnowflakeRecorder:
    def __init__(self, upstream_port: int, answer: Answer | None = None) -> None:
        self.upstream_port = upstream_port
        self.answer = answer
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

            def do_PUT(self) -> None:  # (file uploads of PUT statements)
                self._forward("PUT")

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
                    recorder.requests.append(
                        Recorded(arrived, self.path, body, dict(self.headers.items()))
                    )
                answer = recorder.answer(self.path, body) if recorder.answer else None
                if answer is not None:
                    data = json.dumps(answer).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
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
