"""NBD export of disks on a live server (SQLite and PostgreSQL), read and written by real
clients: libnbd, qemu-img, qemu-io, nbdinfo."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from opencbr.core.context import Runtime
from opencbr.evs.service import volume_driver
from tests.nbd_tools import libnbd, need_tools

from .conftest import Tenant, TenantMaker, api_error, create_disk, read, wait_until, write

MiB = 1 << 20
GiB = 1 << 30


def nbd_open(tenant: Tenant, disk_id: str, read_only: bool = False) -> dict[str, Any]:
    body = {"read_only": True} if read_only else None
    export: dict[str, Any] = tenant.client.request("POST", tenant.path(f"/{disk_id}/nbd"), body)[
        "export"
    ]
    return export


def nbd_close(tenant: Tenant, disk_id: str) -> None:
    tenant.client.request("DELETE", tenant.path(f"/{disk_id}/nbd"))


def status(tenant: Tenant, disk_id: str) -> str:
    shown: str = tenant.client.request("GET", tenant.path(f"/{disk_id}"))["volume"]["status"]
    return shown


def connect(uri: str) -> Any:
    handle = libnbd().NBD()
    handle.connect_uri(uri)
    return handle


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tools()


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_reads_and_writes_through_the_volume(
    runtime: Runtime, tenant: TenantMaker, encrypted: bool
) -> None:
    owner = tenant()
    disk_id = create_disk(runtime, owner, encrypted=encrypted)
    head = os.urandom(MiB)
    write(owner, disk_id, 0, head)
    export = nbd_open(owner, disk_id)
    assert export["uri"] == f"nbd://{export['host']}:{export['port']}/{export['export_name']}"
    assert export["host"] == "127.0.0.1" and len(export["export_name"]) >= 43
    assert status(owner, disk_id) == "in-use"

    h = connect(export["uri"])
    assert h.get_size() == GiB
    assert h.can_multi_conn() and not h.is_read_only()
    assert h.pread(MiB, 0) == head
    tail = os.urandom(64 * 1024)
    h.pwrite(tail, 512 * MiB + 4096)
    h.flush()
    assert read(owner, disk_id, 512 * MiB + 4096, len(tail)) == tail  # seen by the API
    extents = owner.client.request(
        "GET", owner.path(f"/{disk_id}/extents"), params={"changed": "true"}
    )["extents"]
    assert {"offset": 512 * MiB, "length": 128 * 1024} in extents  # two CBT blocks
    h.zero(MiB, 0)
    assert read(owner, disk_id, 0, MiB) == bytes(MiB)
    h.shutdown()

    image = (volume_driver(runtime).root / f"{disk_id}.img").read_bytes()[512 * MiB + 4096 :][:64]
    assert (image == tail[:64]) is not encrypted  # ciphertext on disk when encrypted
    nbd_close(owner, disk_id)
    assert status(owner, disk_id) == "available"
