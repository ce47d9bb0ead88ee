"""What a backup of an external disk read, for ShowBackup (`extend_info.external_source`).

The record is the disk service's (`evs.external.backup_reads`); it names the dirty bitmap, the
extents it marked when the backup ran, and whether the backup read through it (`bitmap`) or
read every allocated extent (`full`) and why. It holds no URI, so whoever may see the backup
may see it. At most `MAX_EXTENTS` extents are listed (`extents_total` says how many there were).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from opencbr.evs.external import backup_reads

__all__ = ["MAX_EXTENTS", "external_read_views"]

MAX_EXTENTS = 1000


def external_read_views(session: Session, backup_ids: list[str]) -> dict[str, dict[str, Any]]:
    views = {}
    for backup_id, row in backup_reads(session, backup_ids).items():
        marked = [[int(offset), int(length)] for offset, length in row.marked]
        views[backup_id] = {
            "type": "nbd",
            "bitmap": row.bitmap,
            "bitmap_present": row.bitmap_present,
            "read": row.mode,
            "full_read_reason": row.reason,
            "marked_bytes": sum(length for _, length in marked),
            "extents_total": len(marked),
            "extents": marked[:MAX_EXTENTS],
        }
    return views
