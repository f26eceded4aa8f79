"""Target-side work of PREPARING that runs once per run, on the setup worker: the
workload's setup SQL and the sampling of value pools. Blocking (called in a thread)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from snowload.v1 import control_pb2
from snowload.workload import MAX_POOL_ROWS, Workload
from worker.drivers import Driver, DriverError, ErrorCategory
from worker.tags import Purpose, own_tag

CONNECT_TIMEOUT_S = 30.0
"""A connect's timeout when the READY deadline leaves more."""


@dataclass(frozen=True)
class ReadyBudget:
    """What is left of the run's READY deadline for opening a connection.

    Every connect of PREPARING (setup, pools, the load's connections) gets at most what
    is left before the deadline less a margin, so a target that accepts connections but
    never answers fails the run with the driver's own error (``target_unreachable``, the
    read timeout and the host) rather than with a bare ``ready_timeout``."""

    deadline: float
    """time.monotonic() by which a connect must have given up."""

    @classmethod
    def starting(cls, ready_timeout_s: float) -> ReadyBudget:
        margin = min(10.0, max(1.0, 0.3 * ready_timeout_s))  # (the failure must travel)
        return cls(time.monotonic() + ready_timeout_s - margin)

    def connect_timeout(self) -> float:
        return min(CONNECT_TIMEOUT_S, max(1.0, self.deadline - time.monotonic()))


class SetupError(DriverError):
    """The workload's setup SQL failed (the run fails with reason setup_failed)."""


def run_setup(
    driver: Driver, workload: Workload, run_id: str, timeout_s: float = CONNECT_TIMEOUT_S
) -> None:
    conn = driver.connect(workload.target, timeout_s)
    conn.tag_own(own_tag(run_id, Purpose.SETUP))
    try:
        conn.execute_script(workload.setup_sql)
    except Exception as exc:
        raise SetupError(driver.classify(exc), driver.describe_error(exc)) from exc
    finally:
        conn.close()


def sample_pools(
    driver: Driver, workload: Workload, run_id: str, timeout_s: float = CONNECT_TIMEOUT_S
) -> list[control_pb2.PoolValues]:
    conn = driver.connect(workload.target, timeout_s)
    conn.tag_own(own_tag(run_id, Purpose.SETUP))
    try:
        out = []
        for qi, pi, sql in workload.pool_params():
            try:
                rows = conn.query(sql)
            except Exception as exc:
                raise SetupError(driver.classify(exc), driver.describe_error(exc)) from exc
            values = [row[0] for row in rows[:MAX_POOL_ROWS]]
            if not values:
                raise SetupError(
                    ErrorCategory.OTHER, f"pool for query {qi} returned no rows: {sql}"
                )
            out.append(
                control_pb2.PoolValues(
                    query_index=qi,
                    param_index=pi,
                    values_json=json.dumps(values, default=str),
                    rows=len(values),
                )
            )
        return out
    finally:
        conn.close()
