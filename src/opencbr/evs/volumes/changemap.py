"""The persisted changed-block map of a volume.

File format (little-endian), ``<volume>.cbt``::

    offset 0   8 bytes  magic b"OCBRCBT1"
    offset 8   u32      block size in bytes (CBT_BLOCK_SIZE when created)
    offset 12  u64      disk size in bytes
    offset 20  12 bytes zero
    offset 32  bitmap   ceil(size / block size) bits, LSB first: bit b of byte i is block 8*i+b

Block b covers bytes [b * block_size, (b + 1) * block_size) of the disk, clipped to its size.

Durability rule: ``mark`` writes the bitmap bytes it changed and ``fdatasync``s the file before
it returns, and callers mark before they write data. So a write that reached the image is
always in the map after a crash; a crash between marking and writing only costs an extra block
in the next backup. Marking blocks that are already set does no I/O.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterable
from pathlib import Path

from .sparse import Extent, fsync_directory

__all__ = ["CBT_BLOCK_SIZE", "ChangeMap", "ChangeMapUnreadable", "set_bit_range"]

CBT_BLOCK_SIZE = 64 * 1024
"""Granularity of changed-block tracking, in bytes."""

_MAGIC = b"OCBRCBT1"
_HEADER = struct.Struct("<8sIQ12x")
_HEADER_SIZE = _HEADER.size  # 32
_NONZERO_RUN = re.compile(rb"[^\x00]+")


class ChangeMapUnreadable(Exception):
    """The map file is missing or damaged; the owner decides how to recover."""


class ChangeMap:
    """A bitmap of changed blocks, kept in memory and mirrored durably in one file."""

    def __init__(self, path: Path, fd: int, block_size: int, size: int, bits: bytearray) -> None:
        self.path = path
        self.block_size = block_size
        self.size = size
        self._fd = fd
        self._bits = bits

    @classmethod
    def create(
        cls, path: Path, size: int, block_size: int = CBT_BLOCK_SIZE, *, all_set: bool = False
    ) -> ChangeMap:
        """A new map file (replacing any old one), empty or with every block set."""
        count = -(-size // block_size)
        bits = bytearray(b"\xff" if all_set else b"\x00") * (-(-count // 8))
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.pwrite(fd, _HEADER.pack(_MAGIC, block_size, size) + bits, 0)
            os.fsync(fd)
            os.replace(tmp, path)
            fsync_directory(path.parent)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, block_size, size, bits)

    @classmethod
    def load(cls, path: Path) -> ChangeMap:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise ChangeMapUnreadable(f"{path.name} is missing") from exc
        try:
            raw = _read_all(fd)
            magic, block_size, size = _HEADER.unpack_from(raw)
            count = -(-size // block_size) if block_size else -1
            if magic != _MAGIC or count < 0 or len(raw) != _HEADER_SIZE + -(-count // 8):
                raise ChangeMapUnreadable(f"{path.name} has a bad header or length")
        except (struct.error, ChangeMapUnreadable) as exc:
            os.close(fd)
            raise ChangeMapUnreadable(str(exc)) from exc
        return cls(path, fd, block_size, size, bytearray(raw[_HEADER_SIZE:]))

    def mark(self, offset: int, length: int) -> None:
        """Set the blocks that [offset, offset+length) touches; durable before returning."""
        self.mark_many([(offset, length)])

    def mark_many(self, extents: Iterable[Extent], *, durable: bool = True) -> None:
        """Set the blocks of every extent, with at most one write and one sync (none when not
        `durable`: for a caller to whom a mark lost in a crash costs only repeated work)."""
        low, high = len(self._bits), -1
        for offset, length in extents:
            if length <= 0:
                continue
            first, last = offset // self.block_size, (offset + length - 1) // self.block_size
            changed = set_bit_range(self._bits, first, last)
            if changed is not None:
                low, high = min(low, changed[0]), max(high, changed[1])
        if high >= 0:
            self._persist(low, high + 1, sync=durable)

    def merge(self, other: ChangeMap) -> None:
        """OR `other` (same geometry) into this map, durably."""
        if (other.block_size, other.size) != (self.block_size, self.size):
            raise ValueError("change maps of different geometry cannot be merged")
        merged = int.from_bytes(self._bits, "little") | int.from_bytes(other._bits, "little")
        self._bits[:] = merged.to_bytes(len(self._bits), "little")
        self._persist(0, len(self._bits))

    def is_set(self, block: int) -> bool:
        return bool(self._bits[block >> 3] >> (block & 7) & 1)

    def extents(self) -> list[Extent]:
        """The changed byte ranges as merged (offset, length) runs, clipped to the disk size."""
        runs: list[list[int]] = []  # [first block, block count]
        for match in _NONZERO_RUN.finditer(self._bits):
            for index in range(match.start(), match.end()):
                _add_byte_runs(runs, index, self._bits[index])
        bs = self.block_size
        return [
            (first * bs, min(count * bs, self.size - first * bs))
            for first, count in runs
            if first * bs < self.size  # a map created all-set has padding bits past the end
        ]

    def grown(self, size: int) -> ChangeMap:
        """This map for a disk grown to `size` bytes, replacing its file (atomically, durably;
        this object is closed). Blocks past the old end start unmarked: they read as zeros,
        and a backup reads whatever lies past its parent's end anyway."""
        if size < self.size:
            raise ValueError("a change map does not shrink")
        count = -(-size // self.block_size)
        bits = self._bits + bytearray(-(-count // 8) - len(self._bits))
        tmp = self.path.with_name(self.path.name + ".grow")
        grown = ChangeMap.create(tmp, size, self.block_size)
        grown._bits[:] = bits
        grown._persist(0, len(bits))
        grown.move_to(self.path)
        self.close()
        return grown

    def move_to(self, path: Path) -> None:
        """Rename the map file (atomically, durably); the open descriptor stays valid."""
        os.replace(self.path, path)
        fsync_directory(path.parent)
        self.path = path

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def _persist(self, start: int, end: int, *, sync: bool = True) -> None:
        os.pwrite(self._fd, self._bits[start:end], _HEADER_SIZE + start)
        if sync:
            os.fdatasync(self._fd)


def set_bit_range(bits: bytearray, first: int, last: int) -> tuple[int, int] | None:
    """Set bits first..last (inclusive); the changed byte range, or None if all were set."""
    low, high = -1, -1
    block = first
    while block <= last:
        index = block >> 3
        if block & 7 == 0 and last - block >= 7:
            count = (last - block + 1) >> 3
            if bits[index : index + count] != b"\xff" * count:
                bits[index : index + count] = b"\xff" * count
                low, high = (index if low < 0 else low), index + count - 1
            block += count * 8
            continue
        mask = 1 << (block & 7)
        if not bits[index] & mask:
            bits[index] |= mask
            low, high = (index if low < 0 else low), index
        block += 1
    return None if low < 0 else (low, high)


def _add_byte_runs(runs: list[list[int]], index: int, byte: int) -> None:
    """Append the set bits of bitmap byte `index` to `runs`, joining adjacent blocks."""
    base = index * 8
    for bit in range(8):
        if byte >> bit & 1:
            block = base + bit
            if runs and runs[-1][0] + runs[-1][1] == block:
                runs[-1][1] += 1
            else:
                runs.append([block, 1])


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0)
    return data
