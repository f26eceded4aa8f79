"""Snowflake warehouse credits: size x started clusters x time."""

from __future__ import annotations

from snowload.v1 import common_pb2

# credits per hour of one cluster, by warehouse size (Snowflake's standard warehouses)
CREDITS_PER_HOUR = {
    "X-SMALL": 1,
    "XSMALL": 1,
    "SMALL": 2,
    "MEDIUM": 4,
    "LARGE": 8,
    "X-LARGE": 16,
    "XLARGE": 16,
    "2X-LARGE": 32,
    "XXLARGE": 32,
    "3X-LARGE": 64,
    "XXXLARGE": 64,
    "4X-LARGE": 128,
    "X4LARGE": 128,
    "5X-LARGE": 256,
    "6X-LARGE": 512,
}


def credits_between(a: common_pb2.WarehouseSample, seconds: float) -> float:
    """Credits a warehouse in the state of sample ``a`` burns over ``seconds``."""
    rate = CREDITS_PER_HOUR.get(a.size.upper().replace(" ", ""), 0)
    clusters = a.started_clusters if a.state.upper() in ("STARTED", "RESIZING") else 0
    return rate * clusters * seconds / 3600.0
