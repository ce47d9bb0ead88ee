"""A regular file's bytes read outside the appliance: the guest only says where the file lies
(its FIEMAP extents, as ``filefrag -v -b1`` prints them), the host checks every extent and
reads those bytes from the backup's own blocks (decrypted and verified as in a restore).

Through the appliance, every byte crosses the emulated guest and guestfsd's channel; read
here, a file streams as fast as the store reads.

The sandbox holds: the host parses no filesystem, only the guest's short report, and trusts
nothing in it. An extent that lies outside its filesystem, overlaps another, or carries a flag
other than the plain ones makes the report unusable (the caller then streams through the
guest); the worst a crafted report can do is name other bytes of the same backup, which its
reader may read anyway. Holes and unwritten extents read as zeros.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = [
    "FIEMAP_FSTYPES",
    "Extent",
    "overlaps",
    "parse_filefrag",
    "read_extents",
    "written_ranges",
]

FIEMAP_FSTYPES = frozenset({"ext2", "ext3", "ext4", "xfs"})
"""Filesystems whose FIEMAP offsets are byte offsets on their own block device (the guest's
FAT driver reports a count but no extents, so FAT files stream through the guest)."""
READ_CHUNK = 4 << 20
_PLAIN = frozenset({"last", "eof", "merged", "shared"})
_ZERO = frozenset({"unwritten"})
_EXTENT = re.compile(
    r"^\s*\d+:\s*(\d+)\.\.\s*(\d+):\s*(\d+)\.\.\s*(\d+):\s*(\d+):\s*(?:\d+:)?\s*([a-z_,]*)\s*$"
)
_FOUND = re.compile(r": (\d+) extents? found$")


@dataclass(frozen=True)
class Extent:
    logical: int  # offset in the file
    disk: int  # offset on the whole disk
    length: int
    zero: bool  # allocated but unwritten: reads as zeros


def parse_filefrag(text: str, size: int, start: int, fs_size: int) -> list[Extent] | None:
    """The extents of a `size`-byte file on a filesystem at `start` of `fs_size` bytes, from
    ``filefrag -v -b1``'s report; None when the report is not exactly what it should be."""
    lines = text.strip().splitlines()
    heads = [i for i, line in enumerate(lines) if line.lstrip().startswith("ext:")]
    if len(heads) != 1 or not lines or not (found := _FOUND.search(lines[-1])):
        return None
    rows = lines[heads[0] + 1 : -1]
    if len(rows) != int(found.group(1)):
        return None
    extents: list[Extent] = []
    end = 0
    for row in rows:
        extent = _extent(row, start, fs_size)
        if extent is None or extent.logical < end:
            return None
        end = extent.logical + extent.length
        if extent.logical < size:
            length = min(extent.length, size - extent.logical)
            extents.append(Extent(extent.logical, extent.disk, length, extent.zero))
    return extents


def _extent(row: str, start: int, fs_size: int) -> Extent | None:
    match = _EXTENT.match(row)
    if match is None:
        return None
    l_first, l_last, p_first, p_last, length = (int(match.group(i)) for i in range(1, 6))
    flags = frozenset(filter(None, match.group(6).split(",")))
    if not flags <= _PLAIN | _ZERO:
        return None
    if length <= 0 or l_last - l_first + 1 != length or p_last - p_first + 1 != length:
        return None
    if p_last >= fs_size:
        return None
    return Extent(l_first, start + p_first, length, bool(flags & _ZERO))


def written_ranges(overlay: str) -> list[tuple[int, int]] | None:
    """The (start, length) ranges the guest wrote into its qcow2 overlay (a journal replayed
    at mount): there the backup's blocks are not what the guest sees. Read from the overlay
    alone (its backing, the backup's export, is not opened); None if qemu-img cannot say."""
    spec = {"driver": "qcow2", "backing": None, "file": {"driver": "file", "filename": overlay}}
    command = ["qemu-img", "map", "-U", "--output=json", "json:" + json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        return None
    return [
        (int(entry["start"]), int(entry["length"]))
        for entry in json.loads(done.stdout)
        if entry.get("present", True)
    ]


def overlaps(extents: list[Extent], ranges: list[tuple[int, int]] | None) -> bool:
    """Whether any extent meets any range (unknown ranges meet everything)."""
    if ranges is None:
        return True
    return any(
        extent.disk < start + length and start < extent.disk + extent.length
        for extent in extents
        for start, length in ranges
    )


def read_extents(
    reader: Callable[[int, int], bytes], extents: list[Extent], size: int
) -> Iterator[bytes]:
    """The file's `size` bytes: its extents read from the disk by `reader`, zeros between."""
    position = 0
    for extent in [*extents, Extent(size, 0, 0, True)]:
        yield from _zeros(extent.logical - position)
        done = 0
        while done < extent.length:
            n = min(READ_CHUNK, extent.length - done)
            data = bytes(n) if extent.zero else reader(extent.disk + done, n)
            if len(data) != n:
                raise OSError(f"short read at {extent.disk + done}: {len(data)} of {n} bytes")
            yield data
            done += n
        position = extent.logical + extent.length


def _zeros(count: int) -> Iterator[bytes]:
    while count > 0:
        n = min(READ_CHUNK, count)
        yield bytes(n)
        count -= n
