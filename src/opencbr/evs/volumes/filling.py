"""A volume usable while it is being filled from a block source (instant restore).

A new disk made from a backup is usable at once: reads of blocks not filled yet are served
from the source (the backup, read and verified by whoever hands the source in), writes land on
the volume, and a background copy fills the remaining blocks without ever overwriting a block
that a write reached first.

Mechanism
    The fill map ``<id>.fill`` (the change-map file format, at the source's block size) has a
    bit per block that the volume holds: filled by the copy or written by a client. Under the
    filling lock:
    * a read takes each filled block from the volume and every other block from the source;
    * a write of a block not filled yet first completes it from the source when the write
      covers it partly, writes it, then sets its bit durably (write, then mark: a crash in
      between loses only an unacknowledged write, never a block the copy would overwrite);
    * the copy reads a block from the source outside the lock, then under the lock writes it
      only if its bit is still clear, and sets the bit.
    So no block is ever written by the copy after a client wrote it, and every read sees either
    the source's block or what was written over it.

    Source reads (a backup's chunks, fetched, decrypted and verified) are slow and never made
    under the lock, so that one request waiting for the store holds up no other: a read notes
    under the lock which of its blocks are not filled and reads them from the source after;
    a write reads the source blocks it completes first, and uses them only if those blocks
    are still not filled under the lock (bits are only ever set). A read that races with a
    write of the same block answers either the source's block or the written one, as NBD
    allows for requests in flight together.

One process fills a volume at a time: the filling holds an exclusive ``flock`` on
``<id>.fill.lock`` until it is closed, and a second filling of the same volume (another
process) is refused with `FillingBusy`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from opencbr.core.errors import Conflict

from .changemap import ChangeMap, ChangeMapUnreadable
from .errors import RangeError, VolumeError
from .volume import WRITE_ALIGNMENT, Buffer

__all__ = ["BlockSource", "FilledVolume", "FillingBusy", "FillingStopped", "FillingVolume"]


class BlockSource(Protocol):
    """Read-only plaintext of the disk a volume is being filled with (a backup)."""

    @property
    def size(self) -> int: ...

    @property
    def block_size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes:
        """Plaintext of a range (holes as zeros), verified; raises when it cannot be read."""
        ...


class FilledVolume(Protocol):
    """What a filling needs of the volume it fills (the EVS disk volume)."""

    @property
    def size(self) -> int: ...

    def write(self, offset: int, data: Buffer, length: int | None = None) -> int: ...

    def read(self, offset: int, length: int) -> Iterator[bytes]: ...

    def write_zeroes(self, offset: int, length: int) -> int: ...

    def flush(self) -> None: ...


_ZERO_PIECE = 4 << 20  # bytes of zeros a filling writes at a time while it still fills
_ZEROS = bytes(_ZERO_PIECE)


class FillingBusy(VolumeError, Conflict):
    template = "Volume {volume_id} is being filled by another process."


class FillingStopped(VolumeError, Conflict):
    template = "Volume {volume_id} is no longer being filled in this process."


class FillingVolume:
    """A volume and its source while the copy runs; see the module docstring."""

    def __init__(self, root: Path, volume_id: str, volume: FilledVolume, source: BlockSource):
        if source.size > volume.size:
            raise RangeError(volume_id=volume_id, reason="the source is larger than the disk")
        self.volume_id = volume_id
        self.volume = volume
        self.source = source
        self.block_size = source.block_size
        self.lock = threading.Lock()
        self._complete = False
        self._stopped = False
        self._lock_path = root / f"{volume_id}.fill.lock"
        self._lock_fd = _exclusive(self._lock_path, volume_id)
        path = root / f"{volume_id}.fill"
        try:
            self._map = _load_or_create(path, volume.size, source.block_size)
        except BaseException:
            os.close(self._lock_fd)
            raise

    @property
    def size(self) -> int:
        return self.volume.size

    # ------------------------------------------------------------------ client data path
    def read(self, offset: int, length: int) -> bytes:
        with self.lock:
            self._check()
            if self._complete:
                return b"".join(self.volume.read(offset, length))
            blocks = list(self._blocks(offset, length))
            held = [
                b"".join(self.volume.read(start, count)) if self._filled(start) else None
                for start, count in blocks
            ]
        parts = [
            data if data is not None else self._source_block(start, count)
            for data, (start, count) in zip(held, blocks, strict=True)
        ]
        skip = offset - blocks[0][0] if blocks else 0
        return b"".join(parts)[skip : skip + length]

    def write(self, offset: int, data: Buffer) -> None:
        view = memoryview(data).cast("B")
        end_of_write = offset + len(view)
        blocks = list(self._blocks(offset, len(view), aligned=True))
        partial = [
            (start, count)
            for start, count in blocks
            if (max(start, offset), min(start + count, end_of_write)) != (start, start + count)
        ]
        completing = {  # read before the lock; a block filled meanwhile does not need it
            start: self._source_block(start, count)
            for start, count in partial
            if not self._complete and not self._filled(start)
        }
        with self.lock:
            self._check()
            if self._complete:
                self.volume.write(offset, view)
                return
            for start, count in blocks:
                begin, end = max(start, offset), min(start + count, end_of_write)
                piece = view[begin - offset : end - offset]
                if not self._filled(start) and (begin, end) != (start, start + count):
                    block = bytearray(completing[start])
                    block[begin - start : end - start] = piece
                    self.volume.write(start, block)
                else:
                    self.volume.write(begin, piece)
                self._map.mark(start, count)

    def write_zeroes(self, offset: int, length: int) -> None:
        """Zeros over a range; one NBD request may name gigabytes, so never one buffer."""
        with self.lock:
            self._check()
            complete = self._complete
        if complete:  # the volume's own zeroing: a hole, as on any disk
            self.volume.write_zeroes(offset, length)
            return
        end = offset + length
        for start in range(offset, end, _ZERO_PIECE):
            self.write(start, _ZEROS[: min(_ZERO_PIECE, end - start)])

    # ------------------------------------------------------------------ the copy
    def fill(self, blocks: Sequence[tuple[int, bytes | None]]) -> int:
        """Fill blocks from the copy, (offset, data) in disk order (data None: a hole, the
        volume already reads zeros there), skipping every block a client wrote first; the
        bytes written. Contiguous blocks are written together. The copy's marks are not made
        durable one by one: a mark lost in a crash only makes a retry copy the block again,
        and a client's write is always marked durably first."""
        written = 0
        with self.lock:
            self._check()
            if self._complete:
                return 0
            todo = [(o, d) for o, d in blocks if not self._filled(o)]
            for offset, parts in _runs(todo):
                self.volume.write(offset, parts[0] if len(parts) == 1 else b"".join(parts))
                written += sum(len(p) for p in parts)
            bs = self.block_size
            self._map.mark_many([(o, min(bs, self.size - o)) for o, _ in todo], durable=False)
        return written

    def flush(self) -> None:
        self.volume.flush()

    def finish(self) -> None:
        """The copy is complete: the volume no longer depends on the source, and from now on
        every call goes straight to the volume (connections opened during the copy go on)."""
        with self.lock:
            self._check()
            if self._complete:
                return
            self.volume.flush()
            self._complete = True
            self._map.remove()
            self._lock_path.unlink(missing_ok=True)
            os.close(self._lock_fd)

    def close(self) -> None:
        """Stop filling in this process (the copy resumes from the fill map later); every
        further call is refused, since the volume alone does not hold the disk yet."""
        with self.lock:
            if self._complete or self._stopped:
                return
            self._stopped = True
            self._map.close()
            os.close(self._lock_fd)

    def _check(self) -> None:
        if self._stopped:
            raise FillingStopped(volume_id=self.volume_id)

    # ------------------------------------------------------------------ internals
    def _filled(self, offset: int) -> bool:
        return self._map.is_set(offset // self.block_size)

    def _source_block(self, start: int, count: int) -> bytes:
        if start >= self.source.size:
            return bytes(count)
        data = self.source.read(start, min(count, self.source.size - start))
        return data + bytes(count - len(data))

    def _blocks(self, offset: int, length: int, aligned: bool = False) -> Iterator[tuple[int, int]]:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise RangeError(volume_id=self.volume_id, reason="range outside the disk")
        if aligned and (offset % WRITE_ALIGNMENT or length % WRITE_ALIGNMENT):
            raise RangeError(volume_id=self.volume_id, reason="writes are 512-byte aligned")
        bs = self.block_size
        start = offset - offset % bs
        while start < offset + length:
            yield start, min(bs, self.size - start)
            start += bs


def _exclusive(path: Path, volume_id: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise FillingBusy(volume_id=volume_id) from exc
        raise
    return fd


def _load_or_create(path: Path, size: int, block_size: int) -> ChangeMap:
    """The fill map left by an earlier filling (a copy resumed after a restart), else a new
    empty one."""
    try:
        found = ChangeMap.load(path)
    except ChangeMapUnreadable:
        return ChangeMap.create(path, size, block_size)
    if (found.size, found.block_size) == (size, block_size):
        return found
    found.close()
    return ChangeMap.create(path, size, block_size)


def _runs(blocks: Sequence[tuple[int, bytes | None]]) -> Iterator[tuple[int, list[bytes]]]:
    """Runs of contiguous data blocks (holes end a run)."""
    start, parts, end = -1, list[bytes](), -1
    for offset, data in blocks:
        if data is None:
            if parts:
                yield start, parts
            parts = []
            continue
        if offset != end and parts:
            yield start, parts
            parts = []
        if not parts:
            start = offset
        parts.append(data)
        end = offset + len(data)
    if parts:
        yield start, parts
