"""A local stand-in for Snowflake's REST endpoints that answers at once, so that a
benchmark measures only the client (bench/snowflake_client.py).

It speaks what snowflake-connector-python sends (as fakesnow's server does, without a
database behind it): ``/session/v1/login-request`` returns a session token,
``/queries/v1/query-request`` a canned one-row, one-column result (``TOTAL``, FIXED) in
Arrow IPC, as Snowflake returns query results to this connector; ``/session`` (logout),
``/telemetry/send`` and anything else return success. HTTP/1.1 with keep-alive, on
asyncio; run in a process of its own:

    python bench/snowflake_stub.py --port 0      # prints "listening on PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from typing import Any

import pyarrow as pa


def _arrow_one_row() -> str:
    """``SELECT total ...``: one FIXED(38,0) value, as the connector's Arrow reader wants it."""
    field = pa.field("TOTAL", pa.int64()).with_metadata(
        {"logicalType": "FIXED", "precision": "38", "scale": "0", "charLength": "0"}
    )
    table = pa.Table.from_arrays([pa.array([42], pa.int64())], schema=pa.schema([field]))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return base64.b64encode(sink.getvalue().to_pybytes()).decode("ascii")


ROWTYPE = [
    {
        "name": "TOTAL",
        "database": "",
        "schema": "",
        "table": "",
        "nullable": True,
        "type": "fixed",
        "byteLength": None,
        "length": None,
        "scale": 0,
        "precision": 38,
        "collation": None,
    }
]


def _response(body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + data


LOGIN = _response(
    {
        "data": {
            "token": "stub-session-token",
            "masterToken": "stub-master-token",
            "serverVersion": "8.0.0",
            "parameters": [
                {"name": "AUTOCOMMIT", "value": True},
                {"name": "CLIENT_STAGE_ARRAY_BINDING_THRESHOLD", "value": 0},
            ],
            "sessionInfo": {"databaseName": "SLDB", "schemaName": "PUBLIC"},
        },
        "success": True,
    }
)
QUERY = _response(
    {
        "data": {
            "parameters": [{"name": "TIMEZONE", "value": "Etc/UTC"}],
            "rowtype": ROWTYPE,
            "total": 1,
            "returned": 1,
            "queryId": "01b00000-0000-0000-0000-000000000001",
            "statementTypeId": 4096,
            "finalDatabaseName": "SLDB",
            "finalSchemaName": "PUBLIC",
            "queryResultFormat": "arrow",
            "rowsetBase64": _arrow_one_row(),
        },
        "success": True,
    }
)
OK = _response({"data": None, "code": None, "message": None, "success": True})


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            path = head.split(b" ", 2)[1]
            if path.startswith(b"/queries/v1/query-request"):
                writer.write(QUERY)
            elif path.startswith(b"/session/v1/login-request"):
                writer.write(LOGIN)
            else:
                writer.write(OK)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=1024)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(main(args.port))
    except KeyboardInterrupt:
        sys.exit(0)
