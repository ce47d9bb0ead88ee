"""Point-in-time backup views of a volume: change-map swap plus copy-on-write.

Mechanism
    ``begin_backup`` runs under the volume lock and (1) renames the volume's change map to
    ``<id>.cbt.view`` — it now belongs to the view and lists what changed since the previous
    backup — and starts a fresh, empty ``<id>.cbt`` for writes from now on; (2) creates an empty
    sparse side file ``<id>.cow`` of the disk's size.

    While the view is open, every write first preserves, for each CBT block it touches that is
    not preserved yet, the block's current image bytes (ciphertext on encrypted disks, so no
    plaintext ever reaches the side file) into the side file at the same offset; then it writes
    the image. All-zero blocks are only flagged, the side file stays a hole there. The view reads
    preserved blocks from the side file and all other blocks from the image, under the volume
    lock, so it always sees the disk exactly as it was at ``begin_backup``: a write is either
    wholly after the view (preserved first) or, for blocks it never touched, irrelevant.

    ``commit`` (backup stored) deletes the view's map and the side file. ``abort`` (backup
    failed) ORs the view's map back into the current map, durably, then deletes both, so the next
    backup still sees every change. A process that stops with a view open does the same as
    ``abort`` when the volume is next opened (the preserved-block flags live only in memory; the
    side file is useless without them and is deleted). Leaving a ``with`` block without
    ``commit`` aborts.

    One view per volume at a time; import and delete are refused while it is open.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .changemap import ChangeMap, set_bit_range
from .crypto import is_zero
from .sparse import Extent, merge_extents, pread_exact, pwrite_all
from .view_exit import AbortsOnExit

if TYPE_CHECKING:
    from .volume import LocalVolume

__all__ = ["CowStore", "LocalBackupView"]


class CowStore:
    """The side file of a view: pre-images of blocks overwritten since the view began."""

    def __init__(self, path: Path, fd: int, size: int, block_size: int) -> None:
        self.path = path
        self._fd = fd
        self._size = size
        self._block_size = block_size
        self._preserved = bytearray(-(-size // (block_size * 8)))

    @classmethod
    def create(cls, path: Path, size: int, block_size: int) -> CowStore:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.ftruncate(fd, size)
        return cls(path, fd, size, block_size)

    def preserve(self, image_fd: int, offset: int, length: int) -> None:
        """Copy the not-yet-preserved blocks touched by [offset, offset+length) aside."""
        bs = self._block_size
        block, last = offset // bs, (offset + length - 1) // bs
        while block <= last:
            if self._is_preserved(block):
                block += 1
                continue
            run_end = block
            while run_end + 1 <= last and not self._is_preserved(run_end + 1):
                run_end += 1
            self._copy_run(image_fd, block, run_end)
            set_bit_range(self._preserved, block, run_end)
            block = run_end + 1

    def read_raw(self, image_fd: int, offset: int, length: int) -> bytes:
        """Image bytes of [offset, offset+length) as they were when the view began."""
        bs = self._block_size
        parts: list[bytes] = []
        pos, end = offset, offset + length
        while pos < end:
            from_side = self._is_preserved(pos // bs)
            run_end = min((pos // bs + 1) * bs, end)
            while run_end < end and self._is_preserved(run_end // bs) == from_side:
                run_end = min(run_end + bs, end)
            parts.append(pread_exact(self._fd if from_side else image_fd, run_end - pos, pos))
            pos = run_end
        return b"".join(parts)

    def preserved_extents(self) -> list[Extent]:
        """The byte ranges of the preserved blocks, clipped to the disk size."""
        bs, extents = self._block_size, []
        for index, byte in enumerate(self._preserved):
            if not byte:
                continue
            for bit in range(8):
                if byte >> bit & 1:
                    start = (index * 8 + bit) * bs
                    if start < self._size:
                        extents.append((start, min(bs, self._size - start)))
        return merge_extents(extents)

    def remove(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.path.unlink(missing_ok=True)

    def _is_preserved(self, block: int) -> bool:
        return bool(self._preserved[block >> 3] >> (block & 7) & 1)

    def _copy_run(self, image_fd: int, first: int, last: int) -> None:
        bs = self._block_size
        start = first * bs
        old = memoryview(pread_exact(image_fd, min((last + 1) * bs, self._size) - start, start))
        for pos in range(0, len(old), bs):
            block = old[pos : pos + bs]
            if not is_zero(block):
                pwrite_all(self._fd, block, start + pos)


class LocalBackupView(AbortsOnExit):
    """A consistent, read-only image of a volume at the moment ``begin_backup`` returned."""

    def __init__(self, volume: LocalVolume, old_map: ChangeMap, cow: CowStore) -> None:
        self._volume = volume
        self.old_map = old_map
        self.cow = cow
        self.closed = False

    @property
    def volume_id(self) -> str:
        return self._volume.volume_id

    @property
    def size(self) -> int:
        return self._volume.size

    @property
    def block_size(self) -> int:
        """CBT granularity: changed extents are multiples of this (except at the disk's end)."""
        return self.old_map.block_size

    @property
    def encrypted(self) -> bool:
        return self._volume.encrypted

    def changed_extents(self) -> list[Extent]:
        """What changed between the previous backup's view and this one, as merged runs."""
        self._volume.check_view(self)
        return self.old_map.extents()

    def allocated_extents(self) -> list[Extent]:
        """A superset of the extents holding data in this view; everything else is zeros.

        The image's allocated extents now, plus the blocks preserved since the view began: a
        block that held data then and was zeroed (its space freed) since reads from the side
        file, so it must not be taken for a hole."""
        self._volume.check_view(self)
        with self._volume.lock:
            preserved = self.cow.preserved_extents()
        return merge_extents(self._volume.allocated_extents() + preserved)

    def read_at(self, offset: int, length: int) -> bytes:
        """Plaintext of [offset, offset+length) as of the view; any range within the disk."""
        return self._volume.read_view(self, offset, length)

    def commit(self) -> None:
        """The backup is stored: forget the changes it covered."""
        self._volume.end_view(self, keep_changes=False)

    def abort(self) -> None:
        """The backup failed: give its changes back to the volume's map."""
        self._volume.end_view(self, keep_changes=True)
