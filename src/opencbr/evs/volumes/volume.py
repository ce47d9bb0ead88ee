"""One open local volume: its image descriptor, lock, change map, cipher and backup view.

Data path rules
    * Writes: ``offset`` and the byte count must be multiples of 512 (the guest sector) and
      ``offset + length`` must not pass the disk size. The range is checked before anything is
      written; a bad range raises ``RangeError`` and changes nothing. Data may be one bytes-like
      object or an iterable of chunks of any sizes (a request body); a stream must announce its
      length. The data is written in pieces of at most ``CHUNK_SIZE`` bytes, each under the
      volume lock: each piece is atomic with respect to other callers, the whole write is not
      (as on a real disk). A stream that ends early or runs long raises
      ``StreamLengthMismatch``; pieces already written stay written and are in the change map.
    * Reads: any ``offset >= 0`` and ``length >= 0`` with ``offset + length <= size``; no
      alignment needed. ``read`` returns an iterator of chunks of at most ``CHUNK_SIZE`` bytes,
      each read under the lock; holes read as zeros.
    * Every write marks its CBT blocks durably *before* the data is written (changemap.py).
    * Data reaches the page cache when ``write`` returns and stable storage after ``flush``, the
      usual block-device contract.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .backup import CowStore, LocalBackupView
from .changemap import ChangeMap, ChangeMapUnreadable
from .crypto import SECTOR_SIZE, DiskKey, SectorCipher
from .errors import BackupInProgress, RangeError, StreamLengthMismatch, ViewClosed, VolumeNotFound
from .sparse import Extent, data_extents, pread_exact, punch_hole, pwrite_all

__all__ = [
    "CHUNK_SIZE",
    "WRITE_ALIGNMENT",
    "ZERO_PIECE",
    "Buffer",
    "LocalVolume",
    "VolumePaths",
    "WriteData",
]

CHUNK_SIZE = 1 << 20
"""Bytes per piece of the data path (and per chunk yielded by ``read``)."""
WRITE_ALIGNMENT = 512
"""Writes must start and end on a multiple of this (the guest's logical sector)."""
ZERO_PIECE = 64 << 20
"""Bytes zeroed per hold of the volume lock (see ``write_zeroes``)."""
_ZEROS = bytes(CHUNK_SIZE)

Buffer = bytes | bytearray | memoryview
WriteData = Buffer | Iterable[Buffer]


@dataclass(frozen=True)
class VolumePaths:
    """The files of one volume inside the driver's directory."""

    image: Path
    meta: Path
    cbt: Path
    cbt_view: Path
    cow: Path
    fill: Path
    fill_lock: Path

    @classmethod
    def of(cls, root: Path, volume_id: str) -> VolumePaths:
        base = root / volume_id
        return cls(
            image=base.with_suffix(".img"),
            meta=base.with_suffix(".json"),
            cbt=base.with_suffix(".cbt"),
            cbt_view=base.with_suffix(".cbt.view"),
            cow=base.with_suffix(".cow"),
            fill=base.with_suffix(".fill"),
            fill_lock=base.with_suffix(".fill.lock"),
        )

    def all(self) -> tuple[Path, ...]:
        return (self.meta, self.image, self.cbt, self.cbt_view, self.cow, self.fill, self.fill_lock)


class LocalVolume:
    """An open volume. All image I/O happens under ``lock``; see the module docstring."""

    def __init__(
        self,
        volume_id: str,
        paths: VolumePaths,
        size: int,
        block_size: int,
        key: DiskKey | None,
    ) -> None:
        self.volume_id = volume_id
        self.paths = paths
        self.size = size
        self.lock = threading.RLock()
        self._key = key
        self._cipher = None if key is None else SectorCipher(key)
        self._fd = os.open(paths.image, os.O_RDWR | os.O_CLOEXEC)
        try:
            self._map = recover_change_map(paths, size, block_size)
        except BaseException:
            os.close(self._fd)
            raise
        self._view: LocalBackupView | None = None
        self._closed = False

    @property
    def encrypted(self) -> bool:
        return self._cipher is not None

    @property
    def key(self) -> DiskKey | None:
        return self._key

    @property
    def cipher(self) -> SectorCipher | None:
        return self._cipher

    @property
    def fd(self) -> int:
        """The image descriptor; use only while holding ``lock`` after ``ensure_open``."""
        return self._fd

    @property
    def change_map(self) -> ChangeMap:
        return self._map

    @property
    def view(self) -> LocalBackupView | None:
        return self._view

    # ------------------------------------------------------------------ data path
    def write(self, offset: int, data: WriteData, length: int | None = None) -> int:
        """Write `data` at `offset`; returns the byte count. Rules in the module docstring."""
        if isinstance(data, bytes | bytearray | memoryview):
            view = memoryview(data).cast("B")
            if length is not None and length != view.nbytes:
                raise StreamLengthMismatch(
                    volume_id=self.volume_id,
                    reason=f"length {length} given for {view.nbytes} bytes of data",
                )
            length = view.nbytes
            pieces: Iterable[Buffer] = (
                view[i : i + CHUNK_SIZE] for i in range(0, length, CHUNK_SIZE)
            )
        elif length is None:
            raise RangeError(volume_id=self.volume_id, reason="a write stream needs its length")
        else:
            pieces = aligned_pieces(self.volume_id, data, length)
        self._check_write_range(offset, length)
        position = offset
        for piece in pieces:
            with self.lock:
                self.ensure_open()
                self.write_locked(position, piece)
            position += len(piece)
        return length

    def write_zeroes(self, offset: int, length: int) -> int:
        """Make [offset, offset+length) read as zeros (range rules as for `write`); returns the
        byte count. The space is freed where the file system can (a hole reads as zeros,
        encrypted or not) instead of zeros being written: restoring a backup's holes onto a
        used disk then costs a call per run of holes, not a write and an encryption per byte.
        Pieces of at most ``ZERO_PIECE`` bytes, each under the volume lock."""
        self._check_write_range(offset, length)
        position, end = offset, offset + length
        while position < end:
            piece = min(end - position, ZERO_PIECE)
            with self.lock:
                self.ensure_open()
                self._zero_locked(position, piece)
            position += piece
        return length

    def read(self, offset: int, length: int) -> Iterator[bytes]:
        """Plaintext of [offset, offset+length) as chunks of at most ``CHUNK_SIZE`` bytes."""
        self._check_read_range(offset, length)
        return self._read_pieces(offset, length)

    def flush(self) -> None:
        """Make every acknowledged write durable."""
        with self.lock:
            self.ensure_open()
            os.fdatasync(self._fd)

    def write_locked(self, offset: int, data: Buffer) -> None:
        """Mark, preserve for an open view, then write one aligned piece. Caller holds lock."""
        length = len(data)
        if length == 0:
            return
        self._claim_locked(offset, length)
        self._put_locked(offset, data)

    def _claim_locked(self, offset: int, length: int) -> None:
        """Before a range changes: mark it in the change map, keep its old data for an open view."""
        self._map.mark(offset, length)
        if self._view is not None:
            self._view.cow.preserve(self._fd, offset, length)

    def _put_locked(self, offset: int, data: Buffer) -> None:
        if self._cipher is None:
            pwrite_all(self._fd, data, offset)
        else:
            self._write_encrypted(offset, data)

    def _zero_locked(self, offset: int, length: int) -> None:
        """Zero one aligned piece: whole units become a hole, partial ones are written."""
        self._claim_locked(offset, length)
        end = offset + length
        start = -(-offset // SECTOR_SIZE) * SECTOR_SIZE  # the whole units inside the range
        stop = max(start, end - end % SECTOR_SIZE)
        if start < stop and punch_hole(self._fd, start, stop - start):
            edges = [(offset, start - offset), (stop, end - stop)]
        else:
            edges = [(offset, length)]
        for at, size in edges:
            for piece in range(at, at + size, CHUNK_SIZE):
                self._put_locked(piece, _ZEROS[: min(CHUNK_SIZE, at + size - piece)])

    def read_plain_locked(self, offset: int, length: int) -> bytes:
        """Plaintext of a unit-aligned range of the image. Caller holds lock."""
        raw = pread_exact(self._fd, length, offset)
        return raw if self._cipher is None else bytes(self._cipher.decrypt(raw, offset))

    def _write_encrypted(self, offset: int, data: Buffer) -> None:
        assert self._cipher is not None
        end = offset + len(data)
        start = offset - offset % SECTOR_SIZE
        stop = -(-end // SECTOR_SIZE) * SECTOR_SIZE
        plain: Buffer = data
        if (start, stop) != (offset, end):  # read-modify-write of partial units
            merged = bytearray(stop - start)
            if start != offset:
                merged[:SECTOR_SIZE] = self.read_plain_locked(start, SECTOR_SIZE)
            if stop != end and (stop - SECTOR_SIZE != start or start == offset):
                merged[-SECTOR_SIZE:] = self.read_plain_locked(stop - SECTOR_SIZE, SECTOR_SIZE)
            merged[offset - start : end - start] = data
            plain = merged
        pwrite_all(self._fd, self._cipher.encrypt(plain, start), start)

    def _read_pieces(self, offset: int, length: int) -> Iterator[bytes]:
        position, end = offset, offset + length
        while position < end:
            piece_end = min(end, (position // CHUNK_SIZE + 1) * CHUNK_SIZE)
            yield self._read_range(position, piece_end - position, None)
            position = piece_end

    def _read_range(self, offset: int, length: int, view: LocalBackupView | None) -> bytes:
        unit = SECTOR_SIZE if self._cipher is not None else 1
        start = offset - offset % unit
        stop = -(-(offset + length) // unit) * unit
        with self.lock:
            self.ensure_open()
            if view is None:
                raw = pread_exact(self._fd, stop - start, start)
            else:
                self.check_view(view)
                raw = view.cow.read_raw(self._fd, start, stop - start)
        if self._cipher is None:
            return raw
        plain = self._cipher.decrypt(raw, start)
        return bytes(memoryview(plain)[offset - start : offset - start + length])

    # ------------------------------------------------------------------ queries
    def changed_extents(self) -> list[Extent]:
        """Blocks written since the last committed backup view (or since creation)."""
        with self.lock:
            self.ensure_open()
            return self._map.extents()

    def allocated_extents(self) -> list[Extent]:
        """Extents of the image that hold data; everything else reads as zeros."""
        with self.lock:
            self.ensure_open()
            return data_extents(self._fd, 0, self.size)

    # ------------------------------------------------------------------ backup views
    def begin_backup(self) -> LocalBackupView:
        """Open the point-in-time view (mechanism in backup.py)."""
        with self.lock:
            self.ensure_open()
            if self._view is not None:
                raise BackupInProgress(volume_id=self.volume_id, reason="one view at a time")
            old_map = self._map
            old_map.move_to(self.paths.cbt_view)
            self._map = ChangeMap.create(self.paths.cbt, self.size, old_map.block_size)
            cow = CowStore.create(self.paths.cow, self.size, old_map.block_size)
            self._view = LocalBackupView(self, old_map, cow)
            return self._view

    def read_view(self, view: LocalBackupView, offset: int, length: int) -> bytes:
        self._check_read_range(offset, length)
        pieces = []
        position, end = offset, offset + length
        while position < end:
            piece_end = min(end, (position // CHUNK_SIZE + 1) * CHUNK_SIZE)
            pieces.append(self._read_range(position, piece_end - position, view))
            position = piece_end
        return b"".join(pieces)

    def check_view(self, view: LocalBackupView) -> None:
        if view.closed or self._view is not view:
            raise ViewClosed(volume_id=self.volume_id)

    def end_view(self, view: LocalBackupView, *, keep_changes: bool) -> None:
        with self.lock:
            self.check_view(view)
            if keep_changes:
                self._map.merge(view.old_map)
            view.old_map.remove()
            view.cow.remove()
            view.closed = True
            self._view = None

    # ------------------------------------------------------------------ growth
    def grow(self, size: int) -> None:
        """Grow the disk to `size` bytes (caller checked alignment and holds ``lock``).

        The change map grows first, then the image (the new range is a hole: zeros, also when
        encrypted); the caller records the new size last. Refused while a backup view is open:
        the view's copy-on-write store has the old geometry."""
        self.ensure_open()
        if self._view is not None:
            raise BackupInProgress(volume_id=self.volume_id, reason="cannot grow now")
        self._map = self._map.grown(size)
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        self.size = size

    # ------------------------------------------------------------------ lifecycle
    def ensure_open(self) -> None:
        if self._closed:
            raise VolumeNotFound(volume_id=self.volume_id)

    def close(self) -> None:
        """Release the files. An open view is aborted first (its changes stay in the map)."""
        with self.lock:
            if self._closed:
                return
            if self._view is not None:
                self.end_view(self._view, keep_changes=True)
            self._map.close()
            os.close(self._fd)
            self._closed = True

    def _check_write_range(self, offset: int, length: int) -> None:
        reason = None
        if offset < 0 or length < 0:
            reason = f"offset {offset} and length {length} must not be negative"
        elif offset % WRITE_ALIGNMENT or length % WRITE_ALIGNMENT:
            reason = f"offset {offset} and length {length} must be multiples of 512"
        elif offset + length > self.size:
            reason = f"write of {length} bytes at {offset} passes the disk size {self.size}"
        if reason is not None:
            raise RangeError(volume_id=self.volume_id, reason=reason)

    def _check_read_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise RangeError(
                volume_id=self.volume_id,
                reason=f"read of {length} bytes at {offset} is outside the disk size {self.size}",
            )


def aligned_pieces(volume_id: str, chunks: Iterable[Buffer], length: int) -> Iterator[Buffer]:
    """Re-cut a stream of arbitrary chunks into pieces of ``CHUNK_SIZE`` (the last shorter)."""
    pending = bytearray()
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > length:
            raise StreamLengthMismatch(
                volume_id=volume_id, reason=f"stream is longer than the announced {length} bytes"
            )
        if not pending and len(chunk) == CHUNK_SIZE:
            yield chunk
            continue
        pending += chunk
        while len(pending) >= CHUNK_SIZE:
            yield bytes(pending[:CHUNK_SIZE])
            del pending[:CHUNK_SIZE]
    if received != length:
        raise StreamLengthMismatch(
            volume_id=volume_id, reason=f"stream ended after {received} of {length} bytes"
        )
    if pending:
        yield bytes(pending)


def recover_change_map(paths: VolumePaths, size: int, block_size: int) -> ChangeMap:
    """Load the current map, folding back a view's map left by a stopped process.

    A missing or damaged map with no view map beside it means the history is unknown: the new
    map has every block set, so the next backup reads the whole disk.
    """
    view_left = paths.cbt_view.exists()
    current = _load_matching(paths.cbt, size, block_size)
    if current is None:
        current = ChangeMap.create(paths.cbt, size, block_size, all_set=not view_left)
    if view_left:
        old = _load_matching(paths.cbt_view, size, block_size)
        if old is None:
            current.remove()
            current = ChangeMap.create(paths.cbt, size, block_size, all_set=True)
        else:
            current.merge(old)
            old.close()
        paths.cbt_view.unlink(missing_ok=True)
    paths.cow.unlink(missing_ok=True)
    return current


def _load_matching(path: Path, size: int, block_size: int) -> ChangeMap | None:
    try:
        loaded = ChangeMap.load(path)
    except ChangeMapUnreadable:
        return None
    if (loaded.size, loaded.block_size) != (size, block_size):
        loaded.close()
        return None
    return loaded
