"""Every file the service creates under its data directory is its user's alone (0600, and
0700 for directories) whatever the umask: the SQLite database with its -wal and -shm files, the
disk images and their metadata, the backup store's packs and indexes."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from opencbr.core.jobs import WorkerPool
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The worst umask (none at all), set before the runtime makes anything."""
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database where `opencbr serve` keeps it: in the data directory."""
    return f"sqlite:///{tmp_path / 'data' / 'opencbr.db'}"


def _modes(root: Path) -> dict[str, str]:
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def test_everything_under_the_data_directory_is_private(
    server: LiveServer, workers: WorkerPool, make_tenant: TenantFactory, tmp_path: Path
) -> None:
    clients = flows.tenant_clients(server.url, make_tenant())
    disk = flows.create_disk(clients.evs, "private")
    flows.write(clients.data, clients.project, disk, 0, b"p" * 4096)
    vault = flows.disk_vault(clients.cbr, "private", 10, [disk])
    backup = flows.back_up(clients.cbr, vault.id, "private")
    _, job = flows.disk_from_backup(clients.evs, backup.id, "copy")
    assert job.status == "SUCCESS"

    data = tmp_path / "data"
    modes = _modes(data)
    assert {"opencbr.db", "opencbr.db-wal", "opencbr.db-shm"} <= modes.keys()
    assert any(name.startswith("store/") for name in modes)
    assert any(name.startswith("volumes/") for name in modes)
    loose = {
        name: mode
        for name, mode in modes.items()
        if mode != ("0o700" if (data / name).is_dir() else "0o600")
    }
    assert loose == {}
