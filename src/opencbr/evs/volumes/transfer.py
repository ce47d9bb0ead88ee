"""Bulk copies between a volume and a plain raw image file, sparse-aware.

* Only the source's data extents (SEEK_DATA/SEEK_HOLE) are read; holes stay holes in the target.
* Plain volumes copy with ``copy_file_range`` (in-kernel; a reflink where the file system can).
* Encrypted volumes go through user space in ``TRANSFER_PIECE`` reads; on import, all-zero
  4096-byte units are not written (they stay holes, which read as zeros), on export all-zero
  plaintext units are not written to the target. Three threads overlap the work: one reads
  ahead, the caller's encrypts (or decrypts), one issues the ``pwrite``s (reads and writes
  release the GIL).
* Every copy starts write-back as it goes (`EarlyWriteBack`), so the disk writes beside the
  copy instead of all in the final fsync: on a disk-bound host that is what lets an encrypted
  import keep up with a plain one.
* Both hold the volume lock for the whole copy: an import replaces the disk and an export is a
  consistent copy. Use a backup view to copy a disk that must stay writable meanwhile.
* `progress(done, total)` is called after each piece with bytes of data extents handled so far.
* The target is fsync'd before returning.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar, cast

from opencbr.chunkstore.writeback import EarlyWriteBack, early_write_back

from .crypto import SECTOR_SIZE, SectorCipher, is_zero
from .errors import BackupInProgress, RangeError
from .sparse import Extent, copy_range, data_extents, merge_extents, pread_exact, pwrite_all
from .volume import Buffer, LocalVolume

__all__ = [
    "TRANSFER_PIECE",
    "Progress",
    "export_image",
    "fill_holes",
    "import_image",
]

_T = TypeVar("_T")

Progress = Callable[[int, int], None]
"""Called as progress(done_bytes, total_bytes)."""

TRANSFER_PIECE = 4 << 20
"""Bytes per read/encrypt/write step of encrypted transfers."""


class _Meter:
    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.done, self._progress = total, 0, progress

    def add(self, count: int) -> None:
        self.done += count
        if self._progress is not None:
            self._progress(self.done, self.total)


class _BackgroundWriter:
    """Writes (data, offset) pairs to one descriptor from a thread, a few pieces behind."""

    def __init__(self, fd: int, depth: int = 4) -> None:
        self._fd = fd
        self._queue: queue.Queue[tuple[Buffer, int] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._write_back = EarlyWriteBack(fd)
        self._thread = threading.Thread(target=self._run, name="volume-writer", daemon=True)
        self._thread.start()

    def write(self, data: Buffer, offset: int) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((data, offset))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    pwrite_all(self._fd, item[0], item[1])
                except BaseException as exc:  # handed to the caller's thread
                    self._error = exc
                self._write_back.wrote(len(item[0]))

    def __enter__(self) -> _BackgroundWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._queue.put(None)
        self._thread.join()
        try:
            self._write_back.close()
        except OSError as error:
            self._error = self._error or error
        if self._error is not None and exc is None:
            raise self._error


def _kernel_copy(src: int, dst: int, extents: list[Extent], meter: _Meter) -> None:
    """Copy the extents at their offsets in the kernel, writing back as the copy goes."""
    with early_write_back(dst) as write_back:

        def copied(count: int) -> None:
            meter.add(count)
            write_back.wrote(count)

        for offset, length in extents:
            copy_range(src, dst, offset, length, copied)


def import_image(volume: LocalVolume, source: Path, progress: Progress | None = None) -> int:
    """Replace the volume's contents with the raw image `source` (at most the disk size).

    Bytes past the end of a shorter source read as zeros. Every block that held data before or
    holds data now is marked changed. Returns the bytes of source data extents copied.
    """
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        source_size = os.fstat(src).st_size
        if source_size > volume.size:
            raise RangeError(
                volume_id=volume.volume_id,
                reason=f"image of {source_size} bytes is larger than the disk ({volume.size})",
            )
        extents = data_extents(src, 0, source_size)
        with volume.lock:
            volume.ensure_open()
            if volume.view is not None:
                raise BackupInProgress(volume_id=volume.volume_id, reason="cannot import now")
            old = data_extents(volume.fd, 0, volume.size)
            volume.change_map.mark_many(merge_extents(old + extents))
            os.ftruncate(volume.fd, 0)  # drop every old block: the disk is all holes again
            os.ftruncate(volume.fd, volume.size)
            meter = _Meter(sum(length for _, length in extents), progress)
            _copy_in(src, volume, extents, meter)
            os.fsync(volume.fd)
            return meter.done
    finally:
        os.close(src)


def export_image(volume: LocalVolume, target: Path, progress: Progress | None = None) -> int:
    """Write the volume's plaintext to the raw image `target` (created or replaced, sparse)."""
    dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with volume.lock:
            volume.ensure_open()
            os.ftruncate(dst, volume.size)
            extents = data_extents(volume.fd, 0, volume.size)
            meter = _Meter(sum(length for _, length in extents), progress)
            cipher = volume.cipher
            if cipher is None:
                _kernel_copy(volume.fd, dst, extents, meter)
            else:
                with _BackgroundWriter(dst) as writer:
                    for offset, length in extents:
                        _decrypt_extent(volume.fd, writer, offset, length, cipher, meter)
        os.fsync(dst)
        return meter.done
    finally:
        os.close(dst)


def fill_holes(volume: LocalVolume) -> int:
    """Write encrypted zeros into every never-written unit of an encrypted volume.

    Afterwards a plain dm-crypt mapping reads zeros wherever this layer does (crypto.py). The
    plaintext does not change, so no block is marked changed. Returns the bytes written.
    """
    cipher = volume.cipher
    if cipher is None:
        return 0
    written = 0
    with volume.lock:
        volume.ensure_open()
        for start in range(0, volume.size, TRANSFER_PIECE):
            raw = memoryview(
                pread_exact(volume.fd, min(TRANSFER_PIECE, volume.size - start), start)
            )
            for run_start, run_end in _unit_runs(raw, want_zero=True):
                zeros = bytes(run_end - run_start)
                pwrite_all(volume.fd, cipher.encrypt(zeros, start + run_start), start + run_start)
                written += run_end - run_start
        os.fsync(volume.fd)
    return written


def _copy_in(src: int, volume: LocalVolume, extents: list[Extent], meter: _Meter) -> None:
    cipher = volume.cipher
    if cipher is None:
        _kernel_copy(src, volume.fd, extents, meter)
        return
    with _BackgroundWriter(volume.fd) as writer:
        _encrypt_extents(src, writer, extents, cipher, meter.add)


def _encrypt_extents(
    src: int,
    writer: _BackgroundWriter,
    extents: list[Extent],
    cipher: SectorCipher,
    on_done: Callable[[int], None],
) -> None:
    for piece, plain, done in _read_ahead(_source_pieces(src, extents)):
        for run_start, run_end in _unit_runs(plain, want_zero=False):
            encrypted = cipher.encrypt(plain[run_start:run_end], piece + run_start)
            writer.write(encrypted, piece + run_start)
        on_done(done)


def _source_pieces(src: int, extents: list[Extent]) -> Iterator[tuple[int, memoryview, int]]:
    """(offset, unit-padded data, source bytes it covers) for every piece of the extents."""
    for offset, length in extents:
        start = offset - offset % SECTOR_SIZE  # file-system extents are unit-aligned anyway
        end = offset + length
        for piece in range(start, end, TRANSFER_PIECE):
            size = min(TRANSFER_PIECE, end - piece)
            padded = -(-size // SECTOR_SIZE) * SECTOR_SIZE  # a short tail reads as zeros
            yield piece, memoryview(pread_exact(src, padded, piece)), size


def _read_ahead(pieces: Iterator[_T], depth: int = 2) -> Iterator[_T]:
    """The items of `pieces`, produced on a thread up to `depth` ahead (reads drop the GIL)."""
    ready: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in pieces:
                if stop.is_set():
                    return
                ready.put((True, item))
        except BaseException as exc:  # handed to the consumer
            ready.put((False, exc))
            return
        ready.put((False, None))

    thread = threading.Thread(target=produce, name="volume-reader", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = ready.get()
            if not ok:
                if value is not None:
                    raise cast(BaseException, value)
                return
            yield cast(_T, value)
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.05)
        thread.join()


def _decrypt_extent(
    src: int,
    writer: _BackgroundWriter,
    offset: int,
    length: int,
    cipher: SectorCipher,
    meter: _Meter,
) -> None:
    start = offset - offset % SECTOR_SIZE
    end = -(-(offset + length) // SECTOR_SIZE) * SECTOR_SIZE
    for piece in range(start, end, TRANSFER_PIECE):
        size = min(TRANSFER_PIECE, end - piece)
        plain = memoryview(cipher.decrypt(pread_exact(src, size, piece), piece))
        for run_start, run_end in _unit_runs(plain, want_zero=False):
            writer.write(plain[run_start:run_end], piece + run_start)
        meter.add(size)


def _unit_runs(data: memoryview, *, want_zero: bool) -> list[tuple[int, int]]:
    """[start, end) runs of 4096-byte units of `data` that are (or are not) all zeros."""
    runs: list[tuple[int, int]] = []
    for pos in range(0, len(data), SECTOR_SIZE):
        if is_zero(data[pos : pos + SECTOR_SIZE]) != want_zero:
            continue
        if runs and runs[-1][1] == pos:
            runs[-1] = (runs[-1][0], pos + SECTOR_SIZE)
        else:
            runs.append((pos, pos + SECTOR_SIZE))
    return runs
