"""Driver registry: the workload's ``target.driver`` names one of these."""

from __future__ import annotations

from snowload.workload import Driver as DriverName
from worker.drivers.base import (
    Connection,
    Driver,
    DriverError,
    ErrorCategory,
    PrepareFailure,
    prepare_failure,
)


def get_driver(name: DriverName) -> Driver:
    if name is DriverName.SQLITE:
        from worker.drivers.sqlite import SqliteDriver

        return SqliteDriver()
    if name is DriverName.POSTGRES:
        from worker.drivers.postgres import PostgresDriver

        return PostgresDriver()
    if name is DriverName.SNOWFLAKE:
        from worker.drivers.snowflake import SnowflakeDriver

        return SnowflakeDriver()
    raise DriverError(
        ErrorCategory.CONFIG, f"the {name.value} driver is not available in this worker yet"
    )


__all__ = [
    "Connection",
    "Driver",
    "DriverError",
    "ErrorCategory",
    "PrepareFailure",
    "get_driver",
    "prepare_failure",
]
