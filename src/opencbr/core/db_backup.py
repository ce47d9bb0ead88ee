"""`opencbr admin db backup`: a consistent copy of the embedded SQLite database, online.

SQLite's online backup API copies the database page by page under its own locking, so the
copy is one consistent state even while the service writes. PostgreSQL has its own tools
(`pg_dump`), which the README's "Disaster recovery" section shows; they are not wrapped here.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from .errors import BadRequest

__all__ = ["backup_sqlite"]


def backup_sqlite(database_url: str, target: Path) -> int:
    """Copy the SQLite database at `database_url` to `target` (which must not exist);
    returns the copy's size in bytes."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise BadRequest(
            f"{url.get_backend_name()} databases are backed up with their own tools "
            "(PostgreSQL: pg_dump; see the README's Disaster recovery section)"
        )
    if target.exists():
        raise BadRequest(f"{target} exists; name a new file")
    partial = target.with_name(target.name + ".partial")
    source = sqlite3.connect(f"file:{url.database}?mode=ro", uri=True)
    try:
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        source.close()
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, target)
    return target.stat().st_size
