"""The NBD server as a process of its own (`opencbr nbd serve`) beside an API without one:
the API names the running NBD process in the exports it opens, real clients read and write
through it, and without one running an export is refused and nothing changes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from opencbr.core.clock import utcnow
from opencbr.core.context import Runtime
from opencbr.core.ids import new_uuid
from opencbr.core.settings import Settings
from opencbr.evs.models import Disk, DiskStatus, NbdServerRecord
from opencbr.evs.nbd import nbd_server
from opencbr.evs.nbd.registry import Registration, live_server
from opencbr.evs.service import volume_driver
from tests.conftest import ROOT_KEY, LiveServer
from tests.nbd_tools import libnbd, need_tools

from .conftest import Tenant, TenantMaker, api_error, create_disk, read, write
from .test_nbd import MiB, nbd_open, status

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
OPENCBR = str(Path(sys.executable).parent / "opencbr")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        root_key=ROOT_KEY,
        nbd_embedded=False,
        run_workers=False,  # as API processes beside workers of their own; tests run the jobs
    )


@contextmanager
def nbd_process(settings: Settings) -> Iterator[None]:
    """`opencbr nbd serve` on the deployment's data directory and database, until it serves."""
    assert settings.database_url is not None
    process = subprocess.Popen(
        [OPENCBR, "nbd", "serve", "--data-dir", str(settings.data_dir)],
        env={
            **os.environ,
            "OPENCBR_ROOT_KEY": ROOT_KEY,
            "OPENCBR_DATABASE_URL": settings.database_url,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    said = []
    for line in process.stdout:  # ends if the process does
        said.append(line)
        if "NBD server on" in line:
            break
    try:
        assert process.poll() is None, "".join(said)
        yield
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        process.stdout.close()


def cli(server: LiveServer, tenant: Tenant, tmp_path: Path, *args: str) -> Any:
    env = {
        **os.environ,
        "OPENCBR_ENDPOINT": server.url,
        "OPENCBR_ACCESS_KEY": tenant.creds.access_key,
        "OPENCBR_SECRET_KEY": tenant.creds.secret_key,
        "OPENCBR_PROJECT_ID": tenant.project,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    done = subprocess.run(
        [OPENCBR, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


def qemu_io(uri: str, command: str) -> str:
    done = subprocess.run(
        ["qemu-io", "-f", "raw", "-c", command, uri], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed" not in done.stdout, done.stdout
    return done.stdout


def test_an_api_without_nbd_names_the_nbd_process(
    runtime: Runtime, server: LiveServer, tenant: TenantMaker, tmp_path: Path
) -> None:
    need_tools("nbdkit", "qemu-io")
    owner = tenant()
    disk_id = create_disk(runtime, owner)
    write(owner, disk_id, 0, b"\x5a" * MiB)
    refused = api_error(lambda: nbd_open(owner, disk_id))
    assert (refused.status, refused.code) == (503, "EVS.0436")
    assert "opencbr nbd serve" in refused.message
    assert status(owner, disk_id) == "available"  # nothing changed

    with nbd_process(runtime.settings):
        export = cli(server, owner, tmp_path, "disk", "nbd", "open", disk_id, "--json")
        assert export["uri"].startswith("nbd://127.0.0.1:")
        assert export["tls"] is None
        assert status(owner, disk_id) == "in-use"
        assert "read 1048576/1048576" in qemu_io(export["uri"], "read -P 0x5a 0 1M")
        qemu_io(export["uri"], "write -P 0x3c 1M 64k")
        assert read(owner, disk_id, MiB, 65536) == b"\x3c" * 65536  # through the volume layer
        cli(server, owner, tmp_path, "disk", "nbd", "close", disk_id, "--json")
    assert api_error(lambda: nbd_open(owner, disk_id)).code == "EVS.0436"  # it deregistered


def test_only_live_servers_are_named(runtime: Runtime) -> None:
    database = runtime.database
    with database.unit_of_work() as session:
        session.add(
            NbdServerRecord(
                id=new_uuid(), address="gone:1", tls="", seen_at=utcnow() - timedelta(minutes=5)
            )
        )
    with database.unit_of_work() as session:
        assert live_server(session) is None  # its record is stale: it died without removing it
    live = Registration(database, "nbd.example.com:10809", "psk")
    live.start()
    assert live.wait_registered()
    with database.unit_of_work() as session:
        named = live_server(session)
        assert named is not None
        assert (named.address, named.tls) == ("nbd.example.com:10809", "psk")
    live.stop()
    with database.unit_of_work() as session:
        assert live_server(session) is None
        assert session.get(NbdServerRecord, live.id) is None


def test_a_process_without_job_workers_leaves_a_filling_to_the_copy(
    runtime: Runtime, tenant: TenantMaker, caplog: pytest.LogCaptureFixture
) -> None:
    """A disk whose copy from a backup runs (the job in another process): an NBD server in a
    process without job workers, as `opencbr nbd serve`, refuses connections to its export
    until the copy ends and never takes the disk's filling, which would keep the copy job
    from ever running."""
    need_tools("nbdkit")
    owner = tenant()
    disk_id = create_disk(runtime, owner)
    with runtime.database.unit_of_work() as session:  # as CreateVolume with backup_id leaves it
        disk = session.get(Disk, disk_id)
        assert disk is not None
        disk.status, disk.source_backup_id = DiskStatus.CREATING, new_uuid()
    assert nbd_server(runtime).registration.wait_registered()  # this process's: no job workers
    export = nbd_open(owner, disk_id)
    nbd = libnbd()
    with pytest.raises(nbd.Error):  # nbdkit answers a refused open as an unknown export
        nbd.NBD().connect_uri(export["uri"])
    assert not (volume_driver(runtime).root / f"{disk_id}.fill.lock").exists()
    tried = [r.getMessage() for r in caplog.records if r.name.startswith("opencbr.evs")]
    assert tried == []  # it never opened the backup to serve the disk's filling
    with runtime.database.unit_of_work() as session:  # the copy ends (in the other process)
        disk = session.get(Disk, disk_id)
        assert disk is not None
        disk.status = DiskStatus.AVAILABLE
    handle = nbd.NBD()
    handle.connect_uri(export["uri"])  # the same export is served from then on
    assert handle.pread(4096, 0) == bytes(4096)
    handle.shutdown()
