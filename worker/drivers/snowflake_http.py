"""The connector's HTTP sessions without the per-request environment lookups.

The connector sends every statement through ``requests`` with ``trust_env`` on, which
reads the proxy and CA-bundle variables from the whole environment twice per request
(~0.2 ms of CPU per statement with a few dozen variables; more in a pod with many service
variables). When none of the variables it looks for is set, the lookups can only find
nothing, so a connection's sessions skip them. With any of them set, nothing changes.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

CONSULTED = frozenset(
    {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "requests_ca_bundle", "curl_ca_bundle"}
)
"""What ``requests`` reads from the environment when ``trust_env`` is on (any case)."""


def environment_consulted() -> bool:
    return any(name.lower() in CONSULTED for name in os.environ)


def skip_environment_lookups(conn: Any) -> bool:
    """Turn ``trust_env`` off for the connection's HTTP sessions, present and future,
    when the environment has nothing for it; True if it did. (Connector internals: a
    connector without them is left as it is.)"""
    if environment_consulted():
        return False
    with contextlib.suppress(AttributeError):
        manager = conn._session_manager
        make = manager.make_session

        def make_session(*, url: str | None = None) -> Any:
            session = make(url=url)
            session.trust_env = False
            return session

        manager.make_session = make_session
        for pool in manager.sessions_map.values():
            for session in [*pool._idle_sessions, *pool._active_sessions]:
                session.trust_env = False
        return True
    return False
