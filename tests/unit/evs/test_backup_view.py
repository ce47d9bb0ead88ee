"""Point-in-time backup views: copy-on-write, map swap, commit and abort, concurrency."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opencbr.evs.volumes import (
    CBT_BLOCK_SIZE,
    BackupInProgress,
    DiskKey,
    LocalVolumeDriver,
    RangeError,
    ViewClosed,
)

from .conftest import DISK_SIZE, MiB, pattern, read_all

B = CBT_BLOCK_SIZE


def _fill(driver: LocalVolumeDriver, volume: str) -> bytes:
    data = pattern(2 * MiB, seed=1)
    driver.write(volume, 0, data)
    return data + bytes(DISK_SIZE - len(data))


def test_writes_during_a_view_do_not_change_it(driver: LocalVolumeDriver, volume: str) -> None:
    before = _fill(driver, volume)
    view = driver.begin_backup(volume)
    driver.write(volume, 512, b"\x01" * 1024)  # partial block
    driver.write(volume, MiB - 4096, pattern(3 * B, seed=2))  # straddles blocks
    driver.write(volume, 3 * MiB, b"\x02" * B)  # was a hole
    driver.write(volume, 512, b"\x03" * 512)  # second write to a preserved block
    assert view.read_at(0, DISK_SIZE) == before
    assert view.read_at(513, 77) == before[513:590]
    assert read_all(driver, volume, 3 * MiB, B) == b"\x02" * B
    assert view.changed_extents() == [(0, 2 * MiB)]
    assert driver.changed_extents(volume) == [(0, B), (MiB - B, 4 * B), (3 * MiB, B)]
    view.commit()
    assert driver.changed_extents(volume) == [(0, B), (MiB - B, 4 * B), (3 * MiB, B)]


def test_abort_merges_the_view_map_back(driver: LocalVolumeDriver, volume: str) -> None:
    driver.write(volume, 0, b"a" * 512)
    view = driver.begin_backup(volume)
    driver.write(volume, 10 * B, b"b" * 512)
    view.abort()
    assert driver.changed_extents(volume) == [(0, B), (10 * B, B)]
    with pytest.raises(ViewClosed):
        view.read_at(0, 1)
    with pytest.raises(ViewClosed):
        view.commit()


def test_commit_forgets_what_the_backup_covered(driver: LocalVolumeDriver, volume: str) -> None:
    driver.write(volume, 0, b"a" * 512)
    with driver.begin_backup(volume) as view:
        assert view.changed_extents() == [(0, B)]
        view.commit()
    assert driver.changed_extents(volume) == []
    names = sorted(p.name for p in driver.root.iterdir())
    assert names == [f"{volume}.cbt", f"{volume}.img", f"{volume}.json"]


def test_leaving_a_with_block_without_commit_aborts(driver: LocalVolumeDriver, volume: str) -> None:
    driver.write(volume, 0, b"a" * 512)
    with pytest.raises(RuntimeError), driver.begin_backup(volume):
        raise RuntimeError("upload failed")
    assert driver.changed_extents(volume) == [(0, B)]


def test_one_view_at_a_time_and_no_delete_or_import(
    driver: LocalVolumeDriver, volume: str, tmp_path: Path
) -> None:
    view = driver.begin_backup(volume)
    with pytest.raises(BackupInProgress):
        driver.begin_backup(volume)
    with pytest.raises(BackupInProgress):
        driver.delete(volume)
    image = tmp_path / "src.img"
    image.write_bytes(b"x" * 4096)
    with pytest.raises(BackupInProgress):
        driver.import_file(volume, image)
    with pytest.raises(RangeError):
        view.read_at(DISK_SIZE - 1, 2)
    view.commit()
    driver.delete(volume)


def test_cow_side_file_holds_no_plaintext(
    driver: LocalVolumeDriver, volume: str, key: DiskKey | None
) -> None:
    driver.write(volume, 0, pattern(MiB, seed=9))
    view = driver.begin_backup(volume)
    driver.write(volume, 0, bytes(MiB))
    side = (driver.root / f"{volume}.cow").read_bytes()
    needle = pattern(32, seed=9)[:16]
    assert (needle in side) is (key is None)  # plain disks keep the old bytes as they were
    assert view.read_at(0, MiB) == pattern(MiB, seed=9)
    view.commit()


def test_concurrent_writers_never_disturb_the_view(driver: LocalVolumeDriver, volume: str) -> None:
    before = _fill(driver, volume)
    view = driver.begin_backup(volume)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        try:
            offset = seed * 4096
            while not stop.is_set() and offset + 8192 <= DISK_SIZE:
                driver.write(volume, offset, pattern(8192, seed=seed))
                offset += 3 * B + 4096
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    seen = b"".join(view.read_at(offset, B) for offset in range(0, DISK_SIZE, B))
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors
    assert seen == before
    assert view.read_at(0, DISK_SIZE) == before
    view.commit()


def test_a_view_begun_during_a_write_leaves_the_rest_of_it_marked_anew(
    driver: LocalVolumeDriver, volume: str
) -> None:
    # A write marks its whole range once before its first piece; a view that begins between
    # two pieces takes that map, and the pieces written after it are marked in the new one.
    views = []

    def stream() -> Iterator[bytes]:
        yield b"a" * MiB
        views.append(driver.begin_backup(volume))
        yield b"b" * MiB

    driver.write(volume, 0, stream(), 2 * MiB)
    (view,) = views
    assert view.changed_extents() == [(0, 2 * MiB)]
    assert view.read_at(0, 2 * MiB) == b"a" * MiB + bytes(MiB)
    assert driver.changed_extents(volume) == [(MiB, MiB)]
    view.commit()
    assert read_all(driver, volume, 0, 2 * MiB) == b"a" * MiB + b"b" * MiB
