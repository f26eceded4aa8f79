"""``snowload deploy spcs --execute``: run the printed statements through the connector, in
order, wait until the services report READY, and on a failure say what Snowflake said and
what ``--down`` removes. Nothing here decides what to create (controller/deploy_spcs.py)."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import snowflake.connector
from snowflake.connector import DictCursor

from controller.deploy_spcs import (
    CONTROLLER,
    WORKERS,
    Statement,
    StatementKind,
    services,
)

Say = Callable[[str], None]


class DeployFailed(Exception):
    """A statement Snowflake refused, services that did not become READY, or a failed
    job; the message says what was created and how to remove it."""


@dataclass(frozen=True)
class Readiness:
    ready: int
    """Instances whose every container is READY."""
    failed: str = ""
    """Why the service failed ("" while it has not)."""
    status: str = ""


def readiness(rows: Sequence[Mapping[str, Any]]) -> Readiness:
    """From SHOW SERVICE CONTAINERS IN SERVICE: instances ready, or why it failed (a FAILED
    service, instance or container, with the container's message)."""
    instances: dict[str, bool] = {}
    status = ""
    for raw in rows:
        row = {str(k).lower(): v for k, v in raw.items()}
        service = str(row.get("service_status") or "").upper()
        status = service or status
        instance = str(row.get("instance_status") or "").upper()
        container = str(row.get("status") or "").upper()
        if "FAILED" in (service, instance, container) or service == "INTERNAL_ERROR":
            name = row.get("container_name") or "?"
            message = row.get("message") or service or instance or container
            return Readiness(0, f"container {name}: {message}", service)
        if row.get("instance_id") is None:
            continue  # no instance yet (PENDING)
        key = str(row["instance_id"])
        ok = container == "READY" and instance in ("", "READY")
        instances[key] = instances.get(key, True) and ok
    return Readiness(sum(instances.values()), "", status)


def connect(connection: str) -> Any:
    try:
        return snowflake.connector.connect(
            connection_name=connection,
            login_timeout=60,
            network_timeout=120,
            platform_detection_timeout_seconds=0.0,
        )
    except snowflake.connector.Error as exc:
        raise DeployFailed(
            f"cannot connect with connection {connection!r}: {one_line(exc)}"
        ) from exc


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def removal_hint(workload: Path | None, created: Sequence[str], connection: str) -> str:
    if not created:
        return "nothing was created."
    command = ["snowload", "deploy", "spcs", "--down", "--execute", "--connection", connection]
    command += ["--run", str(workload)] if workload else []
    dropped = ", ".join(services(workload))
    return (
        f"created so far: {', '.join(created)}; '{shlex.join(command)}' removes "
        f"{'it' if len(created) == 1 else 'them'} (DROP SERVICE IF EXISTS {dropped})."
    )


def wait_ready(
    conn: Any,
    expected: Mapping[str, int],
    timeout_s: float,
    poll_s: float,
    say: Say,
) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        counts: dict[str, Readiness] = {}
        for service in expected:
            cur = conn.cursor(DictCursor)
            cur.execute(f"SHOW SERVICE CONTAINERS IN SERVICE {service}")
            state = readiness(cur.fetchall())
            if state.failed:
                raise DeployFailed(f"service {service} FAILED: {state.failed}")
            counts[service] = state
        line = ", ".join(f"{s} {counts[s].ready}/{n} READY" for s, n in expected.items())
        if line != last:
            say(f"-- {line}")
            last = line
        if all(counts[s].ready >= n for s, n in expected.items()):
            return
        if time.monotonic() > deadline:
            raise DeployFailed(
                f"not READY after {timeout_s:.0f}s: {line} "
                f"(SHOW SERVICE CONTAINERS IN SERVICE <name> says why)"
            )
        time.sleep(poll_s)


def execute(
    conn: Any,
    statements: Sequence[Statement],
    connection: str,
    say: Say,
    *,
    workers: int = 0,
    workload: Path | None = None,
    wait_s: float = 900.0,
    poll_s: float = 5.0,
) -> None:
    """Run ``statements`` in order (waiting for ``workers`` READY worker instances before the
    WAIT statement); ``workload``: the ``--run`` file, named in what ``--down`` removes."""
    created: list[str] = []
    for st in statements:
        if st.kind is StatementKind.WAIT:
            try:
                wait_ready(conn, {CONTROLLER: 1, WORKERS: workers}, wait_s, poll_s, say)
            except DeployFailed as exc:
                hint = removal_hint(workload, created, connection)
                raise DeployFailed(f"{exc}\n{hint}") from exc
        first_line = st.sql.split("\n", 1)[0]
        say(f"-- {first_line}")
        try:
            conn.cursor().execute(st.sql)
        except snowflake.connector.Error as exc:
            if st.kind is StatementKind.EXECUTE_JOB:
                raise DeployFailed(
                    f"the job {st.service} failed: {one_line(exc)}\nThe run's output and "
                    f"exit code: SELECT SYSTEM$GET_SERVICE_LOGS('{st.service}', 0, 'run'); "
                    "the controller and the workers stay up for the next run."
                ) from exc
            raise DeployFailed(
                f"Snowflake refused {first_line}: {one_line(exc)}\n"
                f"{removal_hint(workload, created, connection)}"
            ) from exc
        if st.kind is StatementKind.CREATE_SERVICE:
            created.append(st.service)
