"""Phase edges proven from a database's own record, whatever the host's load.

A database records a statement when it arrives (PostgreSQL's statement log, SQLite's
trace callback), and a loaded host may delay that arrival after the issue by any number
of milliseconds. So "nothing of phase P recorded later than the edge plus N ms" is not
a proof that nothing was issued after the edge: it also fails when one statement issued
before the edge reached the database late.

What holds at any load is the order on each connection: a connection issues its next
statement only once the database has answered the one before, so after the database
recorded it. A connection that stopped issuing phase P at the edge therefore has at most
one statement of phase P recorded after the edge: the one it had in flight. Two or more
mean it went on issuing phase P after the edge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def in_flight_at(stmts: Iterable[tuple[float, K]], edge: float) -> Counter[K]:
    """Per connection (a backend pid, a trace file), how many of ``stmts`` (time, connection)
    were recorded after ``edge``: at most 1 each if the connections stopped at the edge."""
    return Counter(conn for time, conn in stmts if time > edge)


def issued_after(stmts: Iterable[tuple[float, K]], edge: float) -> dict[K, int]:
    """The connections that went on issuing after ``edge`` (2 or more recorded after it),
    with how many: empty if every connection stopped at the edge."""
    return {conn: n for conn, n in in_flight_at(stmts, edge).items() if n > 1}
