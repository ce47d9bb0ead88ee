"""A guest's report of a file's extents (``filefrag -v -b1``): what the host accepts, what it
refuses (the report is untrusted), and the bytes it then reads; the overlay's written ranges
through the real qemu-img."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from opencbr.cbr.files.extents import (
    Extent,
    overlaps,
    parse_filefrag,
    read_extents,
    written_ranges,
)

HEAD = (
    "Filesystem type is: ef53\n"
    "File size of /sysroot/disk/big.bin is 20000 (20480 blocks of 1 bytes)\n"
    " ext:     logical_offset:        physical_offset: length:   expected: flags:\n"
)


def report(*rows: str, found: int | None = None) -> str:
    count = len(rows) if found is None else found
    return HEAD + "".join(r + "\n" for r in rows) + f"/sysroot/disk/big.bin: {count} extents found"


def test_extents_are_placed_on_the_disk_and_clipped_to_the_file() -> None:
    text = report(
        "   0:        0..    8191:      40960..     49151:   8192:            ",
        "   1:    12288..   20479:     81920..     90111:   8192:      49152: last,eof",
    )
    assert parse_filefrag(text, 20000, 1 << 20, 1 << 24) == [
        Extent(0, (1 << 20) + 40960, 8192, False),
        Extent(12288, (1 << 20) + 81920, 20000 - 12288, False),
    ]


def test_unwritten_extents_read_as_zeros() -> None:
    text = report("   0:        0..    4095:       4096..      8191:   4096:             unwritten")
    assert parse_filefrag(text, 4096, 0, 1 << 20) == [Extent(0, 4096, 4096, True)]


@pytest.mark.parametrize(
    "text",
    [
        report("   0:        0..    4095:  1048576..  1052671:   4096:   "),  # past the filesystem
        report("   0:        0..    4095:       0..      4095:   4096:    inline,not_aligned"),
        report("   0:        0..    4095:       0..      4095:   4096:    encrypted"),
        report("   0:        0..    4095:       0..      4096:   4096:   "),  # lengths disagree
        report(
            "   0:        0..    4095:       0..      4095:   4096:   ",
            "   1:     2048..    6143:    8192..     12287:   4096:   ",  # overlaps the first
        ),
        report("   0:        0..    4095:       0..      4095:   4096:   ", found=2),
        "Discontinuity: Block 3 is at 42 (was 8)\n",
        "",
    ],
)
def test_a_report_not_exactly_as_expected_is_refused(text: str) -> None:
    assert parse_filefrag(text, 4096, 0, 1 << 20) is None


def test_the_file_is_read_from_its_extents_with_zeros_in_holes() -> None:
    disk = bytes(range(256)) * 64  # 16 KiB
    extents = [Extent(0, 100, 50, False), Extent(80, 1000, 20, False), Extent(100, 0, 10, True)]
    data = b"".join(read_extents(lambda off, n: disk[off : off + n], extents, 130))
    assert data == disk[100:150] + bytes(30) + disk[1000:1020] + bytes(10) + bytes(20)


def test_a_short_read_fails_the_stream() -> None:
    with pytest.raises(OSError, match="short read"):
        b"".join(read_extents(lambda off, n: b"x", [Extent(0, 0, 10, False)], 10))


def test_ranges_the_guest_wrote_in_its_overlay_exclude_the_fast_path(tmp_path: Path) -> None:
    if shutil.which("qemu-io") is None:
        pytest.skip("qemu-utils is not installed")
    base = tmp_path / "base.img"
    base.write_bytes(bytes(4 << 20))
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base), str(overlay)],
        check=True,
    )
    subprocess.run(
        ["qemu-io", "-c", "write -P 1 1M 64k", str(overlay)], check=True, capture_output=True
    )
    ranges = written_ranges(str(overlay))
    assert ranges == [(1 << 20, 64 << 10)]
    assert overlaps([Extent(0, (1 << 20) + 4096, 4096, False)], ranges)
    assert not overlaps([Extent(0, 2 << 20, 4096, False)], ranges)
    assert overlaps([Extent(0, 2 << 20, 4096, False)], None)
    assert written_ranges(str(tmp_path / "missing.qcow2")) is None
