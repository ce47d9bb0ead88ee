"""Positional file I/O and sparse-file helpers (SEEK_DATA/SEEK_HOLE extents, fast copies).

All helpers use positional I/O only (``pread``/``pwrite``/``copy_file_range`` with explicit
offsets). ``lseek`` for SEEK_DATA moves the shared file position, which nothing here relies on.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable, Iterable

__all__ = [
    "COPY_PIECE",
    "Extent",
    "copy_range",
    "data_extents",
    "fsync_directory",
    "merge_extents",
    "pread_exact",
    "punch_hole",
    "pwrite_all",
]

Extent = tuple[int, int]
"""(offset, length) in bytes."""

COPY_PIECE = 64 << 20
"""Largest piece handed to one copy call, so progress is reported at least this often."""

_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}


def pread_exact(fd: int, length: int, offset: int) -> bytes:
    """Exactly `length` bytes at `offset`; bytes past the end of the file read as zeros."""
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            parts.append(bytes(length - got))
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of `data` at `offset` (``pwrite`` may write less than asked)."""
    view = memoryview(data)
    written = os.pwrite(fd, view, offset)
    while written < len(view):
        written += os.pwrite(fd, view[written:], offset + written)


# fallocate(2) with flags, which the os module does not offer (posix_fallocate only allocates).
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc = ctypes.CDLL(None, use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Free the file's space in [offset, offset+length), which then reads as zeros; the file
    keeps its size. False where the file system cannot (the caller writes zeros instead)."""
    if length <= 0:
        return True
    if _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EOPNOTSUPP, errno.ENOSYS):
        return False
    raise OSError(code, os.strerror(code))


def data_extents(fd: int, start: int, end: int) -> list[Extent]:
    """The allocated (non-hole) extents of the file within [start, end), in order.

    Extents are as fine as the file system reports them (its block size); a file system
    without SEEK_DATA support reports the whole range as data, which is always correct.
    """
    extents: list[Extent] = []
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after pos
                break
            raise
        if data >= end:
            break
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        extents.append((data, hole - data))
        pos = hole
    return extents


def merge_extents(extents: Iterable[Extent]) -> list[Extent]:
    """Sorted extents with overlapping and touching ones joined."""
    merged: list[Extent] = []
    for offset, length in sorted(e for e in extents if e[1] > 0):
        if merged and offset <= merged[-1][0] + merged[-1][1]:
            last_offset, last_length = merged[-1]
            merged[-1] = (last_offset, max(last_length, offset + length - last_offset))
        else:
            merged.append((offset, length))
    return merged


def copy_range(
    src: int,
    dst: int,
    offset: int,
    length: int,
    on_copied: Callable[[int], None] | None = None,
) -> None:
    """Copy [offset, offset+length) of `src` to the same offset of `dst`.

    Uses ``copy_file_range`` (in-kernel, reflinks where the file system can) and falls back to
    large ``pread``/``pwrite`` when the kernel refuses. `on_copied` gets each piece's size.
    """
    end = offset + length
    kernel_copy = True
    while offset < end:
        piece = min(COPY_PIECE, end - offset)
        if kernel_copy:
            try:
                done = os.copy_file_range(src, dst, piece, offset, offset)
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
                kernel_copy = False
                continue
            if done == 0:  # source shorter than expected: the rest reads as zeros
                break
        else:
            done = _copy_by_buffer(src, dst, offset, piece)
        offset += done
        if on_copied is not None:
            on_copied(done)


def _copy_by_buffer(src: int, dst: int, offset: int, length: int) -> int:
    buffer = os.pread(src, min(length, 8 << 20), offset)
    if not buffer:
        return length
    pwrite_all(dst, buffer, offset)
    return len(buffer)


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Make a rename or unlink inside the directory durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
