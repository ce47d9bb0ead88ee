"""Disk snapshots: frozen sparse copies of a volume's image, and rollback from them.

Design
    A snapshot is a copy of the raw image file (ciphertext for an encrypted disk: image offset
    == guest offset, so the disk's own key reads it) taken under the volume lock, so no write
    lands half-way. Only the image's data extents are copied (``SEEK_DATA``), in the kernel
    with ``copy_file_range``: on a file system with reflinks (XFS, btrfs) that shares the
    blocks and costs nothing; on ext4 it copies the allocated bytes (1 GiB of data in a 10 GiB
    disk: 4.6 s with the fsync on a busy 2-core host; the holes cost nothing). The volume lock
    is held meanwhile, so writes to that disk wait for the copy. Afterwards writes never pay
    for the disk's snapshots, unlike a copy-on-write side file per snapshot (a preserving copy
    per write per snapshot), and a snapshot stays valid whatever happens to the disk (growth,
    backups, rollback to another snapshot).

    Rollback makes the image exactly the snapshot again (the range past a snapshot taken
    before the disk grew reads as zeros) and marks every block that held data before or
    holds data now in the change map, so the next incremental backup is correct.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import BackupInProgress, RangeError
from .sparse import copy_range, data_extents, fsync_directory, merge_extents
from .volume import LocalVolume

__all__ = ["rollback_snapshot", "take_snapshot"]


def take_snapshot(volume: LocalVolume, target: Path) -> int:
    """Copy the volume's image to `target` (written whole, then renamed into place); returns
    the bytes of data copied."""
    tmp = target.with_name(target.name + ".tmp")
    dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with volume.lock:
            volume.ensure_open()
            os.ftruncate(dst, volume.size)
            extents = data_extents(volume.fd, 0, volume.size)
            for offset, length in extents:
                copy_range(volume.fd, dst, offset, length)
        os.fsync(dst)
    except BaseException:
        os.close(dst)
        tmp.unlink(missing_ok=True)
        raise
    os.close(dst)
    os.replace(tmp, target)
    fsync_directory(target.parent)
    return sum(length for _, length in extents)


def rollback_snapshot(volume: LocalVolume, source: Path) -> int:
    """Make the volume's image the snapshot `source` again; returns the bytes copied."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(src).st_size
        if size > volume.size:
            raise RangeError(
                volume_id=volume.volume_id,
                reason=f"snapshot of {size} bytes is larger than the disk ({volume.size})",
            )
        extents = data_extents(src, 0, size)
        with volume.lock:
            volume.ensure_open()
            if volume.view is not None:
                raise BackupInProgress(volume_id=volume.volume_id, reason="cannot roll back now")
            old = data_extents(volume.fd, 0, volume.size)
            volume.change_map.mark_many(merge_extents(old + extents))
            os.ftruncate(volume.fd, 0)  # every old block goes: the disk is all holes again
            os.ftruncate(volume.fd, volume.size)
            for offset, length in extents:
                copy_range(src, volume.fd, offset, length)
            os.fsync(volume.fd)
    finally:
        os.close(src)
    return sum(length for _, length in extents)
