"""What the controller spends on merging worker reports (exported to Prometheus)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class IngestStats:
    """Since the controller started, over all runs."""

    reports: int = 0
    merge_seconds: float = 0.0

    def add(self, seconds: float) -> None:
        self.reports += 1
        self.merge_seconds += seconds
