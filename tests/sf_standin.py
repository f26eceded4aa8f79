"""A Snowflake REST stand-in on 127.0.0.1:0 for what fakesnow cannot do: session tokens
that expire and are renewed with the master token, results that come in chunks, queries
still in progress, transient HTTP failures. It records every request with its headers.

Statements, by their SQL text:
  ``SELECT many``    a JSON result of 2 inline rows and 2 chunks of 3 rows each (served at
                     /chunk/N, which refuses a download without the chunk headers), also
                     from GET /queries/<id>/result;
  ``SELECT slowly``  333333 (in progress) with a result URL that answers with one row;
  ``SELECT flaky``   HTTP 503 for the first two attempts of each request id, then one row;
  ``SELEC 1``        a compilation error (001003 / 42000) with a query id;
  ``SELECT hang``    no answer until an abort-request names its request id, then
                     Snowflake's cancellation error (000604 / 57014);
  ``SELECT bye``     one row, with ``Connection: close``;
  ``SELECT drop``    one row, then the socket is closed without a word;
  anything else      one row: the bound values as text.
A request with a token other than the current session token is answered 390112 (session
expired); ``expire()`` makes the current token stale, as Snowflake's do after hours.
"""

from __future__ import annotations

import itertools
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MASTER = "standin-master-token"
CHUNK_HEADERS = {"x-standin-chunk-key": "k-123"}
ROWTYPE = [
    {
        "name": "V",
        "database": "",
        "schema": "",
        "table": "",
        "type": "text",
        "byteLength": 100,
        "length": 100,
        "precision": None,
        "scale": None,
        "nullable": True,
        "collation": None,
    }
]


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def token(self) -> str:
        auth = self.headers.get("Authorization", "")
        return auth.removeprefix('Snowflake Token="').removesuffix('"')

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)


def rows_result(query_id: str, rows: list[list[Any]], **extra: Any) -> dict[str, Any]:
    data = {
        "parameters": [],
        "rowtype": ROWTYPE,
        "rowset": rows,
        "total": len(rows),
        "returned": len(rows),
        "queryId": query_id,
        "queryResultFormat": "json",
        "statementTypeId": 4096,
    }
    data.update(extra)
    return {"data": data, "code": None, "message": None, "success": True}


class SnowflakeStandIn:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._tokens = itertools.count(1)
        self.token = "standin-session-1"
        self._ids = itertools.count(1)
        self._flaky: dict[str, int] = {}
        self.connections = 0
        self._aborted: dict[str, threading.Event] = {}
        """TCP connections accepted."""
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.headers.get("Content-Encoding") == "gzip":
                    import gzip

                    raw = gzip.decompress(raw)
                body = json.loads(raw) if raw else {}
                seen = Seen(method, self.path, dict(self.headers.items()), body)
                with standin._lock:
                    standin.seen.append(seen)
                status, payload = standin.answer(seen)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                sql = body.get("sqlText") if isinstance(body, dict) else None
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if sql == "SELECT bye":
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                if sql == "SELECT drop":  # an idle keep-alive socket the server closes
                    self.close_connection = True

            def setup(self) -> None:
                super().setup()
                with standin._lock:
                    standin.connections += 1

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def expire(self) -> str:
        """Make the current session token stale; returns it."""
        with self._lock:
            old, self.token = self.token, "expired"
        return old

    def statements(self) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path.startswith("/queries/v1/query-request")]

    # -- answers ---------------------------------------------------------------------------

    def answer(self, seen: Seen) -> tuple[int, Any]:
        path = urlsplit(seen.path).path
        if path == "/session/v1/login-request":
            with self._lock:
                self.token = f"standin-session-{next(self._tokens)}"
                token = self.token
            return 200, {
                "data": {
                    "token": token,
                    "masterToken": MASTER,
                    "serverVersion": "8.0.0",
                    "parameters": [{"name": "AUTOCOMMIT", "value": True}],
                    "sessionInfo": {"databaseName": "SLDB", "schemaName": "PUBLIC"},
                },
                "success": True,
            }
        if path == "/session/token-request":
            if seen.token != MASTER:
                return 200, {"success": False, "code": "390115", "message": "bad master"}
            with self._lock:
                self.token = f"standin-session-{next(self._tokens)}"
                token = self.token
            return 200, {
                "data": {"sessionToken": token, "masterToken": MASTER},
                "success": True,
            }
        if path.startswith("/chunk/"):
            if any(seen.headers.get(k) != v for k, v in CHUNK_HEADERS.items()):
                return 403, b"chunk headers missing"
            base = 10 * (int(path.rsplit("/", 1)[1]) + 1)
            return 200, ",".join(f'["{base + i}"]' for i in range(3)).encode()
        if not path.startswith(("/queries/", "/monitoring/")):
            return 200, {"data": None, "code": None, "message": None, "success": True}
        if seen.token != self.token:
            return 200, {
                "data": {"errorCode": "390112"},
                "code": "390112",
                "message": "Your session has expired. Please login again.",
                "success": False,
            }
        if path == "/queries/v1/abort-request":
            with self._lock:
                event = self._aborted.setdefault(str(seen.body.get("requestId")), threading.Event())
            event.set()
            return 200, {"data": None, "code": None, "message": None, "success": True}
        if path.endswith("/result"):
            qid = path.split("/")[2]
            if qid.startswith("many"):
                return 200, self._many(qid)
            return 200, rows_result(qid, [["done"]])
        return self._statement(seen)

    def _statement(self, seen: Seen) -> tuple[int, Any]:
        sql = str(seen.body.get("sqlText", ""))
        qid = f"01b0-{next(self._ids):06d}"
        if sql == "SELECT many":
            return 200, self._many(f"many-{qid}")
        if sql == "SELECT slowly":
            return 200, {
                "data": {"queryId": qid, "getResultUrl": f"/queries/{qid}/result"},
                "code": "333333",
                "message": "in progress",
                "success": True,
            }
        if sql == "SELECT hang":  # until an abort-request names its request id
            request_id = seen.query["requestId"][0]
            with self._lock:
                event = self._aborted.setdefault(request_id, threading.Event())
            if not event.wait(30):
                return 200, rows_result(qid, [["never aborted"]])
            return 200, {
                "data": {"errorCode": "000604", "sqlState": "57014", "queryId": qid},
                "code": "000604",
                "message": "SQL execution canceled",
                "success": False,
            }
        if sql == "SELECT flaky":
            request_id = seen.query["requestId"][0]
            with self._lock:
                tries = self._flaky[request_id] = self._flaky.get(request_id, 0) + 1
            if tries <= 2:
                return 503, b"busy"
        if sql.startswith("SELEC "):
            return 200, {
                "data": {"errorCode": "001003", "sqlState": "42000", "queryId": qid},
                "code": "001003",
                "message": "SQL compilation error: syntax error line 1 at position 0.",
                "success": False,
            }
        values = [b["value"] for _, b in sorted((seen.body.get("bindings") or {}).items())]
        return 200, rows_result(qid, [[json.dumps(values)]])

    def _many(self, qid: str) -> dict[str, Any]:
        chunks = [
            {
                "url": f"http://127.0.0.1:{self.port}/chunk/{i}",
                "rowCount": 3,
                "uncompressedSize": 30,
                "compressedSize": 30,
            }
            for i in range(2)
        ]
        return rows_result(
            qid,
            [["1"], ["2"]],
            total=8,
            chunks=chunks,
            chunkHeaders=CHUNK_HEADERS,
        )
