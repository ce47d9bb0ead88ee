"""Block volumes for EVS: a driver interface and the local sparse-file driver.

Pure library: no database and no HTTP. The EVS service keeps disk records and wrapped keys and
calls a `VolumeDriver` for the bytes. Module guide:

* ``protocol``  — the `VolumeDriver` and `BackupView` interfaces.
* ``local``     — `LocalVolumeDriver`: sparse raw images in one directory.
* ``volume``    — one open volume: data path rules, locking, write ordering.
* ``crypto``    — AES-XTS-256 ``aes-xts-plain64`` in 4096-byte units; why not LUKS2.
* ``xts``       — many XTS units per OpenSSL context (the fast path under ``crypto``).
* ``changemap`` — changed-block tracking: file format, granularity, durability rule.
* ``backup``    — point-in-time backup views (map swap + copy-on-write).
* ``transfer``  — sparse-aware import and export of raw image files.
* ``nbd_source`` — external volumes: NBD exports read through a dirty bitmap, restored onto.
* ``libnbd``    — Debian's libnbd binding, loaded on first use and typed for what we call.
"""

from .backup import LocalBackupView
from .changemap import CBT_BLOCK_SIZE
from .crypto import SECTOR_SIZE, DiskKey, dm_crypt_table
from .errors import (
    BackupInProgress,
    InvalidVolumeId,
    RangeError,
    StreamLengthMismatch,
    ViewClosed,
    VolumeCorrupt,
    VolumeError,
    VolumeExists,
    VolumeKeyError,
    VolumeNotFound,
)
from .local import SIZE_ALIGNMENT, LocalVolumeDriver
from .protocol import BackupView, Extent, ProgressCallback, VolumeDriver
from .volume import CHUNK_SIZE, WRITE_ALIGNMENT, WriteData

__all__ = [
    "CBT_BLOCK_SIZE",
    "CHUNK_SIZE",
    "SECTOR_SIZE",
    "SIZE_ALIGNMENT",
    "WRITE_ALIGNMENT",
    "BackupInProgress",
    "BackupView",
    "DiskKey",
    "Extent",
    "InvalidVolumeId",
    "LocalBackupView",
    "LocalVolumeDriver",
    "ProgressCallback",
    "RangeError",
    "StreamLengthMismatch",
    "ViewClosed",
    "VolumeCorrupt",
    "VolumeDriver",
    "VolumeError",
    "VolumeExists",
    "VolumeKeyError",
    "VolumeNotFound",
    "WriteData",
    "dm_crypt_table",
]
