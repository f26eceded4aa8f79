"""Opt-in: a real Snowflake account. Set SNOWLOAD_TEST_CONNECTION to the name of a
connections.toml entry (with a warehouse) to run it; it is skipped otherwise, because no
account is reachable from CI."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller import lifecycle as lc
from controller.server import Controller, ControllerSettings
from snowload.v1 import common_pb2
from tests.cluster import WorkerProcs, attached, run_to_end, worker_env, workload

CONNECTION = os.environ.get("SNOWLOAD_TEST_CONNECTION", "")
pytestmark = pytest.mark.skipif(
    not CONNECTION, reason="set SNOWLOAD_TEST_CONNECTION to run against a real account"
)

WORKLOAD = """
name = "live-smoke"
[target]
driver = "snowflake"
connection = "{connection}"
[load]
workers = 1
connections = 2
warmup = "2s"
duration = "10s"
enrichment_timeout = "3m"
[[query]]
name = "lookup"
sql = "SELECT ? AS x"
params = [{{ int = [1, 1000] }}]
"""


@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await ctl.start()
    yield ctl
    await ctl.stop()


async def test_live_run_tags_enriches_and_counts_credits(
    controller: Controller, tmp_path: Path
) -> None:
    procs = WorkerProcs(controller.address, worker_env(tmp_path))
    procs.env.pop("SNOWFLAKE_HOME", None)  # the real connections.toml of this host
    procs.env.update({k: v for k, v in os.environ.items() if k.startswith("SNOWFLAKE_")})
    procs.spawn("live")
    try:
        await attached(controller, 1)
        run = await run_to_end(
            controller, workload(WORKLOAD.format(connection=CONNECTION)), timeout_s=400
        )
        assert run.state == lc.COMPLETED, run.message
        assert run.enrichment == common_pb2.ENRICHMENT_STATUS_COMPLETED, run.server.message
        timings = {(t.kind, t.phase): t for t in run.server.timings}
        assert timings[("lookup", lc.MEASUREMENT)].calls > 0
        assert run.to_proto().warehouse.name
    finally:
        procs.stop_all()
