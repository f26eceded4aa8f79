"""Query tags: every query names its run, worker, phase and query kind.

The compact form fits PostgreSQL's 63-byte ``application_name``:
``sl/<run8>/w<index>/<phase letter>/<kind>`` e.g. ``sl/3f2a9c1b/w0/M/point_lookup``.
Phase letters: P = PREPARING, W = WARMUP, M = MEASUREMENT, D = draining (PROCESSING).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from snowload.v1 import common_pb2

PHASE_LETTER: dict[int, str] = {
    common_pb2.STATE_PREPARING: "P",
    common_pb2.STATE_WARMUP: "W",
    common_pb2.STATE_MEASUREMENT: "M",
    common_pb2.STATE_PROCESSING: "D",
}
LETTER_PHASE: dict[str, int] = {v: k for k, v in PHASE_LETTER.items()}
MAX_COMPACT_BYTES = 63


@dataclass(frozen=True)
class Tag:
    run_id: str
    worker_index: int
    phase: int
    """A snowload.v1.State value."""
    kind: str

    @property
    def run_short(self) -> str:
        return self.run_id.replace("-", "")[:8]

    def compact(self) -> str:
        """ASCII, at most 63 bytes (kind names are cut to fit)."""
        head = f"sl/{self.run_short}/w{self.worker_index}/{PHASE_LETTER.get(self.phase, '?')}/"
        kind = self.kind.encode("ascii", "replace").decode("ascii")
        return (head + kind)[:MAX_COMPACT_BYTES]

    def comment(self) -> str:
        """SQL comment form, prefixed to statements where the tag travels with the SQL."""
        return f"/*{self.compact()}*/ "


def parse_compact(text: str) -> Tag | None:
    """Read a compact tag back (tests and enrichment use this); None if not ours."""
    parts = text.split("/", 4)
    if len(parts) != 5 or parts[0] != "sl" or not parts[2].startswith("w"):
        return None
    phase = LETTER_PHASE.get(parts[3])
    if phase is None:
        return None
    return Tag(parts[1], int(parts[2][1:]), phase, parts[4])


class Purpose(StrEnum):
    """What snowload's own statements (not the load) are for."""

    SETUP = "setup"
    """The workload's setup SQL and the sampling of value pools."""
    TELEMETRY = "telemetry"
    """Warehouse polling and the query-history reads of enrichment."""


def own_tag(run_id: str, purpose: Purpose) -> str:
    """``sl/<run8>/<purpose>``: tells snowload's own statements from the load's
    (``parse_compact`` returns None for it, and a history read for ``sl/<run8>/w%`` skips it)."""
    return f"sl/{run_id.replace('-', '')[:8]}/{purpose.value}"
