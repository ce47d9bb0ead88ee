"""Instant restore: a disk made from a backup is usable (over NBD) while its copy runs.

The backup service hands a block source in (`BLOCK_SOURCE` in `runtime.parts`, a
`BlockSourceFactory`), so this slice never imports it or the chunk store: the source reads the
backup's plaintext, verified, as a restore does. The copy job and the NBD broker of a process
share one `FillingVolume` per disk (volumes/filling.py); a disk being filled by another
process cannot be exported from this one until its copy ends (`FillingBusy`). A process that
runs no job workers (`opencbr nbd serve`, `serve --no-jobs`) never takes a filling itself: the
copy job runs elsewhere, and a filling held here would keep it from ever running
(`takes_filling`).

A disk from a backup stays `creating` until the copy ends (a restore is still measured to
`available`), then turns `available`, or `in-use` when it is attached or has a read-write
NBD export (`status_after_fill`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.core.context import Part, Runtime

from .errors import FromBackupUnavailable
from .models import Disk, DiskStatus, NbdExport
from .service import provision_image, stored_volume, volume_driver
from .volumes.filling import BlockSource, FillingVolume

__all__ = [
    "BlockSourceFactory",
    "end_filling",
    "filling_volume",
    "is_filling",
    "status_after_fill",
    "takes_filling",
]

BlockSourceFactory = Callable[[Runtime, Session, Disk], BlockSource]
"""Registered by the backup service: the source of a disk made from a backup."""

_FILLINGS: Part[dict[str, FillingVolume]] = Part("evs.fillings")
BLOCK_SOURCE: Part[BlockSourceFactory] = Part("evs.block_source")
_lock = threading.Lock()


def is_filling(disk: Disk) -> bool:
    """A disk from a backup whose copy has not ended."""
    return disk.status == DiskStatus.CREATING and disk.source_backup_id is not None


def _fillings(runtime: Runtime) -> dict[str, FillingVolume]:
    return runtime.parts.setdefault(_FILLINGS, dict)


def takes_filling(runtime: Runtime, disk_id: str) -> bool:
    """Whether this process may serve the disk's filling: it holds it already, or it runs
    job workers (so the copy job may be, or become, its own)."""
    with _lock:
        held = disk_id in _fillings(runtime)
    return held or runtime.settings.run_workers


def filling_volume(runtime: Runtime, session: Session, disk: Disk) -> FillingVolume:
    """This process's filling of the disk, opened now if needed (the image must exist)."""
    with _lock:
        fillings = _fillings(runtime)
        filling = fillings.get(disk.id)
        if filling is not None:
            return filling
        make = runtime.parts.get(BLOCK_SOURCE)
        if make is None:
            raise FromBackupUnavailable()
        source = make(runtime, session, disk)
        provision_image(runtime, disk, session=session)
        volume = stored_volume(runtime, session, disk)
        filling = FillingVolume(volume_driver(runtime).root, disk.id, volume, source)
        fillings[disk.id] = filling
        return filling


def end_filling(runtime: Runtime, disk_id: str, *, complete: bool) -> None:
    """The copy ended (`complete`) or stopped in this process: release the filling."""
    with _lock:
        filling = _fillings(runtime).pop(disk_id, None)
    if filling is not None:
        if complete:
            filling.finish()
        else:
            filling.close()


def status_after_fill(session: Session, disk: Disk) -> str:
    """`in-use` for an attached disk or one with a read-write NBD export, else `available`."""
    if disk.server_id is not None:
        return DiskStatus.IN_USE
    writable = session.scalar(
        select(NbdExport.id).where(NbdExport.disk_id == disk.id, NbdExport.read_only.is_(False))
    )
    return DiskStatus.IN_USE if writable is not None else DiskStatus.AVAILABLE
