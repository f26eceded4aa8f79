"""Where things live on a host: the data directory and SQLite target paths."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir


def data_dir() -> Path:
    """``$SNOWLOAD_HOME`` or the user's data directory (XDG: ~/.local/share/snowload)."""
    env = os.environ.get("SNOWLOAD_HOME")
    return Path(env) if env else Path(user_data_dir("snowload", appauthor=False))


def sqlite_path(database: str) -> str:
    """Absolute path of a SQLite target. Relative paths live under ``<data dir>/targets``
    so that every worker on a host finds the same file whatever its working directory."""
    if database == ":memory:" or database.startswith("file:"):
        return database
    path = Path(database).expanduser()
    if not path.is_absolute():
        path = data_dir() / "targets" / path
    return str(path)
