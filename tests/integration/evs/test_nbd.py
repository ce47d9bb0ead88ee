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

from .conftest import (
    Tenant,
    TenantMaker,
    api_error,
    create_disk,
    read,
    run_jobs,
    wait_until,
    write,
)

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
    assert export["host"] == "127.0.0.1"
    assert len(export["export_name"]) >= 43
    assert status(owner, disk_id) == "in-use"

    h = connect(export["uri"])
    assert h.get_size() == GiB
    assert h.can_multi_conn()
    assert not h.is_read_only()
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


def test_qemu_img_compare_and_holes(runtime: Runtime, tenant: TenantMaker, tmp_path: Path) -> None:
    owner = tenant()
    disk_id = create_disk(runtime, owner)
    source = tmp_path / "source.img"
    with source.open("wb") as handle:  # data, a hole, data, then zeros to 1 GiB
        handle.write(os.urandom(2 * MiB))
        handle.seek(300 * MiB)
        handle.write(os.urandom(MiB + 4096))
        handle.truncate(GiB)
    write(owner, disk_id, 0, source.read_bytes()[: 2 * MiB])
    with source.open("rb") as handle:
        handle.seek(300 * MiB)
        write(owner, disk_id, 300 * MiB, handle.read(MiB + 4096))
    uri = nbd_open(owner, disk_id, read_only=True)["uri"]
    assert status(owner, disk_id) == "available"  # a read-only export leaves it free

    compared = subprocess.run(
        ["qemu-img", "compare", "-f", "raw", "-F", "raw", str(source), uri],
        capture_output=True,
        text=True,
        check=False,
    )
    assert compared.returncode == 0, compared.stdout + compared.stderr
    mapped = subprocess.run(
        ["nbdinfo", "--map", "--json", uri], capture_output=True, text=True, check=True
    )
    extents = [(e["offset"], e["length"], e["type"]) for e in json.loads(mapped.stdout)]
    assert extents[0] == (0, 2 * MiB, 0)
    assert (2 * MiB, 298 * MiB, 3) in extents  # a hole that reads as zeros
    assert (300 * MiB, MiB + 4096, 0) in extents
    assert extents[-1][0] + extents[-1][1] == GiB
    assert extents[-1][2] == 3

    written = subprocess.run(
        ["qemu-io", "-f", "raw", "-c", "write -P 0xab 0 4096", uri],
        capture_output=True,
        text=True,
        check=False,
    )
    assert written.returncode != 0 or "failed" in written.stdout + written.stderr
    assert read(owner, disk_id, 0, 4096) == source.read_bytes()[:4096]  # unchanged


def test_modes_isolation_and_end_of_an_export(runtime: Runtime, tenant: TenantMaker) -> None:
    owner, outsider = tenant(), tenant()
    disk_id = create_disk(runtime, owner)
    missing = "00000000-0000-4000-8000-000000000000"
    for disk in (disk_id, missing):  # another tenant's disk answers like a missing one
        refused = api_error(lambda d=disk: nbd_open(outsider, d))  # type: ignore[misc]
        assert (refused.status, refused.code) == (404, "EVS.0404")
        assert disk in refused.message
        closed = api_error(lambda d=disk: nbd_close(outsider, d))  # type: ignore[misc]
        assert (closed.status, closed.code) == (404, "EVS.0404")
    assert api_error(lambda: nbd_close(owner, disk_id)).code == "EVS.0420"  # none open
    for bad in ({"read_only": "perhaps"}, {"readonly": True}):  # refused, nothing opened
        refused_body = api_error(
            lambda b=bad: owner.client.request("POST", owner.path(f"/{disk_id}/nbd"), b)  # type: ignore[misc]
        )
        assert (refused_body.status, refused_body.code) == (400, "EVS.0400")
    assert api_error(lambda: owner.client.request("GET", owner.path(f"/{disk_id}/nbd"))).code == (
        "EVS.0420"
    )

    export = nbd_open(owner, disk_id)
    assert nbd_open(owner, disk_id) == export  # opening again answers the same export
    conflict = api_error(lambda: nbd_open(owner, disk_id, read_only=True))
    assert (conflict.status, conflict.code) == (409, "EVS.0421")
    in_use = api_error(lambda: owner.client.request("DELETE", owner.path(f"/{disk_id}")))
    assert in_use.code == "EVS.0409"
    assert "in-use" in in_use.message

    h = connect(export["uri"])
    assert h.pread(4096, 0) == bytes(4096)
    nbd_close(owner, disk_id)
    assert status(owner, disk_id) == "available"
    nbd = libnbd()

    def refused() -> bool:
        try:
            h.pread(4096, 0)
        except nbd.Error:
            return True
        return False

    wait_until(refused, timeout=10)  # the open connection dies with the export
    with pytest.raises(nbd.Error):
        connect(export["uri"])  # and so does its name
    again = nbd_open(owner, disk_id, read_only=True)
    assert again["export_name"] != export["export_name"]
    owner.client.request("DELETE", owner.path(f"/{disk_id}"))  # ends a read-only export
    run_jobs(runtime)
    with pytest.raises(nbd.Error):
        connect(again["uri"])


def test_a_servers_disks_in_boot_order(runtime: Runtime, tenant: TenantMaker) -> None:
    owner, outsider = tenant(), tenant()
    body = {"server": {"name": "vm", "system_disk": {"size": 1}, "data_disks": [{"size": 2}]}}
    server_id = owner.client.request("POST", f"/v1/{owner.project}/servers", body)["server"]["id"]
    run_jobs(runtime)
    path = f"/v1/{owner.project}/servers/{server_id}/nbd"
    shown = owner.client.request("GET", f"/v1/{owner.project}/servers/{server_id}")["server"]
    disks = [d["id"] for d in shown["volumes_attached"]]  # system disk first

    hidden = api_error(
        lambda: outsider.client.request("POST", f"/v1/{outsider.project}/servers/{server_id}/nbd")
    )
    assert (hidden.status, hidden.code) == (404, "EVS.0405")
    exports = owner.client.request("POST", path, {"read_only": True})["exports"]
    assert [e["volume_id"] for e in exports] == disks
    sizes = []
    for export in exports:
        h = connect(export["uri"])
        assert h.is_read_only()
        sizes.append(h.get_size())
        h.shutdown()
    assert sizes == [GiB, 2 * GiB]
    assert {status(owner, d) for d in disks} == {"in-use"}  # attached, as before
    assert owner.client.request("DELETE", path)["closed"] == 2
    assert {status(owner, d) for d in disks} == {"in-use"}  # still attached


def test_an_exported_disk_is_not_offered_to_another_project(
    runtime: Runtime, tenant: TenantMaker
) -> None:
    owner = tenant()
    disk_id = create_disk(runtime, owner)
    nbd_open(owner, disk_id, read_only=True)  # a read-only export leaves the disk available
    path = f"/v2/{owner.project}/os-volume-transfer"
    body = {"transfer": {"volume_id": disk_id, "name": "give"}}
    refused = api_error(lambda: owner.client.request("POST", path, body))
    assert (refused.status, refused.code) == (400, "EVS.0422")  # its name would still read it
    assert status(owner, disk_id) == "available"
    nbd_close(owner, disk_id)
    offered = owner.client.request("POST", path, body)["transfer"]
    assert offered["volume_id"] == disk_id


def test_an_exported_disk_neither_grows_nor_rolls_back(
    runtime: Runtime, tenant: TenantMaker
) -> None:
    """The export told its client the disk's size and bytes: close it first."""
    owner = tenant()
    disk_id = create_disk(runtime, owner)
    snapshots = f"/v2/{owner.project}/cloudsnapshots"
    body = {"snapshot": {"volume_id": disk_id, "name": "s"}}
    snapshot = owner.client.request("POST", snapshots, body)["snapshot"]["id"]
    run_jobs(runtime)
    grow = f"/v2.1/{owner.project}/cloudvolumes/{disk_id}/action"

    def extend() -> Any:
        return owner.client.request("POST", grow, {"os-extend": {"new_size": 2}})

    def rollback() -> Any:
        return owner.client.request("POST", f"{snapshots}/{snapshot}/rollback", {"rollback": {}})

    nbd_open(owner, disk_id, read_only=True)
    for call in (extend, rollback):
        refused = api_error(call)
        assert (refused.status, refused.code) == (409, "EVS.0421")
    assert status(owner, disk_id) == "available"
    nbd_close(owner, disk_id)
    extend()
    run_jobs(runtime)
    assert owner.client.request("GET", owner.path(f"/{disk_id}"))["volume"]["size"] == 2
