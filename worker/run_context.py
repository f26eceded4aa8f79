"""What the worker holds for the run it is in."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from snowload.v1 import common_pb2, control_pb2
from worker.enrichment import Enricher
from worker.executor import Executor
from worker.warehouse import WarehouseWatcher

RESEND_REPORTS = 16


@dataclass
class RunContext:
    """What the agent holds for the run it is in."""

    assign: control_pb2.Assign
    executor: Executor | None = None
    aborted: bool = False
    interval_id: int = 0
    load_started: float | None = None
    measurement_hooked: bool = False
    reports_sent: int = 0
    first_interval: int = 1
    plan: common_pb2.PhasePlan | None = None
    """The run's plan, as last received (instants on the controller's clock)."""
    mapped_offset: int = 0
    """The clock offset the plan was mapped with."""
    origin_perf: int = 0
    """perf ns of the run's load start: interval n ends at origin + n seconds."""
    last_report_ns: int = 0
    reporter: asyncio.Task[None] | None = None
    prepare_s: float = 0.0
    enricher: Enricher | None = None
    enrichment: common_pb2.Enrichment | None = None
    recent_reports: deque[control_pb2.AttachRequest] = field(
        default_factory=lambda: deque(maxlen=RESEND_REPORTS)
    )
    """Sent again after a re-attach (the controller deduplicates on interval id)."""
    paused: bool = False
    resume_connections: int = 0
    """Paused because the controller went mute on a standing stream: the connections to
    resume with when it speaks again (0: wait for a re-attach)."""
    pools_ready: asyncio.Event = field(default_factory=asyncio.Event)
    warehouse: WarehouseWatcher | None = None
    warehouse_sample: common_pb2.WarehouseSample | None = None
    warehouse_task: asyncio.Task[None] | None = None
    totals: dict[tuple[int, int], list[int]] = field(default_factory=dict)
