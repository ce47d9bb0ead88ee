"""Finding an export by its secret name, for the broker at each NBD connection."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Disk, DiskStatus, NbdExport

__all__ = ["SERVABLE_STATUSES", "find_by_name"]

SERVABLE_STATUSES = (DiskStatus.AVAILABLE, DiskStatus.IN_USE, DiskStatus.BACKING_UP)
"""A disk in any other status (being deleted, restored onto, in error) serves no export."""


def find_by_name(session: Session, name: str) -> tuple[NbdExport, Disk] | None:
    """The live export called `name` and its disk, or None (unknown, closed, disk not
    servable). Names are unguessable secrets: knowing one is the client's authorization."""
    if not 1 <= len(name) <= 64:
        return None
    row = session.execute(
        select(NbdExport, Disk)
        .join(Disk, Disk.id == NbdExport.disk_id)
        .where(NbdExport.name == name, Disk.status.in_(SERVABLE_STATUSES))
    ).first()
    return None if row is None else (row[0], row[1])
