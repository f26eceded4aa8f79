"""``snowload tui`` — the terminal UI arrives with its own issue; until then it says so."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    del argv
    print(
        "snowload tui is not available in this version yet; use 'snowload run WORKLOAD' "
        "for a headless run with live progress.",
        file=sys.stderr,
    )
    return 2
