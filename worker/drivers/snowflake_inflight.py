"""The statement in flight on a Snowflake connection, and its abort from another thread.

Snowflake aborts a statement by the request that carries it: ``POST
/queries/v1/abort-request`` naming the statement's SQL text and request id, which is what
the connector sends for its own timeouts (``SnowflakeCursor.__cancel_query`` ->
``SnowflakeConnection._cancel_query``). A query id would not do: it is known only once the
statement has answered, so a cancel by query id can only name a statement that already
ended.

Both statement paths choose the request id before anything is sent (the lean path puts
it in its URL; the connector takes it from the ``requestId`` statement parameter instead
of drawing its own), record (SQL, request id) while the statement is on the wire and clear
it when the statement ends. A cancel therefore names the running statement or nothing:
never one before it (it is recorded before the statement is sent) nor one after it (it is
cleared when its statement ends, and an abort of an ended request does nothing).
"""

from __future__ import annotations

import contextlib
import uuid
from random import getrandbits
from typing import Any

from snowflake.connector._utils import REQUEST_ID_STATEMENT_PARAM_NAME
from snowflake.connector.cursor import DESC_TABLE_RE

REQUEST_ID_PARAMETER = REQUEST_ID_STATEMENT_PARAM_NAME
"""The statement parameter the connector takes its request id from (and does not send)."""
_UUID = uuid.UUID


def new_request_id() -> uuid.UUID:
    """A version-4 UUID for a request id, from the process's Mersenne Twister (seeded from
    os.urandom): ids are unique, not secret, and ``uuid.uuid4()`` asks the kernel each
    time. (A UUID object, not its text: the connector then checks the version without
    parsing text.)"""
    return _UUID(int=getrandbits(128), version=4)


def sent_text(sql: str) -> str:
    """The SQL text the connector's cursor sends for ``sql`` (it strips surrounding
    whitespace and rewrites ``DESC name`` as ``describe table name``): the abort names the
    statement by the text it was sent with."""
    text = sql.strip(" \t\n\r")
    m = DESC_TABLE_RE.match(text)
    return f"describe table {m.group(1)}" if m else text


def abort(conn: Any, sql_text: str, request_id: uuid.UUID | str) -> None:
    """Abort the request ``request_id`` (sent with ``sql_text``) through the connector
    ``conn``'s session, from any thread. A failure is swallowed: the statement then ends
    on its own, and the caller is stopping anyway."""
    with contextlib.suppress(Exception):
        conn._cancel_query(sql_text, request_id)
