"""A local fakesnow server (the real snowflake connector speaks to it over HTTP) and a
connections.toml for it in the session's SNOWFLAKE_HOME (see tests/conftest.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import free_port

SECRET = "fake-Password-9931"


@pytest.fixture(scope="session")
def fakesnow_port() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakesnow", "-s", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None, "fakesnow server exited"
            assert time.monotonic() < deadline, "fakesnow server did not start"
            time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def snowflake_home(fakesnow_port: int) -> Path:
    """connections.toml in the session's SNOWFLAKE_HOME (see tests/conftest.py)."""
    home = Path(os.environ["SNOWFLAKE_HOME"])
    closed = free_port()
    toml = home / "connections.toml"
    toml.write_text(
        f"""
[fake]
account = "fakesnow"
user = "loadtester"
password = "{SECRET}"
host = "127.0.0.1"
port = {fakesnow_port}
protocol = "http"
database = "SLDB"
schema = "PUBLIC"

[unreachable]
account = "fakesnow"
user = "loadtester"
password = "{SECRET}"
host = "127.0.0.1"
port = {closed}
protocol = "http"
""",
        encoding="utf-8",
    )
    toml.chmod(0o600)  # the connector refuses a connections.toml readable by others
    return home
