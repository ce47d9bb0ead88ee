"""The change map: granularity, merged runs, file format and recovery after a stop."""

from __future__ import annotations

import struct
from pathlib import Path

from opencbr.evs.volumes import CBT_BLOCK_SIZE, LocalVolumeDriver
from opencbr.evs.volumes.changemap import ChangeMap

from .conftest import DISK_SIZE

B = CBT_BLOCK_SIZE


def test_runs_are_merged_and_clipped(tmp_path: Path) -> None:
    size = 20 * B + 4096  # the last block is short
    cmap = ChangeMap.create(tmp_path / "m.cbt", size)
    cmap.mark(0, 512)
    cmap.mark(B + 512, B)  # blocks 1 and 2
    cmap.mark(3 * B, 1)  # block 3 joins the run
    cmap.mark(7 * B, 9 * B)  # blocks 7..15 cross byte boundaries
    cmap.mark(20 * B, 4096)
    assert cmap.extents() == [(0, 4 * B), (7 * B, 9 * B), (20 * B, 4096)]
    reloaded = ChangeMap.load(tmp_path / "m.cbt")
    assert reloaded.extents() == cmap.extents()


def test_file_format_is_stable(tmp_path: Path) -> None:
    cmap = ChangeMap.create(tmp_path / "m.cbt", 16 * B)
    cmap.mark(B, 1)
    cmap.mark(9 * B, 1)
    raw = (tmp_path / "m.cbt").read_bytes()
    assert raw[:20] == b"OCBRCBT1" + struct.pack("<IQ", B, 16 * B)
    assert raw[20:32] == bytes(12)
    assert raw[32:] == bytes([0b0000_0010, 0b0000_0010])


def test_writes_mark_exactly_their_blocks(driver: LocalVolumeDriver, volume: str) -> None:
    driver.write(volume, B - 512, b"x" * 1024)  # blocks 0 and 1
    driver.write(volume, 10 * B, b"y" * (2 * B))  # blocks 10 and 11
    driver.write(volume, 63 * B - 512, b"z" * 512)  # block 62
    assert driver.changed_extents(volume) == [(0, 2 * B), (10 * B, 2 * B), (62 * B, B)]


def test_damaged_map_means_everything_changed(tmp_path: Path) -> None:
    first = LocalVolumeDriver(tmp_path)
    first.create("disk", DISK_SIZE)
    first.close_all()
    (tmp_path / "disk.cbt").write_bytes(b"garbage")
    second = LocalVolumeDriver(tmp_path)
    assert second.changed_extents("disk") == [(0, DISK_SIZE)]
    second.close_all()


def test_stop_during_backup_folds_the_view_map_back(tmp_path: Path) -> None:
    first = LocalVolumeDriver(tmp_path)
    first.create("disk", DISK_SIZE)
    first.write("disk", 0, b"a" * 512)
    view = first.begin_backup("disk")
    first.write("disk", 5 * B, b"b" * 512)
    assert view.changed_extents() == [(0, B)]
    # The process stops here: no commit, no abort, files left as they are.
    second = LocalVolumeDriver(tmp_path)
    assert second.changed_extents("disk") == [(0, B), (5 * B, B)]
    assert not (tmp_path / "disk.cbt.view").exists()
    assert not (tmp_path / "disk.cow").exists()
    second.close_all()


def test_stop_between_map_swap_steps_loses_nothing(tmp_path: Path) -> None:
    first = LocalVolumeDriver(tmp_path)
    first.create("disk", DISK_SIZE)
    first.write("disk", 2 * B, b"a" * 512)
    first.close_all()
    (tmp_path / "disk.cbt").rename(tmp_path / "disk.cbt.view")  # renamed, new map not yet made
    second = LocalVolumeDriver(tmp_path)
    assert second.changed_extents("disk") == [(2 * B, B)]
    second.close_all()
