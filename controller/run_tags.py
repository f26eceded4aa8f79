"""Names for runs (``snowload runs tag RUN NAME``; ``run --baseline NAME``)."""

from __future__ import annotations

import re

TAG = re.compile(r"[A-Za-z0-9._/-]{1,100}")


def tag_problem(name: str) -> str:
    """Why a name cannot name a run ('' if it can)."""
    if not TAG.fullmatch(name):
        return f"{name!r} is not a name: use 1 to 100 letters, digits, '.', '_', '-' or '/'"
    return ""
