"""Snowflake warehouse polling by the setup worker: a snapshot when the run prepares, then
``SHOW WAREHOUSES`` every few seconds so the series shows when the warehouse queued or
scaled out. The controller turns the samples into credits (snowload.credits)."""

from __future__ import annotations

import re
from typing import Any

from snowload.v1 import common_pb2
from snowload.workload import Driver as DriverName
from snowload.workload import Workload
from worker.drivers import Connection, get_driver
from worker.tags import Purpose, own_tag

POLL_INTERVAL_S = 5.0
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


class WarehouseWatcher:
    def __init__(self, workload: Workload, run_id: str) -> None:
        self.workload = workload
        self.run_id = run_id
        self.name = str(workload.target.options.get("warehouse", ""))
        self._conn: Connection | None = None

    @staticmethod
    def applies(workload: Workload) -> bool:
        return workload.target.driver is DriverName.SNOWFLAKE

    def sample(self) -> common_pb2.WarehouseSample | None:
        """Blocking; None when no warehouse is visible."""
        if self._conn is None:
            self._conn = get_driver(DriverName.SNOWFLAKE).connect(self.workload.target, 30.0)
            self._conn.tag_own(own_tag(self.run_id, Purpose.TELEMETRY))
        if self.name and not _IDENT.match(self.name):
            raise ValueError(f"not a warehouse name: {self.name!r}")
        # SHOW takes no bind variables: the name is checked above and quoted here
        sql = "SHOW WAREHOUSES" + (f" LIKE '{self.name}'" if self.name else "")
        rows = self._conn.query_dicts(sql)  # type: ignore[attr-defined]
        row = _pick(rows, self.name)
        if row is None:
            return None
        sample = common_pb2.WarehouseSample(
            name=str(row.get("name", "")),
            size=str(row.get("size", "")),
            state=str(row.get("state", "")),
            min_cluster_count=_int(row.get("min_cluster_count")),
            max_cluster_count=_int(row.get("max_cluster_count")),
            started_clusters=_int(row.get("started_clusters")),
            running=_int(row.get("running")),
            queued=_int(row.get("queued")),
        )
        sample.sample_time.GetCurrentTime()
        return sample

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _pick(rows: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    if name:
        for row in rows:
            if str(row.get("name", "")).upper() == name.upper():
                return row
    for row in rows:
        if str(row.get("is_current", "")).upper() == "Y":
            return row
    return rows[0] if len(rows) == 1 else None


def _int(value: Any) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return 0
