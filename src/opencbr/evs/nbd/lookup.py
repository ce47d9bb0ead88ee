"""Finding an export by its secret name, for the broker at each NBD connection."""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ..models import Disk, DiskStatus, NbdExport

__all__ = ["SERVABLE_STATUSES", "find_by_name", "servable"]

SERVABLE_STATUSES = (DiskStatus.AVAILABLE, DiskStatus.IN_USE, DiskStatus.BACKING_UP)
"""With a disk from a backup whose copy runs (`creating`, instant restore), the statuses that
serve an export; in any other (being deleted, restored onto, in error) a disk serves none."""


def servable(disk: Disk) -> bool:
    return disk.status in SERVABLE_STATUSES or (
        disk.status == DiskStatus.CREATING and disk.source_backup_id is not None
    )


def find_by_name(session: Session, name: str) -> tuple[NbdExport, Disk] | None:
    """The live export called `name` and its disk, or None (unknown, closed, disk not
    servable). Names are unguessable secrets: knowing one is the client's authorization."""
    if not 1 <= len(name) <= 64:
        return None
    row = session.execute(
        select(NbdExport, Disk)
        .join(Disk, Disk.id == NbdExport.disk_id)
        .where(
            NbdExport.name == name,
            or_(
                Disk.status.in_(SERVABLE_STATUSES),
                and_(Disk.status == DiskStatus.CREATING, Disk.source_backup_id.is_not(None)),
            ),
        )
    ).first()
    return None if row is None else (row[0], row[1])
