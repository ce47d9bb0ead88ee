"""The volume-driver interface: what the EVS service needs from a block-storage backend.

A driver stores fixed-size block volumes by id. The local sparse-file driver
(``LocalVolumeDriver``) implements it; an LVM or Ceph RBD driver can implement the same calls
(RBD has native snapshots and ``diff_iterate`` for ``begin_backup`` and ``changed_extents``).

Contracts every driver keeps:
    * sizes are positive multiples of 4096 bytes;
    * writes are 512-byte aligned in offset and length, reads may be any range in the disk, a
      bad range raises ``RangeError`` and changes nothing;
    * holes and never-written ranges read as zeros, encrypted or not;
    * an encrypted volume needs its raw ``DiskKey`` once per driver lifetime (``create`` or
      ``open``); its key never leaves the caller's control and nothing plaintext is stored;
    * every acknowledged write is in the change map;
    * a backup view is a stable point-in-time image until ``commit`` or ``abort``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Protocol

from .crypto import DiskKey
from .sparse import Extent
from .volume import WriteData

__all__ = ["BackupView", "Extent", "ProgressCallback", "VolumeDriver"]

ProgressCallback = Callable[[int, int], None]
"""progress(done_bytes, total_bytes)."""


class BackupView(Protocol):
    """A consistent, read-only, point-in-time image of one volume for a backup run."""

    @property
    def volume_id(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def block_size(self) -> int:
        """Granularity of ``changed_extents``."""
        ...

    @property
    def encrypted(self) -> bool: ...

    def changed_extents(self) -> list[Extent] | None:
        """Ranges changed since the previous committed view, merged, in order; None when the
        view cannot tell (an external volume whose dirty bitmap is missing or was reset): the
        backup then reads everything."""
        ...

    def allocated_extents(self) -> list[Extent]:
        """A superset of the ranges that may hold non-zero data."""
        ...

    def read_at(self, offset: int, length: int) -> bytes:
        """Plaintext of a range as of the view."""
        ...

    def commit(self) -> None:
        """The backup succeeded: the changes it covered are forgotten."""
        ...

    def abort(self) -> None:
        """The backup failed: its changes go back to the volume's change map."""
        ...

    def __enter__(self) -> BackupView: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class VolumeDriver(Protocol):
    """Block volumes addressed by id."""

    def create(self, volume_id: str, size_bytes: int, encryption: DiskKey | None = None) -> None:
        """A new all-zero volume; encrypted with `encryption` when given."""
        ...

    def open(self, volume_id: str, key: DiskKey | None = None) -> None:
        """Make an existing volume usable (an encrypted one needs its key); idempotent."""
        ...

    def close(self, volume_id: str) -> None:
        """Release the volume's resources and forget its key."""
        ...

    def delete(self, volume_id: str) -> None: ...

    def exists(self, volume_id: str) -> bool: ...

    def size(self, volume_id: str) -> int: ...

    def is_encrypted(self, volume_id: str) -> bool: ...

    def write(self, volume_id: str, offset: int, data: WriteData, length: int | None = None) -> int:
        """Write bytes or a stream of chunks (a stream announces `length`)."""
        ...

    def write_zeroes(self, volume_id: str, offset: int, length: int) -> int:
        """Make a range read as zeros (same rules as `write`), without writing them where the
        backend can (a hole, a discard)."""
        ...

    def read(self, volume_id: str, offset: int, length: int) -> Iterator[bytes]:
        """Plaintext of a range, streamed in chunks."""
        ...

    def flush(self, volume_id: str) -> None:
        """Make acknowledged writes durable."""
        ...

    def changed_extents(self, volume_id: str) -> list[Extent]: ...

    def allocated_extents(self, volume_id: str) -> list[Extent]: ...

    def begin_backup(self, volume_id: str) -> BackupView: ...

    def import_file(
        self, volume_id: str, path: Path, progress: ProgressCallback | None = None
    ) -> int:
        """Replace the volume's contents with a raw image file."""
        ...

    def export_file(
        self, volume_id: str, path: Path, progress: ProgressCallback | None = None
    ) -> int:
        """Write the volume's plaintext as a raw image file."""
        ...
