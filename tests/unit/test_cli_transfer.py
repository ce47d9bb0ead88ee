"""The CLI's transfers: which ranges of a file an import sends (holes and zero blocks are
not), and that the pieces put back together are the file."""

from __future__ import annotations

import os
from pathlib import Path

from opencbr.cli.transfer import SEGMENT, ZERO_GRAIN, nonzero_runs, pieces

KiB = 1 << 10
MiB = 1 << 20


def test_zero_blocks_are_cut_out_of_a_run_on_grain_boundaries() -> None:
    data = os.urandom(ZERO_GRAIN) + bytes(3 * ZERO_GRAIN) + b"\x01" + bytes(ZERO_GRAIN - 1)
    runs = [(offset, bytes(view)) for offset, view in nonzero_runs(data, 10 * ZERO_GRAIN)]
    assert runs == [
        (10 * ZERO_GRAIN, data[:ZERO_GRAIN]),
        (14 * ZERO_GRAIN, data[4 * ZERO_GRAIN :]),
    ]


def test_a_read_not_on_a_grain_boundary_is_cut_on_the_files_grains() -> None:
    base = ZERO_GRAIN - 512
    data = bytes(512) + os.urandom(ZERO_GRAIN)  # the first 512 bytes are a grain's tail
    assert [(o, len(v)) for o, v in nonzero_runs(data, base)] == [(ZERO_GRAIN, ZERO_GRAIN)]


def test_an_import_sends_the_data_and_skips_holes_and_written_zeros(tmp_path: Path) -> None:
    image = tmp_path / "image.raw"
    with open(image, "wb") as f:
        f.write(os.urandom(100 * KiB))
        f.write(bytes(SEGMENT + 3 * MiB))  # zeros written out: no hole
        f.write(os.urandom(SEGMENT + 5))  # longer than one request
        f.seek(4 * MiB, os.SEEK_CUR)  # a hole
        f.write(os.urandom(777))  # the end, not a multiple of 512
    original = image.read_bytes()
    fd = os.open(image, os.O_RDONLY)
    try:
        sent_pieces = list(pieces(fd, len(original)))
    finally:
        os.close(fd)
    rebuilt = bytearray(len(original) + 512)
    for offset, data in sent_pieces:
        assert offset % 512 == 0
        assert len(data) % 512 == 0
        assert 0 < len(data) <= SEGMENT
        rebuilt[offset : offset + len(data)] = data
    assert bytes(rebuilt[: len(original)]) == original
    sent = sum(len(data) for _, data in sent_pieces)
    zeros = SEGMENT + 3 * MiB + 4 * MiB
    assert sent <= len(original) - zeros + 2 * ZERO_GRAIN + 512  # grains at the edges of zeros
