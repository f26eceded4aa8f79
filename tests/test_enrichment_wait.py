"""Enrichment that takes longer than the drain timeout: the controller waits for it within
``[load] enrichment_timeout``, not the drain timeout.

The mechanism is the real one: Snowflake's query history lags the queries, so the setup
worker polls it (every 5 s) until it holds the run's queries. The run reads a stand-in
history table in fakesnow (``options.query_history``) that stays empty until the test
fills it, well after the drain timeout.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller import lifecycle as lc
from controller.server import Controller
from snowload.v1 import common_pb2
from snowload.workload import Driver as DriverName
from snowload.workload import Target
from tests.cluster import WorkerProcs, attached, wait_for, worker_env, workload
from tests.test_enrichment import STANDIN
from worker.drivers.snowflake import SnowflakeDriver

pytestmark = pytest.mark.slow

HISTORY = "SLDB.PUBLIC.QH_LAGGING"
WORKLOAD = f"""
name = "sf-slow-enrichment"
[target]
driver = "snowflake"
connection = "fake"
options = {{ query_history = "{HISTORY}" }}
[load]
workers = 1
connections = 1
warmup = "0s"
duration = "2s"
think_time = "20ms"
enrichment_timeout = "40s"
[[query]]
name = "get"
sql = "SELECT 1"
"""

DRAIN_TIMEOUT_S = 1.0
LAG_S = DRAIN_TIMEOUT_S + 5.0 + 1.5
"""The history shows the run's queries this long after the load stopped: past the drain
timeout and the controller's margin over it."""


async def test_the_controller_waits_for_enrichment_slower_than_the_drain(
    controller: Controller, snowflake_home: Path, tmp_path: Path
) -> None:
    """Fails if the controller bounds its wait for the enricher's result by the drain
    timeout alone: the enrichment would be FAILED ('no enrichment result before the time
    limit') although the history arrived well within enrichment_timeout."""
    controller.runs.drain_timeout_s = DRAIN_TIMEOUT_S
    # (a worker busy with the connector on a loaded host may fall silent for 3 s: this
    # test is about the wait for enrichment, not loss detection)
    controller.registry.loss_timeout_s = 20.0
    sf = SnowflakeDriver().connect(Target(driver=DriverName.SNOWFLAKE, connection="fake"), 10)
    sf.execute_script(
        [
            "CREATE DATABASE IF NOT EXISTS SLDB",
            "CREATE SCHEMA IF NOT EXISTS SLDB.PUBLIC",
            STANDIN.replace("SLDB.PUBLIC.QH_STANDIN", HISTORY),
        ]
    )
    procs = WorkerProcs(controller.address, worker_env(tmp_path / "home"))
    procs.env["SNOWFLAKE_HOME"] = str(snowflake_home)
    procs.spawn("enricher")
    try:
        await attached(controller, 1)
        run = controller.runs.start(workload(WORKLOAD))
        await wait_for(lambda: run.state == lc.PROCESSING, 60, "PROCESSING")
        stopped = time.monotonic()
        await asyncio.sleep(LAG_S)
        assert run.state == lc.PROCESSING  # still waiting for the enricher
        # the history catches up: one row per query the run issued, in its window
        start = datetime.fromtimestamp(run.phase_ns[lc.MEASUREMENT] / 1e9 + 0.5, tz=UTC)
        rows = run.metrics.received_count() + 10
        sf.execute_script(
            [
                f"INSERT INTO {HISTORY} SELECT "
                "'q-' || LPAD(SEQ4()::TEXT, 6, '0'), "
                f"'sl/{run.run_id[:8]}/w0/M/get', "
                f"'{start.replace(tzinfo=None).isoformat()}'::TIMESTAMP_NTZ, NULL, "
                "3, 1, 2, 0, 0, 0 "
                f"FROM TABLE(GENERATOR(ROWCOUNT => {rows}))"
            ]
        )
        assert run.task is not None
        await asyncio.wait_for(asyncio.shield(run.task), 60)
        waited = time.monotonic() - stopped
        assert run.state == lc.COMPLETED, run.message
        assert run.enrichment == common_pb2.ENRICHMENT_STATUS_COMPLETED, run.server.message
        assert f"{rows} queries" in run.server.message
        (timing,) = run.server.timings
        assert (timing.kind, timing.phase, timing.calls) == ("get", lc.MEASUREMENT, rows)
        assert LAG_S < waited < LAG_S + 10, waited
    finally:
        sf.close()
        procs.stop_all()
