"""Writing restored disks: early write-back beside the writer, vectored writes of block runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from opencbr.chunkstore.restore import _contiguous_runs
from opencbr.chunkstore.store import _pwritev_all
from opencbr.chunkstore.writeback import EarlyWriteBack, early_write_back


def test_flushes_start_while_writing_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "image"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with early_write_back(fd, every=4096) as write_back:
            for n in range(8):
                os.pwrite(fd, bytes([n]) * 4096, n * 4096)
                write_back.wrote(4096)
            deadline = time.monotonic() + 5
            while write_back.flushes < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert write_back.flushes >= 1
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(bytes([n]) * 4096 for n in range(8))


@pytest.mark.parametrize("drop_cache", [False, True])
def test_flushed_pages_leave_the_page_cache_when_asked(tmp_path: Path, drop_cache: bool) -> None:
    fincore = shutil.which("fincore")  # util-linux
    if fincore is None:
        pytest.skip("fincore (util-linux) is not installed")
    path = tmp_path / "image"
    size = 4 << 20
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with early_write_back(fd, every=size, drop_cache=drop_cache) as write_back:
            os.pwrite(fd, b"\x01" * size, 0)
            write_back.wrote(size)
            deadline = time.monotonic() + 5
            while write_back.flushes < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert write_back.flushes == 1
    finally:
        os.close(fd)
    out = subprocess.run(
        [fincore, "--bytes", "--noheadings", "--output", "RES", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(out.stdout) == (0 if drop_cache else size)
    assert path.read_bytes() == b"\x01" * size


def test_a_failed_flush_is_raised_on_close() -> None:
    read_end, write_end = os.pipe()  # fdatasync on a pipe fails (EINVAL)
    try:
        write_back = EarlyWriteBack(write_end, every=1)
        write_back.wrote(1)
        deadline = time.monotonic() + 5
        while write_back.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(OSError):
            write_back.close()
    finally:
        os.close(read_end)
        os.close(write_end)


def test_pwritev_all_writes_more_buffers_than_one_call_takes(tmp_path: Path) -> None:
    parts = [bytes([n % 251]) * (n % 7 + 1) for n in range(3000)]  # > IOV_MAX (1024)
    fd = os.open(tmp_path / "run", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert _pwritev_all(fd, parts, 10) == sum(len(p) for p in parts)
    finally:
        os.close(fd)
    assert (tmp_path / "run").read_bytes() == bytes(10) + b"".join(parts)


def test_runs_of_neighbouring_blocks_are_capped() -> None:
    """One block repeated over a long stretch must not become one huge write."""
    block = b"\x01" * 65536
    pieces = [(n * 65536, block) for n in reversed(range(300))] + [(300 * 65536 + 4096, block)]
    runs = _contiguous_runs(pieces)
    assert [offset for offset, _ in runs] == [0, 128 * 65536, 256 * 65536, 300 * 65536 + 4096]
    assert all(sum(map(len, parts)) <= 8 << 20 for _, parts in runs)
    assert sum(len(parts) for _, parts in runs) == 301
