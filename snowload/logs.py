"""Logging setup shared by every snowload process."""

from __future__ import annotations

import logging
import sys

LIBRARY_FLOOR = {"grpc": logging.INFO}
"""--log-level DEBUG is snowload's own debug output: gRPC's internals stay at INFO (its
DEBUG lines include tracebacks of streams that were simply cancelled at shutdown)."""


def configure(level: str, fmt: str) -> None:
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)
    for name, floor in LIBRARY_FLOOR.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(floor, logging.getLogger().getEffectiveLevel()))
