"""The example workloads parse as they are, and the PostgreSQL one runs for real."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller import lifecycle as lc
from controller.server import Controller, ControllerSettings
from snowload.workload import Overrides, load_file, parse_toml
from tests.cluster import WorkerProcs, attached, run_to_end, worker_env
from tests.pg import PgCluster

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.toml"))


def test_there_are_examples_for_every_driver() -> None:
    drivers = {load_file(p).target.driver.value for p in EXAMPLES}
    assert drivers == {"sqlite", "postgres", "snowflake"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_parses_and_round_trips(path: Path) -> None:
    workload = load_file(path)
    assert workload.queries
    assert parse_toml(path.read_text(), str(path)) == workload


@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    ctl = Controller(ControllerSettings(listen="127.0.0.1:0"))
    await ctl.start()
    yield ctl
    await ctl.stop()


async def test_postgres_example_runs_against_a_real_server(
    pg: PgCluster, controller: Controller, tmp_path: Path
) -> None:
    path = Path(__file__).parent.parent / "examples" / "postgres.toml"
    text = path.read_text().replace(
        'dsn = "host=127.0.0.1 port=5432 dbname=postgres user=postgres"', f'dsn = "{pg.dsn}"'
    )
    assert pg.dsn in text
    workload = parse_toml(
        text, str(path), Overrides(workers=2, connections=4, warmup_s=0.5, duration_s=2.0)
    )
    procs = WorkerProcs(controller.address, worker_env(tmp_path))
    procs.spawn("ex-a")
    procs.spawn("ex-b")
    try:
        await attached(controller, 2)
        run = await run_to_end(controller, workload)
        assert run.state == lc.COMPLETED, run.message
        meas = {p.phase: p for p in run.summary().phases}[lc.MEASUREMENT]
        assert set(meas.by_kind) == {"point_lookup", "range_scan", "insert", "update"}
        assert meas.overall.errors == 0
    finally:
        procs.stop_all()


async def test_the_cluster_example_takes_server_and_login_from_the_workers_environment(
    pg: PgCluster, controller: Controller, tmp_path: Path
) -> None:
    """examples/postgres-cluster.toml names no server: the workers' PG* variables (what
    deploy/kubernetes/workers.yaml sets from a Secret) decide where it runs and as whom."""
    from tests.pg import PASSWORD, PASSWORD_USER

    path = Path(__file__).parent.parent / "examples" / "postgres-cluster.toml"
    workload = parse_toml(
        path.read_text(), str(path), Overrides(workers=1, connections=2, duration_s=1.0)
    )
    assert "host" not in workload.target.dsn and "user" not in workload.target.dsn
    env = worker_env(tmp_path) | {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg.port),
        "PGDATABASE": "postgres",
        "PGUSER": PASSWORD_USER,
        "PGPASSWORD": PASSWORD,
        "PGPASSFILE": str(tmp_path / "no-such-pgpass"),
    }
    with pg.connect() as conn:  # the password user runs the setup: let it own the schema
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {PASSWORD_USER}")
        conn.execute("DROP TABLE IF EXISTS orders")
    procs = WorkerProcs(controller.address, env)
    procs.spawn("cluster-ex")
    try:
        await attached(controller, 1)
        run = await run_to_end(controller, workload)
        assert run.state == lc.COMPLETED, run.message
        meas = {p.phase: p for p in run.summary().phases}[lc.MEASUREMENT]
        assert meas.overall.count > 0 and meas.overall.errors == 0
        with pg.connect() as conn:  # the table the setup made belongs to the PGUSER login
            row = conn.execute(
                "SELECT tableowner FROM pg_tables WHERE tablename = 'orders'"
            ).fetchone()
        assert row == (PASSWORD_USER,)
    finally:
        procs.stop_all()
        with pg.connect() as conn:
            conn.execute("DROP TABLE IF EXISTS orders")
