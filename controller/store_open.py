"""Opening the results database for a command that writes runs (the daemon, ``snowload
run``): a database that cannot be written is refused with one sentence that says why
(a read-only filesystem, no permission, a schema from a newer snowload), before anything
runs."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from controller.store import RunStore, default_db_path, open_store
from controller.store_sqlite import SchemaTooNew


class StoreUnavailable(Exception):
    """The results database cannot be used; the message is one sentence for the user."""


def open_writable_store(path: str | Path | None) -> RunStore:
    db = Path(path) if path else default_db_path()
    reason = unwritable(db)
    if reason:
        raise StoreUnavailable(f"results database {db} cannot be written: {reason}")
    try:
        return open_store(db)
    except SchemaTooNew as exc:
        raise StoreUnavailable(f"results database: {exc}") from exc
    except (OSError, sqlite3.Error) as exc:
        raise StoreUnavailable(f"results database {db} cannot be opened: {exc}") from exc


def unwritable(db: Path) -> str:
    """Why ``db`` (or the directory it would be created in) cannot be written, or ''."""
    existing = db
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError as exc:
        return exc.strerror or str(exc)
    if read_only:
        return f"the filesystem holding {existing} is read-only"
    # (WAL mode creates files next to the database: its directory must be writable too)
    targets = [existing, existing.parent] if existing == db else [existing]
    for target in targets:
        if not os.access(target, os.W_OK):
            return f"no permission to write {target}"
    return ""
