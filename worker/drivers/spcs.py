"""Snowflake credentials inside Snowpark Container Services (SPCS).

A container of an SPCS service (or job service) gets an OAuth token in a file that
Snowflake rotates, and the address of the account in ``SNOWFLAKE_*`` variables. A workload
selects them with ``connection = "spcs"``; a workload that names no connection gets them
when the token file and the variables are present.

The token file is read for every new connection (it changes under a long-lived process).
``SNOWLOAD_SPCS_TOKEN_FILE`` and ``SNOWLOAD_SPCS_PROTOCOL`` exist for tests only: they point
the driver at a local stand-in (a temporary token file, a plain-HTTP server) instead of
SPCS's fixed path and HTTPS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.drivers.base import DriverError, ErrorCategory

CONNECTION_NAME = "spcs"
TOKEN_FILE = "/snowflake/session/token"
TOKEN_FILE_ENV = "SNOWLOAD_SPCS_TOKEN_FILE"
"""Test-only override of TOKEN_FILE."""
PROTOCOL_ENV = "SNOWLOAD_SPCS_PROTOCOL"
"""Test-only override of the protocol (``http`` for a local stand-in; SPCS is https)."""
REQUIRED_VARIABLES = ("SNOWFLAKE_HOST", "SNOWFLAKE_ACCOUNT")
OPTIONAL_VARIABLES = {
    "SNOWFLAKE_PORT": "port",
    "SNOWFLAKE_DATABASE": "database",
    "SNOWFLAKE_SCHEMA": "schema",
}


def token_path(env: Mapping[str, str]) -> Path:
    return Path(env.get(TOKEN_FILE_ENV) or TOKEN_FILE)


def missing(env: Mapping[str, str]) -> list[str]:
    """What SPCS mode needs and this host lacks (empty: inside SPCS)."""
    lacking = [f"the token file {token_path(env)}"] if not token_path(env).is_file() else []
    return lacking + [f"${name}" for name in REQUIRED_VARIABLES if not env.get(name)]


def connect_kwargs(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Connector arguments for the service's own login: OAuth with the token as it is
    now, the host, port, account, database and schema Snowflake set in the container.
    No warehouse: the workload's ``warehouse`` option, else the service's query
    warehouse."""
    env = os.environ if env is None else env
    lacking = missing(env)
    if lacking:
        raise DriverError(
            ErrorCategory.CONFIG,
            f'connection "{CONNECTION_NAME}" (Snowpark Container Services) needs '
            f"{' and '.join(lacking)}, which this host does not have; outside SPCS, name a "
            "connection from connections.toml in target.connection",
        )
    path = token_path(env)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DriverError(ErrorCategory.CONFIG, f"cannot read {path}: {exc.strerror}") from exc
    if not token:
        raise DriverError(ErrorCategory.AUTH, f"the token file {path} is empty")
    kwargs: dict[str, Any] = {
        "authenticator": "oauth",
        "token": token,
        "host": env["SNOWFLAKE_HOST"],
        "account": env["SNOWFLAKE_ACCOUNT"],
        "protocol": env.get(PROTOCOL_ENV) or "https",
    }
    for name, key in OPTIONAL_VARIABLES.items():
        if env.get(name):
            kwargs[key] = int(env[name]) if key == "port" else env[name]
    return kwargs
