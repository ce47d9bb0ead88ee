"""Sparse-aware import and export of raw image files, and the dm-crypt layout of the image."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from opencbr.chunkstore import writeback
from opencbr.evs.volumes import (
    CBT_BLOCK_SIZE,
    DiskKey,
    LocalVolumeDriver,
    RangeError,
    dm_crypt_table,
    transfer,
)

from .conftest import DISK_SIZE, KEY, MiB, pattern, read_all

B = CBT_BLOCK_SIZE


def _sparse_image(path: Path, size: int = DISK_SIZE) -> bytes:
    """A sparse image with data, a written zero block and holes; returns its content."""
    content = bytearray(size)
    with open(path, "wb") as handle:
        handle.truncate(size)
        for offset, data in [
            (0, pattern(10_000, seed=1)),
            (MiB, bytes(8192)),  # zeros stored as data
            (MiB + 8192, pattern(B, seed=2)),
            (3 * MiB + 4096, pattern(4096, seed=3)),
        ]:
            handle.seek(offset)
            handle.write(data)
            content[offset : offset + len(data)] = data
    return bytes(content)


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def test_import_export_round_trip_keeps_holes(
    driver: LocalVolumeDriver, volume: str, tmp_path: Path
) -> None:
    source = tmp_path / "source.img"
    content = _sparse_image(source)
    calls: list[tuple[int, int]] = []
    copied = driver.import_file(volume, source, lambda done, total: calls.append((done, total)))
    assert read_all(driver, volume) == content
    assert calls
    assert calls[-1] == (copied, copied)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert _allocated(driver.root / f"{volume}.img") <= 2 * _allocated(source)

    target = tmp_path / "target.img"
    driver.export_file(volume, target)
    assert target.read_bytes() == content
    assert _allocated(target) <= _allocated(source)


def test_import_replaces_old_content_and_marks_both(
    driver: LocalVolumeDriver, volume: str, tmp_path: Path
) -> None:
    driver.write(volume, 2 * MiB, b"old!" * 1024)
    source = tmp_path / "short.img"
    source.write_bytes(pattern(B, seed=5))  # shorter than the disk
    driver.import_file(volume, source)
    expected = pattern(B, seed=5) + bytes(DISK_SIZE - B)
    assert read_all(driver, volume) == expected
    assert driver.changed_extents(volume) == [(0, B), (2 * MiB, B)]


def test_import_larger_than_disk_changes_nothing(
    driver: LocalVolumeDriver, volume: str, tmp_path: Path
) -> None:
    driver.write(volume, 0, b"keep" * 128)
    source = tmp_path / "big.img"
    with open(source, "wb") as handle:
        handle.truncate(DISK_SIZE + 4096)
    with pytest.raises(RangeError):
        driver.import_file(volume, source)
    assert read_all(driver, volume, 0, 512) == b"keep" * 128


def test_allocated_extents_skip_holes(driver: LocalVolumeDriver, volume: str) -> None:
    driver.write(volume, MiB, b"x" * 4096)
    assert driver.allocated_extents(volume) == [(MiB, 4096)]


def test_image_is_plain_dm_crypt_aes_xts_plain64(driver: LocalVolumeDriver) -> None:
    """Decrypt raw image units independently: tweak = offset / 512, little-endian, 4 KiB units."""
    driver.create("enc", DISK_SIZE, KEY)
    data = pattern(3 * 4096, seed=8)
    driver.write("enc", MiB, data)
    image = (driver.root / "enc.img").read_bytes()
    for unit in range(3):
        offset = MiB + unit * 4096
        tweak = (offset // 512).to_bytes(16, "little")
        decryptor = Cipher(algorithms.AES(KEY.raw), modes.XTS(tweak)).decryptor()
        plain = decryptor.update(image[offset : offset + 4096])
        assert plain == data[unit * 4096 : (unit + 1) * 4096]
    table = dm_crypt_table(KEY, DISK_SIZE, "/dev/loop7")
    assert table == (
        f"0 {DISK_SIZE // 512} crypt aes-xts-plain64 {KEY.raw.hex()} 0 /dev/loop7 0 "
        "1 sector_size:4096"
    )


def test_fill_holes_makes_every_unit_ciphertext(driver: LocalVolumeDriver) -> None:
    key = DiskKey.generate()
    driver.create("enc", DISK_SIZE, key)
    driver.write("enc", 0, pattern(4096, seed=4))
    written = driver.fill_holes("enc")
    assert written == DISK_SIZE - 4096
    image = (driver.root / "enc.img").read_bytes()
    zero_units = [o for o in range(0, DISK_SIZE, 4096) if image[o : o + 4096] == bytes(4096)]
    assert zero_units == []
    assert read_all(driver, "enc") == pattern(4096, seed=4) + bytes(DISK_SIZE - 4096)
    assert driver.changed_extents("enc") == [(0, B)]
    driver.create("plain", DISK_SIZE)
    assert driver.fill_holes("plain") == 0


def test_many_pieces_with_early_write_back_round_trip(
    driver: LocalVolumeDriver, volume: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small pieces and flush interval: read-ahead, writer and flusher threads all take turns."""
    monkeypatch.setattr(transfer, "TRANSFER_PIECE", 64 * 1024)
    monkeypatch.setattr(writeback, "WRITE_BACK_EVERY", 128 * 1024)
    source = tmp_path / "source.img"
    content = pattern(DISK_SIZE - 3 * 4096, seed=11) + bytes(4096) + pattern(8192, seed=12)
    source.write_bytes(content)
    driver.import_file(volume, source)
    assert read_all(driver, volume) == content
    target = tmp_path / "target.img"
    driver.export_file(volume, target)
    assert target.read_bytes() == content


def test_read_ahead_hands_a_reader_error_to_the_consumer() -> None:
    def pieces() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError(5, "Input/output error")

    reader = transfer._read_ahead(pieces())
    assert [next(reader), next(reader)] == [1, 2]
    with pytest.raises(OSError, match="Input/output"):
        next(reader)


def test_read_ahead_stops_its_reader_when_the_consumer_stops() -> None:
    produced: list[int] = []

    def pieces() -> Iterator[int]:
        for n in range(1000):
            produced.append(n)
            yield n

    for item in transfer._read_ahead(pieces(), depth=2):
        if item == 3:
            break
    assert len(produced) < 10
