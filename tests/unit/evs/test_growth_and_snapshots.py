"""Growing a volume and its snapshots in the volume layer, plain and encrypted."""

from __future__ import annotations

import pytest

from opencbr.evs.volumes import CBT_BLOCK_SIZE, BackupInProgress, LocalVolumeDriver, RangeError
from opencbr.evs.volumes.crypto import DiskKey

from .conftest import DISK_SIZE, MiB, pattern, read_all


def test_growth_keeps_data_and_the_change_map_and_reads_zeros_past_the_old_end(
    driver: LocalVolumeDriver, volume: str, key: DiskKey | None
) -> None:
    driver.write(volume, MiB, pattern(4096))
    driver.grow(volume, 2 * DISK_SIZE)
    assert driver.size(volume) == 2 * DISK_SIZE
    assert driver.changed_extents(volume) == [(MiB, CBT_BLOCK_SIZE)]
    assert read_all(driver, volume, MiB, 4096) == pattern(4096)
    assert read_all(driver, volume, DISK_SIZE, DISK_SIZE) == bytes(DISK_SIZE)
    driver.write(volume, 2 * DISK_SIZE - 4096, pattern(4096, 1))
    driver.close_all()  # a restart sees the new size, data and map
    driver.open(volume, key)
    assert driver.size(volume) == 2 * DISK_SIZE
    assert read_all(driver, volume, 2 * DISK_SIZE - 4096) == pattern(4096, 1)
    assert driver.changed_extents(volume) == [
        (MiB, CBT_BLOCK_SIZE),
        (2 * DISK_SIZE - CBT_BLOCK_SIZE, CBT_BLOCK_SIZE),
    ]


def test_growth_refuses_shrinking_bad_sizes_and_an_open_view(
    driver: LocalVolumeDriver, volume: str
) -> None:
    for bad in (DISK_SIZE - 4096, DISK_SIZE + 100, 0):
        with pytest.raises(RangeError):
            driver.grow(volume, bad)
    driver.grow(volume, DISK_SIZE)  # same size: nothing to do
    view = driver.begin_backup(volume)
    with pytest.raises(BackupInProgress):
        driver.grow(volume, 2 * DISK_SIZE)
    view.abort()
    assert driver.size(volume) == DISK_SIZE


def test_a_snapshot_is_a_point_in_time_and_rollback_restores_it_and_marks_changes(
    driver: LocalVolumeDriver, volume: str
) -> None:
    driver.write(volume, 0, pattern(8192))
    assert driver.snapshot(volume, "snap-1") >= 8192
    view = driver.begin_backup(volume)
    view.commit()  # the map is empty now
    driver.write(volume, 0, pattern(4096, 2))
    driver.write(volume, 2 * MiB, pattern(4096, 3))
    driver.grow(volume, 2 * DISK_SIZE)
    driver.write(volume, DISK_SIZE, pattern(4096, 4))
    driver.rollback(volume, "snap-1")
    assert read_all(driver, volume, 0, 8192) == pattern(8192)
    assert read_all(driver, volume, 8192) == bytes(2 * DISK_SIZE - 8192)
    assert driver.size(volume) == 2 * DISK_SIZE
    changed = driver.changed_extents(volume)
    for offset in (0, 2 * MiB, DISK_SIZE):
        assert any(start <= offset < start + length for start, length in changed)
    driver.delete_snapshot("snap-1")
    assert not driver.snapshot_exists("snap-1")


def test_rollback_of_a_missing_snapshot_changes_nothing(
    driver: LocalVolumeDriver, volume: str
) -> None:
    driver.write(volume, 0, pattern(4096))
    with pytest.raises(Exception, match="snap-x"):
        driver.rollback(volume, "snap-x")
    assert read_all(driver, volume, 0, 4096) == pattern(4096)


def test_a_views_data_extents_keep_a_block_zeroed_after_it_began(
    driver: LocalVolumeDriver, volume: str
) -> None:
    driver.write(volume, MiB, pattern(CBT_BLOCK_SIZE))
    view = driver.begin_backup(volume)
    driver.write_zeroes(volume, MiB, CBT_BLOCK_SIZE)  # the image frees the block
    covered = view.allocated_extents()
    assert any(start <= MiB < start + length for start, length in covered)
    assert view.read_at(MiB, CBT_BLOCK_SIZE) == pattern(CBT_BLOCK_SIZE)
    view.abort()
