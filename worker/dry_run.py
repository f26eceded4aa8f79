"""``snowload check --connect``: one connection to the target, every query compiled by the
server and none run. Blocking; runs on the host that calls it, with that host's
credentials (PGPASSWORD, ~/.pgpass, connections.toml), like a worker would."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from snowload.workload import Workload
from worker.drivers import DriverError, get_driver

CONNECT_TIMEOUT_S = 30.0


class Outcome(StrEnum):
    OK = "ok"
    REJECTED = "rejected"
    UNCHECKED = "unchecked"


@dataclass(frozen=True)
class QueryCheck:
    index: int
    name: str
    outcome: Outcome
    category: str = ""
    message: str = ""


@dataclass
class DryRun:
    queries: list[QueryCheck] = field(default_factory=list)
    setup_ran: bool = False
    """The setup SQL ran (in a transaction rolled back at the end) before the queries."""
    notes: list[str] = field(default_factory=list)
    setup_error: str = ""


def dry_run(workload: Workload) -> DryRun:
    """Raises DriverError when no connection can be opened (its category tells why)."""
    driver = get_driver(workload.target.driver)
    conn = driver.connect(workload.target, CONNECT_TIMEOUT_S)
    out = DryRun()
    try:
        with conn.rolled_back() as transactional:
            if workload.setup_sql and transactional:
                try:
                    conn.execute_script(workload.setup_sql)
                    out.setup_ran = True
                except Exception as exc:
                    out.setup_error = f"{driver.classify(exc)}: {driver.describe_error(exc)}"
                    return out
            elif workload.setup_sql:
                out.notes.append(
                    f"the setup SQL was not run ({workload.target.driver.value} cannot roll "
                    "DDL back): queries on tables that the setup creates fail here"
                )
            for i, query in enumerate(workload.queries):
                try:
                    conn.prepare_only(query)
                except NotImplementedError as exc:
                    out.queries.append(QueryCheck(i, query.name, Outcome.UNCHECKED, "", str(exc)))
                except DriverError as exc:
                    out.queries.append(
                        QueryCheck(i, query.name, Outcome.REJECTED, exc.category, str(exc))
                    )
                except Exception as exc:
                    out.queries.append(
                        QueryCheck(
                            i,
                            query.name,
                            Outcome.REJECTED,
                            driver.classify(exc),
                            driver.describe_error(exc),
                        )
                    )
                else:
                    out.queries.append(QueryCheck(i, query.name, Outcome.OK))
    finally:
        conn.close()
    return out
