"""The local sparse-file volume driver.

Files of volume ``<id>`` in the driver's directory:

    ``<id>.json``      metadata (size, CBT block size, encryption parameters, key check value);
                       the volume exists exactly when this file does (written last on create,
                       removed first on delete)
    ``<id>.img``       the raw image, created sparse with ``ftruncate``; ciphertext when encrypted
    ``<id>.cbt``       the changed-block map (changemap.py)
    ``<id>.cbt.view``  the map owned by an open backup view (backup.py)
    ``<id>.cow``       the copy-on-write side file of an open backup view
    ``<id>.fill``      which blocks a disk being filled from a backup holds (filling.py), and
    ``<id>.fill.lock`` the lock of the process that fills it
    ``snapshots/<snapshot id>.img`` a frozen copy of an image (snapshots.py)

The driver is safe to call from several threads: it keeps one ``LocalVolume`` per opened id,
each with its own lock; the table of open volumes has a lock of its own. A new driver on the
same directory (a restart) sees every acknowledged write and the change maps; an encrypted
volume must be given its key again with ``open``.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opencbr.core.files import PRIVATE_FILE, private_directory

from . import transfer
from .backup import LocalBackupView
from .changemap import CBT_BLOCK_SIZE, ChangeMap
from .crypto import CIPHER_NAME, IV_SECTOR_SIZE, SECTOR_SIZE, DiskKey
from .errors import (
    BackupInProgress,
    InvalidVolumeId,
    RangeError,
    VolumeCorrupt,
    VolumeExists,
    VolumeKeyError,
    VolumeNotFound,
)
from .protocol import ProgressCallback
from .snapshots import rollback_snapshot, take_snapshot
from .sparse import Extent, fsync_directory
from .volume import LocalVolume, VolumePaths, WriteData

__all__ = ["SIZE_ALIGNMENT", "LocalVolumeDriver", "VolumeMeta"]

SIZE_ALIGNMENT = SECTOR_SIZE
"""Disk sizes are positive multiples of this (the encryption unit, also for plain disks)."""

_VOLUME_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_META_FORMAT = 1


@dataclass(frozen=True)
class VolumeMeta:
    """What ``<id>.json`` records."""

    size: int
    block_size: int
    key_check: str | None  # None: a plain volume

    @property
    def encrypted(self) -> bool:
        return self.key_check is not None

    def to_json(self) -> dict[str, Any]:
        encryption = None
        if self.key_check is not None:
            encryption = {
                "cipher": CIPHER_NAME,
                "sector_size": SECTOR_SIZE,
                "iv_sector_size": IV_SECTOR_SIZE,
                "key_check": self.key_check,
            }
        return {
            "format": _META_FORMAT,
            "size_bytes": self.size,
            "cbt_block_size": self.block_size,
            "encryption": encryption,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VolumeMeta:
        encryption = data["encryption"]
        if data["format"] != _META_FORMAT:
            raise ValueError(f"unknown metadata format {data['format']}")
        if encryption is not None and (
            encryption["cipher"],
            encryption["sector_size"],
            encryption["iv_sector_size"],
        ) != (CIPHER_NAME, SECTOR_SIZE, IV_SECTOR_SIZE):
            raise ValueError(f"unsupported encryption {encryption}")
        key_check = None if encryption is None else str(encryption["key_check"])
        return cls(int(data["size_bytes"]), int(data["cbt_block_size"]), key_check)


class LocalVolumeDriver:
    """Raw sparse image files under one directory (``<data_dir>/volumes``, say)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        private_directory(self.root)
        self._lock = threading.Lock()
        self._open: dict[str, LocalVolume] = {}

    # ------------------------------------------------------------------ lifecycle
    def create(self, volume_id: str, size_bytes: int, encryption: DiskKey | None = None) -> None:
        """A new volume that reads as zeros; encrypted under `encryption` when given."""
        paths = self._paths(volume_id)
        if size_bytes <= 0 or size_bytes % SIZE_ALIGNMENT:
            raise RangeError(
                volume_id=volume_id,
                reason=f"disk size {size_bytes} must be a positive multiple of {SIZE_ALIGNMENT}",
            )
        with self._lock:
            if paths.meta.exists():
                raise VolumeExists(volume_id=volume_id)
            for leftover in paths.all():  # from a create that stopped half-way
                leftover.unlink(missing_ok=True)
            fd = os.open(paths.image, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.ftruncate(fd, size_bytes)
                os.fsync(fd)
            finally:
                os.close(fd)
            ChangeMap.create(paths.cbt, size_bytes, CBT_BLOCK_SIZE).close()
            key_check = None if encryption is None else encryption.check_value()
            _write_meta(paths.meta, VolumeMeta(size_bytes, CBT_BLOCK_SIZE, key_check))
            self._open[volume_id] = self._load(volume_id, encryption)

    def open(self, volume_id: str, key: DiskKey | None = None) -> None:
        """Make a volume usable; an encrypted one needs `key` (checked against the volume)."""
        with self._lock:
            self._open_locked(volume_id, key)

    def close(self, volume_id: str) -> None:
        """Release the volume's files and forget its key (an open backup view is aborted)."""
        with self._lock:
            volume = self._open.pop(volume_id, None)
        if volume is not None:
            volume.close()

    def close_all(self) -> None:
        with self._lock:
            volumes = list(self._open.values())
            self._open.clear()
        for volume in volumes:
            volume.close()

    def delete(self, volume_id: str) -> None:
        """Remove the volume and all its files. Refused while a backup view is open."""
        paths = self._paths(volume_id)
        with self._lock:
            volume = self._open.get(volume_id)
            if volume is not None:
                with volume.lock:
                    if volume.view is not None:
                        raise BackupInProgress(volume_id=volume_id, reason="cannot delete now")
                    volume.close()
                del self._open[volume_id]
            elif not paths.meta.exists():
                raise VolumeNotFound(volume_id=volume_id)
            paths.meta.unlink()
            fsync_directory(self.root)
            for path in paths.all():
                path.unlink(missing_ok=True)

    def grow(self, volume_id: str, size_bytes: int) -> None:
        """Grow a volume to `size_bytes` (idempotent when it already has that size). Shrinking
        is refused (`RangeError`) and so is growing while a backup view is open. An encrypted
        volume must be open (with its key). A crash before the metadata is rewritten leaves the
        old size and a map of another geometry, which reloads with every block set (the next
        backup reads the whole disk)."""
        if size_bytes <= 0 or size_bytes % SIZE_ALIGNMENT:
            raise RangeError(
                volume_id=volume_id,
                reason=f"disk size {size_bytes} must be a positive multiple of {SIZE_ALIGNMENT}",
            )
        volume = self._volume(volume_id)
        with volume.lock:
            meta = self._meta(volume_id)
            if size_bytes == meta.size:
                return
            if size_bytes < meta.size:
                raise RangeError(
                    volume_id=volume_id,
                    reason=f"a disk cannot shrink ({meta.size} to {size_bytes} bytes)",
                )
            volume.grow(size_bytes)
            _write_meta(volume.paths.meta, VolumeMeta(size_bytes, meta.block_size, meta.key_check))

    # ------------------------------------------------------------------ snapshots
    def snapshot(self, volume_id: str, snapshot_id: str) -> int:
        """Freeze the volume's current contents as `snapshot_id` (snapshots.py); returns the
        bytes of data copied. An encrypted volume must be open with its key."""
        return take_snapshot(self._volume(volume_id), self._snapshot_path(snapshot_id))

    def rollback(self, volume_id: str, snapshot_id: str) -> int:
        """Make the volume's contents those of the snapshot again (snapshots.py)."""
        path = self._snapshot_path(snapshot_id)
        if not path.exists():
            raise VolumeNotFound(volume_id=snapshot_id)
        return rollback_snapshot(self._volume(volume_id), path)

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove a snapshot's image (idempotent)."""
        self._snapshot_path(snapshot_id).unlink(missing_ok=True)

    def snapshot_exists(self, snapshot_id: str) -> bool:
        return self._snapshot_path(snapshot_id).exists()

    def _snapshot_path(self, snapshot_id: str) -> Path:
        if not _VOLUME_ID.fullmatch(snapshot_id):
            raise InvalidVolumeId(
                volume_id=snapshot_id, reason="use 1-128 letters, digits, '-' or '_'"
            )
        directory = self.root / "snapshots"
        private_directory(directory)
        return directory / f"{snapshot_id}.img"

    def exists(self, volume_id: str) -> bool:
        return self._paths(volume_id).meta.exists()

    def size(self, volume_id: str) -> int:
        return self._meta(volume_id).size

    def is_encrypted(self, volume_id: str) -> bool:
        return self._meta(volume_id).encrypted

    # ------------------------------------------------------------------ data path
    def write(self, volume_id: str, offset: int, data: WriteData, length: int | None = None) -> int:
        """Write at a 512-aligned offset; rules in volume.py. Returns the bytes written."""
        return self._volume(volume_id).write(offset, data, length)

    def write_zeroes(self, volume_id: str, offset: int, length: int) -> int:
        """Make a 512-aligned range read as zeros, freeing its space where the file system can."""
        return self._volume(volume_id).write_zeroes(offset, length)

    def read(self, volume_id: str, offset: int, length: int) -> Iterator[bytes]:
        """Plaintext of any range within the disk, as chunks of at most 1 MiB."""
        return self._volume(volume_id).read(offset, length)

    def flush(self, volume_id: str) -> None:
        self._volume(volume_id).flush()

    def changed_extents(self, volume_id: str) -> list[Extent]:
        return self._volume(volume_id).changed_extents()

    def allocated_extents(self, volume_id: str) -> list[Extent]:
        return self._volume(volume_id).allocated_extents()

    def begin_backup(self, volume_id: str) -> LocalBackupView:
        return self._volume(volume_id).begin_backup()

    def import_file(
        self, volume_id: str, path: Path | str, progress: ProgressCallback | None = None
    ) -> int:
        """Replace the contents with a raw image file (transfer.py)."""
        return transfer.import_image(self._volume(volume_id), Path(path), progress)

    def export_file(
        self, volume_id: str, path: Path | str, progress: ProgressCallback | None = None
    ) -> int:
        return transfer.export_image(self._volume(volume_id), Path(path), progress)

    def fill_holes(self, volume_id: str) -> int:
        """Make an encrypted image read as zeros through plain dm-crypt too (crypto.py)."""
        return transfer.fill_holes(self._volume(volume_id))

    # ------------------------------------------------------------------ internals
    def _paths(self, volume_id: str) -> VolumePaths:
        if not _VOLUME_ID.fullmatch(volume_id):
            raise InvalidVolumeId(
                volume_id=volume_id, reason="use 1-128 letters, digits, '-' or '_'"
            )
        return VolumePaths.of(self.root, volume_id)

    def _meta(self, volume_id: str) -> VolumeMeta:
        path = self._paths(volume_id).meta
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise VolumeNotFound(volume_id=volume_id) from None
        try:
            return VolumeMeta.from_json(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise VolumeCorrupt(volume_id=volume_id, reason=f"metadata: {exc}") from exc

    def _volume(self, volume_id: str) -> LocalVolume:
        with self._lock:
            volume = self._open.get(volume_id)
            return volume if volume is not None else self._open_locked(volume_id, None)

    def _open_locked(self, volume_id: str, key: DiskKey | None) -> LocalVolume:
        volume = self._open.get(volume_id)
        if volume is None:
            volume = self._load(volume_id, key)
            self._open[volume_id] = volume
        elif key is not None:
            _check_key(volume_id, self._meta(volume_id), key)
        return volume

    def _load(self, volume_id: str, key: DiskKey | None) -> LocalVolume:
        meta = self._meta(volume_id)
        if meta.encrypted or key is not None:
            key = _check_key(volume_id, meta, key)
        paths = self._paths(volume_id)
        return LocalVolume(volume_id, paths, meta.size, meta.block_size, key)


def _check_key(volume_id: str, meta: VolumeMeta, key: DiskKey | None) -> DiskKey:
    if not meta.encrypted:
        raise VolumeKeyError(volume_id=volume_id, reason="the volume is not encrypted")
    if key is None:
        raise VolumeKeyError(
            volume_id=volume_id, reason="the volume is encrypted: open it with its key"
        )
    if key.check_value() != meta.key_check:
        raise VolumeKeyError(volume_id=volume_id, reason="the key does not match the volume")
    return key


def _write_meta(path: Path, meta: VolumeMeta) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE)
    with open(fd, "w", encoding="utf-8") as handle:
        json.dump(meta.to_json(), handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)
