"""A throwaway PostgreSQL cluster for tests: initdb into a temp dir, loopback, a free
port, pg_stat_statements preloaded, every statement logged with ``app=%a``.

PostgreSQL comes from Debian's packages (``.ci/run`` installs them). When it is absent,
tests that need it fail with a message that says so; they never pass silently.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

PASSWORD_USER = "snowload_pw"
PASSWORD = "s3cret-Do-Not-Leak-7731"


@dataclass(frozen=True)
class PgCluster:
    port: int
    datadir: Path
    log: Path
    host: str = "127.0.0.1"

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} dbname=postgres user=postgres"

    @property
    def local_dsn(self) -> str:
        """Through the Unix socket: works from any network namespace."""
        return f"host={self.datadir.parent} port={self.port} dbname=postgres user=postgres"

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.dsn, autocommit=True)

    def log_lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()


def find_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def init_cluster(
    listen: str = "127.0.0.1", port: int | None = None, net: str = "127.0.0.1/32"
) -> PgCluster:
    """initdb into a fresh temp dir; the server will listen on ``listen``:``port`` and
    trust connections from ``net`` (the password user needs its password)."""
    initdb = find_bin("initdb")
    if initdb is None or find_bin("pg_ctl") is None:
        pytest.fail(
            "PostgreSQL is not installed (initdb not found); .ci/run installs it with "
            "apt-get install postgresql"
        )
    root = Path(tempfile.mkdtemp(prefix="snowload-pg-"))
    datadir = root / "data"
    log = root / "server.log"
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    subprocess.run(
        _as_postgres([initdb, "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    port = free_port() if port is None else port
    with open(datadir / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(
            f"""
listen_addresses = '{listen}'
port = {port}
unix_socket_directories = '{root}'
max_connections = 300
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
log_statement = 'all'
log_line_prefix = '%m [%p] app=%a '
log_timezone = 'UTC'
log_destination = 'stderr'
logging_collector = off
fsync = off
synchronous_commit = off
full_page_writes = off
"""
        )
    hba = datadir / "pg_hba.conf"
    hba.write_text(
        f"host all {PASSWORD_USER} {net} scram-sha-256\n"
        f"host all all {net} trust\nlocal all all trust\n",
        encoding="utf-8",
    )
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for path in (hba, datadir / "postgresql.conf"):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    return PgCluster(port, datadir, log, listen)


def start_cluster(cluster: PgCluster, prefix: Sequence[str] = ()) -> None:
    """pg_ctl start (``prefix`` e.g. runs it inside a network namespace), then the
    extension and the password user."""
    pg_ctl = find_bin("pg_ctl")
    assert pg_ctl is not None
    cmd = _as_postgres([pg_ctl, "-D", str(cluster.datadir), "-l", str(cluster.log), "-w"])
    subprocess.run([*prefix, *cmd, "-t", "30", "start"], check=True, capture_output=True)
    with psycopg.connect(cluster.local_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'")


def stop_cluster(cluster: PgCluster) -> None:
    pg_ctl = find_bin("pg_ctl")
    assert pg_ctl is not None
    subprocess.run(
        _as_postgres([pg_ctl, "-D", str(cluster.datadir), "-m", "immediate", "-w", "stop"]),
        check=False,
        capture_output=True,
    )
    shutil.rmtree(cluster.datadir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    cluster = init_cluster()
    try:
        start_cluster(cluster)
        yield cluster
    finally:
        stop_cluster(cluster)


LOG_RE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \S+ \[(?P<pid>\d+)\] app=(?P<app>\S*) "
    r"LOG:  (?:statement|execute [^:]*): (?P<sql>.*)$"
)


@dataclass(frozen=True)
class LoggedStatement:
    time_s: float
    pid: int
    app: str
    sql: str


def parse_log(lines: list[str]) -> list[LoggedStatement]:
    from datetime import UTC, datetime

    out = []
    for line in lines:
        m = LOG_RE.match(line)
        if not m:
            continue
        ts = datetime.strptime(m.group("ts"), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        out.append(
            LoggedStatement(ts.timestamp(), int(m.group("pid")), m.group("app"), m.group("sql"))
        )
    return out


def wait_until(predicate: object, timeout_s: float) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


ERROR_RE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \S+ \[(?P<pid>\d+)\] app=\S* "
    r"(?P<level>ERROR|STATEMENT):  (?P<text>.*)$"
)


@dataclass(frozen=True)
class FailedStatement:
    pid: int
    error: str
    sql: str


def parse_failures(lines: list[str]) -> list[FailedStatement]:
    """Statements the server failed: an ``ERROR:`` line and the ``STATEMENT:`` line that
    names its statement (log_min_error_statement). A statement that failed while it
    executed was logged as executed too (parse_log); one refused before it executed (its
    parameters bound, its plan's locks taken: e.g. cancelled while waiting for a lock on
    a table) was not."""
    out = []
    pending: dict[int, str] = {}
    for line in lines:
        m = ERROR_RE.match(line)
        if not m:
            continue
        pid = int(m.group("pid"))
        if m.group("level") == "ERROR":
            pending[pid] = m.group("text")
        elif pid in pending:
            out.append(FailedStatement(pid, pending.pop(pid), m.group("text")))
    return out
