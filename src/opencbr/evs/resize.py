"""Growing a disk (EVS `ResizeVolume`, `os-extend`).

Rules (as EVS): a disk only grows, in whole GB up to `MAX_SIZE_GB`; it may be `available` or
`in-use` (attached to a server: the guest sees the new size on its next rescan). An open NBD
export is refused instead, because the export told its client the size when it connected;
close it, grow, export again. The request moves the disk to `extending` and enqueues the job
that grows the image and its change map (volumes/local.py `grow`), then gives the disk back
its status. The next backup is incremental: the change map keeps the old blocks' history and
the chunk store reads every block past the parent backup's end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.core.context import Actor, Runtime
from opencbr.core.jobs import Job, JobContext, enqueue

from .errors import EvsValidationFailed, ExternalDiskDataPath, NbdExportConflict
from .external_volumes import external_source
from .models import Disk, DiskStatus, NbdExport
from .service import MAX_SIZE_GB, GiB, get_disk, stored_volume, transition_disk, volume_driver

__all__ = ["EXTEND_DISK_JOB", "ExtendDisk", "extend_disk"]

EXTEND_DISK_JOB = "evs.extend_disk"
_GROWABLE = (DiskStatus.AVAILABLE, DiskStatus.IN_USE)


def extend_disk(session: Session, actor: Actor, disk_id: str, new_size: int | None) -> Job:
    """Check the request, mark the disk `extending` and enqueue the job that grows it."""
    assert actor.project_id is not None
    disk = get_disk(session, actor.project_id, disk_id, lock=True)
    if new_size is None:
        raise EvsValidationFailed(reason="os-extend.new_size is required")
    if not disk.size_gb < new_size <= MAX_SIZE_GB:
        raise EvsValidationFailed(
            reason=f"os-extend.new_size must be larger than the disk's {disk.size_gb} GB and at "
            f"most {MAX_SIZE_GB} GB: a disk cannot shrink"
        )
    source = external_source(session, disk.id)
    if source is not None:
        raise ExternalDiskDataPath(id=disk.id, uri=source.uri)
    export = session.scalar(select(NbdExport).where(NbdExport.disk_id == disk.id))
    if export is not None:
        raise NbdExportConflict(id=disk.id, mode="read-only" if export.read_only else "read-write")
    previous = disk.status
    transition_disk(session, disk, _GROWABLE, DiskStatus.EXTENDING)
    return enqueue(
        session,
        EXTEND_DISK_JOB,
        {"disk_id": disk.id, "size_gb": new_size, "status": previous},
        project_id=disk.project_id,
    )


class ExtendDisk:
    """`evs.extend_disk` {disk_id, size_gb, status}: grow the image (idempotent), record the
    size and give the disk back `status`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        disk_id, size_gb = str(ctx.payload["disk_id"]), int(ctx.payload["size_gb"])
        with self.runtime.database.unit_of_work() as session:
            disk = session.get(Disk, disk_id)
            if disk is not None and disk.status == DiskStatus.EXTENDING:
                stored_volume(self.runtime, session, disk)  # opened with its key
                volume_driver(self.runtime).grow(disk.id, size_gb * GiB)
                transition_disk(session, disk, [DiskStatus.EXTENDING], ctx.payload["status"])
                disk.size_gb = size_gb
        return {"volume_id": disk_id, "size": size_gb}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        with self.runtime.database.unit_of_work() as session:
            disk = session.get(Disk, str(ctx.payload["disk_id"]))
            if disk is not None and disk.status == DiskStatus.EXTENDING:
                transition_disk(session, disk, [DiskStatus.EXTENDING], ctx.payload["status"])
                disk.error_message = str(error)[:4000]
