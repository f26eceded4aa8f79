"""Target-side work of PREPARING that runs once per run, on the setup worker: the
workload's setup SQL and the sampling of value pools. Blocking (called in a thread)."""

from __future__ import annotations

import json

from snowload.v1 import control_pb2
from snowload.workload import MAX_POOL_ROWS, Workload
from worker.drivers import Driver, DriverError, ErrorCategory


class SetupError(DriverError):
    """The workload's setup SQL failed (the run fails with reason setup_failed)."""


def run_setup(driver: Driver, workload: Workload) -> None:
    conn = driver.connect(workload.target, 30.0)
    try:
        conn.execute_script(workload.setup_sql)
    except Exception as exc:
        raise SetupError(driver.classify(exc), driver.describe_error(exc)) from exc
    finally:
        conn.close()


def sample_pools(driver: Driver, workload: Workload) -> list[control_pb2.PoolValues]:
    conn = driver.connect(workload.target, 30.0)
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
