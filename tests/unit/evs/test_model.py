"""Random aligned writes against an in-memory model of the disk and of the change map."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opencbr.evs.volumes import CBT_BLOCK_SIZE, DiskKey, LocalVolumeDriver

from .conftest import KEY

SIZE = 8 * CBT_BLOCK_SIZE  # 512 KiB: eight map blocks
SECTORS = SIZE // 512

write_op = st.tuples(
    st.integers(0, SECTORS - 1),  # first sector
    st.integers(1, 160),  # sector count (up to 80 KiB, so writes straddle map blocks)
    st.integers(0, 255),  # fill seed
)


def _data(count: int, seed: int) -> bytes:
    return bytes((seed + i) % 251 for i in range(count * 512))


def _blocks_of(offset: int, length: int) -> set[int]:
    return set(range(offset // CBT_BLOCK_SIZE, (offset + length - 1) // CBT_BLOCK_SIZE + 1))


def _check(key: DiskKey | None, ops: list[tuple[int, int, int]]) -> None:
    model = bytearray(SIZE)
    touched: set[int] = set()
    with tempfile.TemporaryDirectory() as root:
        driver = LocalVolumeDriver(Path(root))
        driver.create("m", SIZE, key)
        for first, count, seed in ops:
            count = min(count, SECTORS - first)
            offset, data = first * 512, _data(count, seed)
            driver.write("m", offset, data)
            model[offset : offset + len(data)] = data
            touched |= _blocks_of(offset, len(data))
        assert b"".join(driver.read("m", 0, SIZE)) == model
        expected = sorted(touched)
        marked = sorted(
            block
            for offset, length in driver.changed_extents("m")
            for block in range(offset // CBT_BLOCK_SIZE, (offset + length) // CBT_BLOCK_SIZE)
        )
        assert marked == expected
        driver.close_all()
        restarted = LocalVolumeDriver(Path(root))
        if key is not None:
            restarted.open("m", key)
        assert b"".join(restarted.read("m", 0, SIZE)) == model
        restarted.close_all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(write_op, max_size=12))
def test_plain_disk_matches_model(ops: list[tuple[int, int, int]]) -> None:
    _check(None, ops)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(write_op, max_size=12))
def test_encrypted_disk_matches_model(ops: list[tuple[int, int, int]]) -> None:
    _check(KEY, ops)
