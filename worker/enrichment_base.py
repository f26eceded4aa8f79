"""What an enricher is: fetches server-side timings once a run drained, within a deadline
(worker/enrichment.py picks one per driver). SQLite has no server side: SKIPPED."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from snowload.v1 import common_pb2
from snowload.workload import Workload

COMPLETED = common_pb2.ENRICHMENT_STATUS_COMPLETED
FAILED = common_pb2.ENRICHMENT_STATUS_FAILED
SKIPPED = common_pb2.ENRICHMENT_STATUS_SKIPPED


def result(
    status: int, message: str, timings: Sequence[common_pb2.ServerTiming] = ()
) -> common_pb2.Enrichment:
    return common_pb2.Enrichment(status=status, message=message, timings=list(timings))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Window:
    run_id: str
    start_ns: int
    end_ns: int
    expected_queries: int = 0


class Enricher(ABC):
    def __init__(self, workload: Workload) -> None:
        self.workload = workload

    def before_measurement(self) -> None:  # noqa: B027 - optional hook
        """Called (in a thread) when the load begins: slow set-up for the snapshot that
        on_measurement_start takes (so that one does little at the boundary)."""

    def on_measurement_start(self) -> None:  # noqa: B027 - optional hook
        """Called (in a thread) at the instant MEASUREMENT begins."""

    @abstractmethod
    def collect(self, window: Window, deadline: float) -> common_pb2.Enrichment:
        """Blocking; must return by ``deadline`` (time.monotonic)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class NoEnricher(Enricher):
    def collect(self, window: Window, deadline: float) -> common_pb2.Enrichment:
        return result(SKIPPED, f"{self.workload.target.driver.value} keeps no server-side history")
