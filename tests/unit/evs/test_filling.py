"""A volume filled from a block source (instant restore), on real volumes, plain and
encrypted: reads before the copy, writes the copy never overwrites, resuming, the end."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from opencbr.evs.volumes import DiskKey, LocalVolumeDriver
from opencbr.evs.volumes.filling import FillingBusy, FillingStopped, FillingVolume

from .conftest import DISK_SIZE, MiB, read_all

BLOCK = 64 * 1024


@dataclass(frozen=True)
class BytesSource:
    """The block source interface over bytes in memory (what a backup's reader provides)."""

    data: bytes
    block_size: int = BLOCK

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]


@dataclass(frozen=True)
class DriverVolume:
    """The disk service's view of one volume (size, write, read, flush)."""

    driver: LocalVolumeDriver
    volume_id: str

    @property
    def size(self) -> int:
        return self.driver.size(self.volume_id)

    def write(self, offset: int, data: bytes | memoryview, length: int | None = None) -> int:
        return self.driver.write(self.volume_id, offset, data, length)

    def read(self, offset: int, length: int) -> Iterator[bytes]:
        return self.driver.read(self.volume_id, offset, length)

    def write_zeroes(self, offset: int, length: int) -> int:
        return self.driver.write_zeroes(self.volume_id, offset, length)

    def flush(self) -> None:
        self.driver.flush(self.volume_id)


def copy_all(filling: FillingVolume, source: BytesSource) -> None:
    blocks = [
        (o, source.data[o : o + BLOCK] if any(source.data[o : o + BLOCK]) else None)
        for o in range(0, source.size, BLOCK)
    ]
    for i in range(0, len(blocks), 16):
        filling.fill(blocks[i : i + 16])


@pytest.fixture
def source() -> BytesSource:
    data = bytearray(os.urandom(DISK_SIZE))
    data[MiB : 2 * MiB] = bytes(MiB)  # a hole in the backup
    return BytesSource(bytes(data))


def test_reads_writes_and_the_copy(
    driver: LocalVolumeDriver, volume: str, key: DiskKey | None, source: BytesSource
) -> None:
    filling = FillingVolume(driver.root, volume, DriverVolume(driver, volume), source)
    assert filling.read(100, 1000) == source.data[100:1100]  # from the source, exact range
    assert filling.read(DISK_SIZE - 4096, 4096) == source.data[-4096:]

    filling.write(3 * MiB + 512, b"\xaa" * 1024)  # part of a block the copy has not reached
    expected = bytearray(source.data)
    expected[3 * MiB + 512 : 3 * MiB + 1536] = b"\xaa" * 1024
    assert filling.read(3 * MiB, BLOCK) == expected[3 * MiB : 3 * MiB + BLOCK]
    filling.write(MiB + BLOCK, b"\x55" * BLOCK)  # a whole block inside the backup's hole
    expected[MiB + BLOCK : MiB + 2 * BLOCK] = b"\x55" * BLOCK

    with pytest.raises(FillingBusy):  # one filling of a volume at a time
        FillingVolume(driver.root, volume, DriverVolume(driver, volume), source)
    copy_all(filling, source)
    assert filling.read(0, DISK_SIZE) == expected  # the copy kept both writes
    filling.finish()
    assert read_all(driver, volume) == expected  # the volume alone holds the disk
    assert filling.read(0, 4096) == expected[:4096]  # open handles go on, straight through
    assert not (driver.root / f"{volume}.fill").exists()


def test_a_stopped_filling_refuses_and_a_new_one_resumes(
    driver: LocalVolumeDriver, volume: str, source: BytesSource
) -> None:
    filling = FillingVolume(driver.root, volume, DriverVolume(driver, volume), source)
    filling.write(0, b"\x11" * 4096)
    filling.close()  # the copy stopped (a crash, a retry elsewhere)
    with pytest.raises(FillingStopped):
        filling.read(0, 512)
    again = FillingVolume(driver.root, volume, DriverVolume(driver, volume), source)
    copy_all(again, source)
    assert again.read(0, 4096) == b"\x11" * 4096  # the map survived: the write is kept
    assert again.read(4096, DISK_SIZE - 4096) == source.data[4096:]
    again.finish()


def test_zeroing_a_range_before_and_after_the_copy(
    driver: LocalVolumeDriver, volume: str, key: DiskKey | None, source: BytesSource
) -> None:
    filling = FillingVolume(driver.root, volume, DriverVolume(driver, volume), source)
    expected = bytearray(source.data)
    start, length = 512, DISK_SIZE - 1024  # many zero pieces, partial first and last blocks
    filling.write_zeroes(start, length)
    expected[start : start + length] = bytes(length)
    copy_all(filling, source)  # the copy never brings the zeroed blocks back
    assert filling.read(0, DISK_SIZE) == expected
    filling.finish()
    filling.write_zeroes(0, DISK_SIZE)  # complete: the volume's own zeroing
    assert read_all(driver, volume) == bytes(DISK_SIZE)


class GatedSource:
    """A source whose reads from `slow_from` on wait for `gate`: a backup's chunks that take
    their time to arrive."""

    def __init__(self, data: bytes, slow_from: int) -> None:
        self.data, self.slow_from = data, slow_from
        self.block_size = BLOCK
        self.entered, self.gate = threading.Event(), threading.Event()

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        if offset >= self.slow_from:
            self.entered.set()
            assert self.gate.wait(30)
        return self.data[offset : offset + length]


def test_a_slow_source_read_holds_up_no_other_request(
    driver: LocalVolumeDriver, volume: str, source: BytesSource
) -> None:
    gated = GatedSource(source.data, slow_from=3 * MiB)
    filling = FillingVolume(driver.root, volume, DriverVolume(driver, volume), gated)
    filling.fill([(0, source.data[:BLOCK])])
    answers: list[bytes] = []
    waiting = threading.Thread(target=lambda: answers.append(filling.read(3 * MiB, 4096)))
    waiting.start()
    assert gated.entered.wait(30)  # that read now waits for the source
    assert filling.read(0, 4096) == source.data[:4096]  # a filled block, from the volume
    filling.write(BLOCK, b"\x77" * BLOCK)  # a whole block: needs nothing of the source
    filling.write(2 * BLOCK + 512, b"\x66" * 512)  # completes a block from the fast source
    assert filling.read(BLOCK, 3 * BLOCK) == (
        b"\x77" * BLOCK
        + source.data[2 * BLOCK : 2 * BLOCK + 512]
        + b"\x66" * 512
        + source.data[2 * BLOCK + 1024 : 4 * BLOCK]
    )
    assert waiting.is_alive()
    gated.gate.set()
    waiting.join(30)
    assert answers == [source.data[3 * MiB : 3 * MiB + 4096]]
    filling.close()
