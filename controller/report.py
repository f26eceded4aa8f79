"""A finished run as the JSON-ready dicts people and scripts read (the shared
:mod:`snowload.report`); the terminal table is :mod:`controller.render_summary`."""

from __future__ import annotations

from snowload.report import (
    find_max_dict,
    first_errors,
    server_dict,
    stats_dict,
    summary_dict,
)

__all__ = ["find_max_dict", "first_errors", "server_dict", "stats_dict", "summary_dict"]
