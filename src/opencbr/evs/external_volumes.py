"""Which volume backend a disk uses: an external disk's volume is its NBD source.

Kept apart from `external` (registration) so that `service.open_volume` can ask it without an
import cycle. An external disk's backups build on the `ExternalRead` of the disk's last backup
(`Disk.cbt_base`), the one the engine's incremental is relative to.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from .external_models import ExternalDisk, ExternalRead
from .models import Disk
from .volumes.nbd_source import NbdBackupView, NbdSource, NbdVolume, ReadRecord

__all__ = ["external_source", "external_volume", "read_record_of", "record_backup_read"]


def external_source(session: Session, disk_id: str) -> NbdSource | None:
    """The NBD source of an external disk; None for a disk whose bytes OpenCBR stores."""
    row = session.get(ExternalDisk, disk_id)
    if row is None:
        return None
    return NbdSource(row.uri, row.bitmap, row.tls_psk_file)


def read_record_of(session: Session, backup_id: str) -> ReadRecord | None:
    row = session.get(ExternalRead, backup_id) if backup_id else None
    if row is None:
        return None
    marked = [(int(offset), int(length)) for offset, length in row.marked]
    return ReadRecord(row.bitmap, marked, row.bitmap_present, row.mode, row.reason)


def external_volume(session: Session, disk: Disk) -> NbdVolume | None:
    source = external_source(session, disk.id)
    if source is None:
        return None
    return NbdVolume(disk.id, source, read_record_of(session, disk.cbt_base))


def record_backup_read(session: Session, backup_id: str, view: object) -> None:
    """Keep what a backup of an external disk read (nothing for other views), in the
    transaction that completes the backup."""
    if not isinstance(view, NbdBackupView):
        return
    record = view.record
    session.add(
        ExternalRead(
            backup_id=backup_id,
            disk_id=view.volume_id,
            bitmap=record.bitmap,
            bitmap_present=record.bitmap_present,
            mode=record.mode,
            reason=record.reason,
            marked=[[offset, length] for offset, length in record.marked],
        )
    )
