"""The lean statement path: load statements over snowload's own HTTP client, with the
connector's login and session.

The connector logs in (every authenticator, connections.toml, SPCS OAuth, session
parameters) and keeps the session: its token, its master token for renewals, its query
context cache, its sequence counter, its own statements (setup, sampling, enrichment)
and aborts (``cancel``). Each load statement is one ``POST /queries/v1/query-request``
with the body the connector would send (``sqlText``, ``asyncExec``, ``sequenceId``,
``querySubmissionTime``, ``parameters`` with the statement's QUERY_TAG, ``bindings`` in
qmark format, ``queryContextDTO``) and its headers (``Authorization: Snowflake
Token="..."`` with the session's current token, ``Accept: application/snowflake``, its
User-Agent), over one keep-alive connection per snowload connection
(worker/drivers/snowflake_rest.py).

The answer is read as the connector reads it: in-progress codes (333333, 333334) poll the
result URL; an expired session (390112) is renewed through the connector and the
statement sent once more; a refusal raises the exception the connector raises (its class,
errno, SQLSTATE, message and query id), so that errors are classified and described
alike. Rows are counted from the inline result; a result with chunks (or an inline result
short of the rows the server declared) is fetched by the connector's cursor from the
result URL (``query_result``), chunks and chunk headers included, so large results are
downloaded, not skipped.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Sequence
from random import getrandbits
from typing import Any

from snowflake.connector._sql_util import get_file_transfer_type
from snowflake.connector.cursor import STATEMENT_TYPE_ID_DML_SET
from snowflake.connector.errors import IntegrityError, ProgrammingError
from snowflake.connector.network import PYTHON_CONNECTOR_USER_AGENT, ReauthenticationRequest
from snowflake.connector.result_batch import is_inline_result_incomplete

from snowload.workload import Query
from worker.drivers.snowflake import SampleBudget, SnowflakeConnection
from worker.drivers.snowflake_bind import connector_fallback, qmark_bindings
from worker.drivers.snowflake_inflight import abort
from worker.drivers.snowflake_rest import RestClient
from worker.tags import Tag

SESSION_EXPIRED = "390112"
IN_PROGRESS = frozenset({"333333", "333334"})
INTEGRITY = "100072"
"""NULL in a non-nullable column: the connector raises IntegrityError for it."""
ACCEPT_SNOWFLAKE = "application/snowflake"
ACCEPT_JSON = "application/json"
_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID_SET = (0x4 << 76) | (0x2 << 62)
"""Version 4 and the RFC 4122 variant bits of a UUID's 128-bit integer."""
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def request_id() -> str:
    """A version-4 UUID's text for a request id. Request ids are unique, not secret (they
    travel in URLs), so they come from the process's Mersenne Twister (seeded from
    os.urandom): a fifth of ``str(uuid.uuid4())``'s CPU, which asks the kernel each time."""
    x = (getrandbits(128) & _UUID_CLEAR) | _UUID_SET
    h = f"{x:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def client_for(conn: Any) -> RestClient:
    """A client for the REST endpoint the connector logged in to."""
    rest = conn.rest
    socket_timeout = float(conn.socket_timeout or 60)
    return RestClient(
        protocol=str(rest._protocol),
        host=str(rest._host),
        port=int(rest._port),
        socket_timeout_s=socket_timeout,
        retry_window_s=max(float(conn.network_timeout or 0), socket_timeout),
        user_agent=PYTHON_CONNECTOR_USER_AGENT,
        cafile=ca_bundle(),
    )


def _is_dml(data: dict[str, Any]) -> bool:
    """A DML statement's ``total`` counts rows affected, not rows to fetch (as the
    connector's cursor reads it)."""
    kind = data.get("statementTypeId")
    return kind is not None and int(kind) in STATEMENT_TYPE_ID_DML_SET


def count_rows(data: dict[str, Any]) -> int:
    """Rows in an inline result: the JSON rowset's length, or for Arrow the row count the
    server declares (``returned``; decoding the stream to count would cost ~50 µs per
    statement), or when it declares none, the decoded stream's."""
    rowset = data.get("rowset")
    if rowset is not None:
        return len(rowset)
    returned = data.get("returned")
    if returned is not None:
        return int(returned)
    encoded = data.get("rowsetBase64")
    if not encoded:
        return 0
    import base64

    import pyarrow as pa  # type: ignore[import-untyped]

    return int(pa.ipc.open_stream(base64.b64decode(encoded)).read_all().num_rows)


class LeanStatements:
    """Statements of one logged-in connector connection, over ``client``."""

    def __init__(self, conn: Any, client: RestClient | None = None) -> None:
        self.conn = conn
        self.client = client if client is not None else client_for(conn)
        self._fallback = connector_fallback(conn)
        self.renewals = 0
        self.inflight: tuple[str, str] | None = None
        """(SQL, request id) of the statement on the wire, for ``cancel``."""

    def run(
        self, sql: str, params: Sequence[Any], statement_params: dict[str, str] | None
    ) -> tuple[str, int]:
        """Run one statement; returns (query id, rows). Raises the connector's exceptions."""
        conn = self.conn
        body: dict[str, Any] = {
            "sqlText": sql,
            "asyncExec": False,
            "sequenceId": conn._next_sequence_counter(),
            "querySubmissionTime": int(time.time() * 1000),
        }
        if statement_params is not None:
            body["parameters"] = statement_params
        bindings = qmark_bindings(params, self._fallback)
        if bindings is not None:
            body["bindings"] = bindings
        body["queryContextDTO"] = conn.get_query_context()
        rid = request_id()
        path = f"/queries/v1/query-request?requestId={rid}"
        payload = _encode(body).encode()
        self.inflight = (sql, rid)
        try:
            ret = self._call("POST", path, payload, ACCEPT_SNOWFLAKE, retry_params=True)
            while ret.get("code") in IN_PROGRESS:
                ret = self._call("GET", ret["data"]["getResultUrl"], None, ACCEPT_SNOWFLAKE)
        finally:
            self.inflight = None
        data = ret.get("data") or {}
        query_id = str(data.get("queryId") or "")
        context = data.get("queryContext")
        if context is not None:
            conn.set_query_context(context)
        if not ret.get("success"):
            raise self._refusal(ret, data, query_id, sql)
        if data.get("chunks") or (
            query_id and not _is_dml(data) and is_inline_result_incomplete(data)
        ):
            return query_id, self._fetch_chunked(query_id)
        return query_id, count_rows(data)

    def _call(
        self,
        method: str,
        path: str,
        payload: bytes | None,
        accept: str,
        retry_params: bool = False,
    ) -> dict[str, Any]:
        """One request with the session's current token; an expired session is renewed
        through the connector and the request sent once more."""
        ret = self._send(method, path, payload, accept, retry_params)
        if ret.get("code") == SESSION_EXPIRED:
            self._renew()
            ret = self._send(method, path, payload, accept, retry_params)
        return ret

    def _send(
        self, method: str, path: str, payload: bytes | None, accept: str, retry_params: bool
    ) -> dict[str, Any]:
        conn = self.conn
        headers = {
            "Authorization": f'Snowflake Token="{conn.rest.token}"',
            "Accept": accept,
        }
        if payload is not None:
            headers["Content-Type"] = ACCEPT_JSON
        service = conn.service_name
        if service:
            headers["X-Snowflake-Service"] = service
        raw = self.client.request(method, path, payload, headers, retry_params)
        ret: dict[str, Any] = json.loads(raw)
        return ret

    def _renew(self) -> None:
        """The connector renews the session with its master token (and updates the token
        every later statement sends)."""
        self.renewals += 1
        try:
            self.conn.rest._renew_session()
        except ReauthenticationRequest as exc:
            raise exc.cause from None

    def _refusal(self, ret: dict[str, Any], data: dict[str, Any], query_id: str, sql: str) -> Any:
        """The exception the connector's cursor raises for this answer."""
        message = str(ret.get("message") or "")
        if data.get("errorMessage"):
            message += str(data["errorMessage"])
        code = ret.get("code") or -1
        cls = IntegrityError if code == INTEGRITY else ProgrammingError
        return cls(
            msg=message,
            errno=int(code),
            sqlstate=data.get("sqlState"),
            sfqid=query_id or None,
            query=sql,
            connection=self.conn,
        )

    def _fetch_chunked(self, query_id: str) -> int:
        """A result too large to come inline: the connector's cursor reads it from the
        result URL and downloads its chunks."""
        cur = self.conn.cursor()
        try:
            cur.query_result(query_id)
            return len(cur.fetchall())
        finally:
            cur.close()

    def close(self) -> None:
        self.client.close()


class LeanSnowflakeConnection(SnowflakeConnection):
    """A Snowflake connection whose load statements (``execute``) take the lean path;
    everything else (setup, sampling, enrichment, describe-only, cancel) stays the
    connector's."""

    def __init__(
        self,
        conn: Any,
        prefix: str = "",
        budget: SampleBudget | None = None,
        client: RestClient | None = None,
    ) -> None:
        super().__init__(conn, prefix, budget=budget)
        self.lean = LeanStatements(conn, client)
        self.last_rows = 0

    def compile(self, query: Query, tag: Tag) -> Any:
        """The connector's (SQL, statement parameters), and whether the statement may
        take the lean path: PUT and GET move files through the connector."""
        sql, statement_params = super().compile(query, tag)
        return sql, statement_params, get_file_transfer_type(sql) is None

    def execute(self, compiled: Any, params: Sequence[Any]) -> None:
        if len(compiled) == 3 and not compiled[2]:
            super().execute(compiled[:2], params)
            return
        sql, statement_params = compiled[0], compiled[1]
        began = time.perf_counter_ns()
        self.last_query_id, self.last_rows = self.lean.run(sql, params, statement_params)
        if self._sampling and self.last_query_id:
            self._sample(began)

    def cancel(self) -> None:
        """Abort the statement on the wire as the connector aborts its own (an
        abort-request naming its SQL and request id; the statement then answers with
        Snowflake's cancellation error), from any thread. With none on the lean path:
        the one the connector's cursor runs (PUT, GET), if any."""
        inflight = self.lean.inflight
        if inflight is None:
            super().cancel()
            return
        abort(self._conn, *inflight)

    def close(self) -> None:
        self.lean.close()
        super().close()


def lean_possible(conn: Any) -> bool:
    """Whether the lean client reaches what the connector reaches: not through a proxy
    (``proxy_host`` in connections.toml, or proxy variables for the host, which the
    connector's requests sessions honour and http.client does not)."""
    if getattr(conn, "proxy_host", None) is not None:
        return False
    rest = conn.rest
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(str(rest._protocol)) or proxies.get("all")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    return not proxy or bool(bypass(str(rest._host), proxies))


def ca_bundle() -> str | None:
    """The CA bundle requests would verify with (``REQUESTS_CA_BUNDLE``, else
    ``CURL_CA_BUNDLE``), or None for the system's default store."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
