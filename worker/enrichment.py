"""Server-side timings fetched by one worker after a run (the controller never connects):
the enricher for a workload's driver.

PostgreSQL: ``pg_stat_statements`` snapshots across MEASUREMENT (worker/enrichment_postgres.py).
Snowflake: the query history for the run's window and tag, paged and joined by query id
with the client's samples (worker/enrichment_history.py); for hybrid tables a later pass
over the aggregate history (worker/enrichment_aggregate.py). SQLite has no server side:
SKIPPED. What an enricher is: worker/enrichment_base.py.
"""

from __future__ import annotations

from snowload.workload import Driver as DriverName
from snowload.workload import Workload
from worker.enrichment_aggregate import AggregateEnricher
from worker.enrichment_base import Enricher, NoEnricher, Window
from worker.enrichment_history import PAGE_ROWS, SnowflakeEnricher
from worker.enrichment_postgres import PostgresEnricher, normalise_sql

__all__ = [
    "PAGE_ROWS",
    "AggregateEnricher",
    "Enricher",
    "NoEnricher",
    "PostgresEnricher",
    "SnowflakeEnricher",
    "Window",
    "enricher_for",
    "normalise_sql",
]


def enricher_for(workload: Workload, run_id: str = "") -> Enricher:
    driver = workload.target.driver
    if driver is DriverName.POSTGRES:
        return PostgresEnricher(workload, run_id)
    if driver is DriverName.SNOWFLAKE:
        return SnowflakeEnricher(workload)
    return NoEnricher(workload)
