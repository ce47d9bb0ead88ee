"""Writes and reads through the local driver, plain and encrypted."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from opencbr.evs.volumes import (
    CBT_BLOCK_SIZE,
    CHUNK_SIZE,
    DiskKey,
    InvalidVolumeId,
    LocalVolumeDriver,
    RangeError,
    StreamLengthMismatch,
    VolumeExists,
    VolumeKeyError,
    VolumeNotFound,
)

from .conftest import DISK_SIZE, KEY, MiB, pattern, read_all


def test_new_volume_reads_zeros_and_is_sparse(driver: LocalVolumeDriver, volume: str) -> None:
    assert driver.exists(volume)
    assert driver.size(volume) == DISK_SIZE
    assert read_all(driver, volume) == bytes(DISK_SIZE)
    assert driver.allocated_extents(volume) == []
    assert driver.changed_extents(volume) == []
    assert os.stat(driver.root / f"{volume}.img").st_blocks == 0


def test_patterns_read_back_at_any_alignment(driver: LocalVolumeDriver, volume: str) -> None:
    data = pattern(3 * MiB + 1536, seed=7)
    assert driver.write(volume, 512, data) == len(data)
    disk = bytearray(DISK_SIZE)
    disk[512 : 512 + len(data)] = data
    assert read_all(driver, volume) == disk
    for offset, length in [(0, 1), (511, 3), (4095, 4098), (MiB - 7, 2 * MiB + 13), (0, 0)]:
        assert read_all(driver, volume, offset, length) == disk[offset : offset + length]


def test_read_yields_bounded_chunks(driver: LocalVolumeDriver, volume: str) -> None:
    chunks = list(driver.read(volume, 100, 3 * MiB))
    assert all(0 < len(chunk) <= CHUNK_SIZE for chunk in chunks)
    assert sum(map(len, chunks)) == 3 * MiB


def test_stream_of_odd_chunks_is_written_in_order(driver: LocalVolumeDriver, volume: str) -> None:
    data = pattern(2 * MiB + 4096, seed=3)
    cuts = [0, 1, 1000, 1000, 5000, MiB, MiB + 1, 2 * MiB + 4096]
    stream = (data[a:b] for a, b in itertools.pairwise(cuts))
    assert driver.write(volume, MiB, stream, len(data)) == len(data)
    assert read_all(driver, volume, MiB, len(data)) == data


def test_sub_unit_writes_keep_neighbours(driver: LocalVolumeDriver, volume: str) -> None:
    driver.write(volume, 0, b"\x11" * 8192)
    driver.write(volume, 1024, b"\x22" * 512)  # inside one 4096-byte unit
    driver.write(volume, 3584, b"\x33" * 1024)  # across two units
    expected = bytearray(b"\x11" * 8192)
    expected[1024:1536] = b"\x22" * 512
    expected[3584:4608] = b"\x33" * 1024
    assert read_all(driver, volume, 0, 8192) == expected


def test_zero_write_over_data_reads_zeros(driver: LocalVolumeDriver, volume: str) -> None:
    driver.write(volume, 0, b"\xff" * 65536)
    driver.write(volume, 4096, bytes(8192))
    assert read_all(driver, volume, 4096, 8192) == bytes(8192)
    assert read_all(driver, volume, 0, 4096) == b"\xff" * 4096


def test_write_zeroes_frees_whole_units_and_writes_partial_ones(
    driver: LocalVolumeDriver, volume: str
) -> None:
    data = pattern(3 * MiB, seed=3)
    driver.write(volume, 0, data)
    image = driver.root / f"{volume}.img"
    allocated = os.stat(image).st_blocks
    # From inside one unit to inside another: the units between become a hole.
    assert driver.write_zeroes(volume, 1536, 2 * MiB) == 2 * MiB
    expected = bytearray(data + bytes(DISK_SIZE - len(data)))
    expected[1536 : 1536 + 2 * MiB] = bytes(2 * MiB)
    assert read_all(driver, volume) == expected
    assert os.stat(image).st_blocks * 512 <= allocated * 512 - 2 * MiB + 8192
    assert driver.changed_extents(volume) == [(0, 3 * MiB)]


def test_write_zeroes_is_a_write_for_the_change_map_and_views(
    driver: LocalVolumeDriver, volume: str
) -> None:
    driver.write(volume, 0, pattern(MiB, seed=4))
    with driver.begin_backup(volume) as view:
        driver.write_zeroes(volume, 0, MiB)
        assert view.read_at(0, MiB) == pattern(MiB, seed=4)  # the view keeps its image
        view.commit()
    assert driver.changed_extents(volume) == [(0, MiB)]
    assert read_all(driver, volume, 0, MiB) == bytes(MiB)


@pytest.mark.parametrize(
    ("offset", "length"),
    [(-512, 512), (100, 512), (0, 100), (DISK_SIZE - 512, 1024)],
)
def test_bad_zero_ranges_raise_and_change_nothing(
    driver: LocalVolumeDriver, volume: str, offset: int, length: int
) -> None:
    driver.write(volume, 0, b"\x5a" * 4096)
    before_image = (driver.root / f"{volume}.img").read_bytes()
    with pytest.raises(RangeError):
        driver.write_zeroes(volume, offset, length)
    assert (driver.root / f"{volume}.img").read_bytes() == before_image
    assert driver.changed_extents(volume) == [(0, CBT_BLOCK_SIZE)]


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (-512, 512),  # negative offset
        (100, 512),  # unaligned offset
        (0, 100),  # unaligned length
        (DISK_SIZE - 512, 1024),  # past the end
        (DISK_SIZE, 512),  # starts at the end
    ],
)
def test_bad_write_ranges_raise_and_change_nothing(
    driver: LocalVolumeDriver, volume: str, offset: int, length: int
) -> None:
    driver.write(volume, 0, b"\x5a" * 4096)
    before_image = (driver.root / f"{volume}.img").read_bytes()
    before_map = (driver.root / f"{volume}.cbt").read_bytes()
    with pytest.raises(RangeError):
        driver.write(volume, offset, b"\x99" * length)
    with pytest.raises(RangeError):
        driver.write(volume, offset, iter([b"\x99" * length]), length)
    assert (driver.root / f"{volume}.img").read_bytes() == before_image
    assert (driver.root / f"{volume}.cbt").read_bytes() == before_map
    assert driver.changed_extents(volume) == [(0, CBT_BLOCK_SIZE)]


@pytest.mark.parametrize(("offset", "length"), [(-1, 1), (0, -1), (DISK_SIZE - 1, 2)])
def test_bad_read_ranges_raise(
    driver: LocalVolumeDriver, volume: str, offset: int, length: int
) -> None:
    with pytest.raises(RangeError):
        driver.read(volume, offset, length)


def test_stream_length_must_match(driver: LocalVolumeDriver, volume: str) -> None:
    with pytest.raises(RangeError):
        driver.write(volume, 0, iter([b"a" * 512]))  # a stream needs its length
    with pytest.raises(StreamLengthMismatch):
        driver.write(volume, 0, iter([b"a" * 1024]), 512)
    with pytest.raises(StreamLengthMismatch):
        driver.write(volume, 0, iter([b"a" * 512]), 1024)
    with pytest.raises(StreamLengthMismatch):
        driver.write(volume, 0, b"a" * 512, 1024)
    assert read_all(driver, volume, 0, 1024) == bytes(1024)


def test_restart_keeps_bytes_and_map(tmp_path: Path, key: DiskKey | None) -> None:
    first = LocalVolumeDriver(tmp_path)
    first.create("disk", DISK_SIZE, key)
    data = pattern(200_000 // 512 * 512, seed=11)
    first.write("disk", 3 * CBT_BLOCK_SIZE, data)
    changed = first.changed_extents("disk")
    first.close_all()

    second = LocalVolumeDriver(tmp_path)
    if key is not None:
        second.open("disk", key)
    assert second.is_encrypted("disk") is (key is not None)
    assert read_all(second, "disk", 3 * CBT_BLOCK_SIZE, len(data)) == data
    assert second.changed_extents("disk") == changed
    second.close_all()


def test_encrypted_image_never_holds_the_plaintext(driver: LocalVolumeDriver) -> None:
    driver.create("secret", DISK_SIZE, KEY)
    data = pattern(MiB, seed=42)
    driver.write("secret", 512, data)
    driver.write("secret", 2 * MiB, iter([data[:4096], data[4096:8192]]), 8192)
    driver.flush("secret")
    needle = pattern(64, seed=42)[:16]
    image = (driver.root / "secret.img").read_bytes()
    assert needle not in image
    assert read_all(driver, "secret", 512, MiB) == data


def test_encrypted_volume_needs_the_right_key(tmp_path: Path) -> None:
    LocalVolumeDriver(tmp_path).create("disk", DISK_SIZE, KEY)
    restarted = LocalVolumeDriver(tmp_path)
    with pytest.raises(VolumeKeyError):
        restarted.read("disk", 0, 512)
    with pytest.raises(VolumeKeyError):
        restarted.open("disk", DiskKey.generate())
    restarted.open("disk", KEY)
    restarted.open("disk", KEY)  # idempotent
    assert read_all(restarted, "disk", 0, 512) == bytes(512)
    restarted.create("plain", DISK_SIZE)
    with pytest.raises(VolumeKeyError):
        restarted.open("plain", KEY)


def test_lifecycle_errors(driver: LocalVolumeDriver) -> None:
    with pytest.raises(InvalidVolumeId):
        driver.create("../escape", DISK_SIZE)
    with pytest.raises(RangeError):
        driver.create("odd", 1000)
    driver.create("disk", DISK_SIZE)
    with pytest.raises(VolumeExists):
        driver.create("disk", DISK_SIZE)
    driver.delete("disk")
    assert not driver.exists("disk")
    assert list(driver.root.iterdir()) == []
    with pytest.raises(VolumeNotFound):
        driver.read("disk", 0, 1)
    with pytest.raises(VolumeNotFound):
        driver.delete("disk")


def test_disk_key_rules() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        DiskKey(b"short")
    with pytest.raises(ValueError, match="halves"):
        DiskKey(b"k" * 64)
    assert "redacted" in repr(KEY)
    assert DiskKey(bytes(range(64))) == KEY


def test_reader_of_a_deleted_volume_stops_cleanly(driver: LocalVolumeDriver, volume: str) -> None:
    chunks = driver.read(volume, 0, 3 * MiB)
    next(chunks)
    driver.delete(volume)
    with pytest.raises(VolumeNotFound):
        next(chunks)
