"""Fixtures for the volume-driver tests: a driver on a temporary directory, plain or encrypted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opencbr.evs.volumes import DiskKey, LocalVolumeDriver

MiB = 1 << 20
DISK_SIZE = 4 * MiB

# A fixed key keeps failures reproducible; its halves differ as XTS requires.
KEY = DiskKey(bytes(range(64)))


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[LocalVolumeDriver]:
    built = LocalVolumeDriver(tmp_path / "volumes")
    yield built
    built.close_all()


@pytest.fixture(params=["plain", "encrypted"])
def key(request: pytest.FixtureRequest) -> DiskKey | None:
    return KEY if request.param == "encrypted" else None


@pytest.fixture
def volume(driver: LocalVolumeDriver, key: DiskKey | None) -> str:
    driver.create("vol-1", DISK_SIZE, key)
    return "vol-1"


def read_all(driver: LocalVolumeDriver, volume_id: str, offset: int = 0, length: int = -1) -> bytes:
    if length < 0:
        length = driver.size(volume_id) - offset
    return b"".join(driver.read(volume_id, offset, length))


def pattern(length: int, seed: int = 0) -> bytes:
    """Recognisable, non-repeating-within-a-sector bytes."""
    unit = f"OPENCBR-PATTERN-{seed:08d}-".encode()
    return (unit * (length // len(unit) + 1))[:length]
