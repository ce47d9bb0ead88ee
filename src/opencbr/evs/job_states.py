"""The disk and server state changes that another slice's jobs make (the backup service's
backups and restores): every change of a disk's or server's row goes through this slice.

A job reads its disks through `disk_for_job` (a disk that is gone fails the job for good) and
moves them with the functions here; none of them commits (the caller's unit of work does).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.jobs import Permanent

from .instant import status_after_fill
from .models import Disk, DiskStatus, Server, ServerStatus

__all__ = [
    "creating_disk",
    "disk_for_job",
    "disks_failed",
    "filled",
    "record_change_base",
    "restore_failed",
    "restored",
    "server_build_failed",
    "server_built",
]

ERROR_MESSAGE_CHARS = 2000


def disk_for_job(session: Session, disk_id: str) -> Disk:
    """A disk a job works on, whoever owns it; gone → the job fails for good."""
    disk = session.get(Disk, disk_id)
    if disk is None:
        raise Permanent(f"disk {disk_id} no longer exists")
    return disk


def creating_disk(session: Session, disk_id: str) -> Disk | None:
    """The disk if it is still being created (a retried job finds it done or gone)."""
    disk = session.get(Disk, disk_id)
    return disk if disk is not None and disk.status == DiskStatus.CREATING else None


def record_change_base(session: Session, disk_id: str, backup_id: str) -> None:
    """The disk's change map now counts from `backup_id` (its latest complete backup)."""
    session.execute(update(Disk).where(Disk.id == disk_id).values(cbt_base=backup_id))


def restored(session: Session, disk_id: str, status: str) -> None:
    """A disk restored in place returns to the status it had (`available` or `in-use`)."""
    session.execute(
        update(Disk).where(Disk.id == disk_id).values(status=status, updated_at=utcnow())
    )


def restore_failed(session: Session, disk_ids: Sequence[str], message: str) -> None:
    """Disks a restore did not finish: `error_restoring`, never a half-written healthy disk."""
    session.execute(
        update(Disk)
        .where(Disk.id.in_(disk_ids))
        .values(status=DiskStatus.ERROR_RESTORING, error_message=message[:ERROR_MESSAGE_CHARS])
    )


def filled(session: Session, disk_id: str) -> None:
    """A new disk whose every block is copied leaves `creating` (`in-use` if attached or
    exported read-write, else `available`)."""
    disk = disk_for_job(session, disk_id)
    session.execute(
        update(Disk)
        .where(Disk.id == disk_id, Disk.status == DiskStatus.CREATING)
        .values(status=status_after_fill(session, disk), updated_at=utcnow())
    )


def disks_failed(session: Session, disk_ids: Sequence[str], message: str) -> None:
    """New disks whose copy failed for good: `error`."""
    session.execute(
        update(Disk)
        .where(Disk.id.in_(disk_ids))
        .values(status=DiskStatus.ERROR, error_message=message[:ERROR_MESSAGE_CHARS])
    )


def server_built(session: Session, server_id: str, disk_ids: Sequence[str]) -> None:
    """A new server whose disks are all written: the disks `in-use`, the server `ACTIVE`."""
    session.execute(update(Disk).where(Disk.id.in_(disk_ids)).values(status=DiskStatus.IN_USE))
    session.execute(update(Server).where(Server.id == server_id).values(status=ServerStatus.ACTIVE))


def server_build_failed(
    session: Session, server_id: str, disk_ids: Sequence[str], message: str
) -> None:
    """A new server whose disks could not be written: disks and server `error`."""
    disks_failed(session, disk_ids, message)
    session.execute(update(Server).where(Server.id == server_id).values(status=ServerStatus.ERROR))
