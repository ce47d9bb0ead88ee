"""Disks through the HTTP API on a live server (SQLite and PostgreSQL): data path, encryption,
change map, restarts and refused input."""

from __future__ import annotations

import os

import httpx
import pytest

from opencbr.api.runtime import build_runtime
from opencbr.core.context import Runtime
from opencbr.evs.service import VOLUME_FROM_BACKUP
from opencbr.evs.volumes import CBT_BLOCK_SIZE
from tests.conftest import LiveServer

from .conftest import (
    TenantMaker,
    api_error,
    client_for,
    create_disk,
    read,
    run_jobs,
    write,
)

GiB = 1 << 30
MiB = 1 << 20
PATTERNS = [
    (0, os.urandom(MiB + 512)),
    (5 * MiB + 4096, os.urandom(3 * MiB)),
    (700 * MiB + 512, os.urandom(1536)),
    (GiB - 8192, os.urandom(8192)),
]


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_patterns_read_back(runtime: Runtime, tenant: TenantMaker, encrypted: bool) -> None:
    owner = tenant()
    disk_id = create_disk(runtime, owner, encrypted=encrypted)
    shown = owner.client.request("GET", owner.path(f"/{disk_id}"))["volume"]
    assert shown["encrypted"] is encrypted
    assert shown["metadata"]["__system__encrypted"] == ("1" if encrypted else "0")
    for offset, data in PATTERNS:
        answer = write(owner, disk_id, offset, data)
        assert answer["length"] == len(data)
    for offset, data in PATTERNS:
        assert read(owner, disk_id, offset, len(data)) == data
    assert read(owner, disk_id, 2 * MiB, 4096) == bytes(4096)  # never written
    assert read(owner, disk_id, 100, 1000) == PATTERNS[0][1][100:1100]  # unaligned read
    if encrypted:
        image = runtime.settings.data_dir / "volumes" / f"{disk_id}.img"
        with open(image, "rb") as handle:
            assert handle.read(4096) != PATTERNS[0][1][:4096]  # ciphertext at rest


def test_change_map_marks_exactly_the_written_blocks(runtime: Runtime, tenant: TenantMaker) -> None:
    owner = tenant()
    disk_id = create_disk(runtime, owner)
    expected: set[int] = set()
    for offset, data in PATTERNS:
        write(owner, disk_id, offset, data)
        first, last = offset // CBT_BLOCK_SIZE, (offset + len(data) - 1) // CBT_BLOCK_SIZE
        expected.update(range(first, last + 1))
    answer = owner.client.request(
        "GET", owner.path(f"/{disk_id}/extents"), params={"changed": True}
    )
    marked: set[int] = set()
    for extent in answer["extents"]:
        assert extent["offset"] % CBT_BLOCK_SIZE == 0
        start = extent["offset"] // CBT_BLOCK_SIZE
        marked.update(range(start, start + -(-extent["length"] // CBT_BLOCK_SIZE)))
    assert marked == expected


def test_restart_keeps_every_byte(runtime: Runtime, tenant: TenantMaker) -> None:
    owner = tenant()
    plain = create_disk(runtime, owner, name="plain")
    secret = create_disk(runtime, owner, name="secret", encrypted=True)
    for disk_id in (plain, secret):
        for offset, data in PATTERNS:
            write(owner, disk_id, offset, data)
    again = build_runtime(runtime.settings)  # a new process on the same data dir and database
    try:
        with LiveServer(again) as restarted:
            client = client_for(restarted.url, owner.creds)
            for disk_id in (plain, secret):
                for offset, data in PATTERNS:
                    path = owner.path(f"/{disk_id}/data")
                    got = b"".join(client.download(path, {"offset": offset, "length": len(data)}))
                    assert got == data
    finally:
        again.database.dispose()


def test_bad_ranges_change_nothing(runtime: Runtime, tenant: TenantMaker) -> None:
    owner = tenant()
    disk_id = create_disk(runtime, owner)
    original = os.urandom(8192)
    write(owner, disk_id, 0, original)
    cases = [
        (GiB - 4096, bytes(8192)),  # past the end
        (100, bytes(512)),  # unaligned offset
        (0, bytes(700)),  # unaligned length
        (-512, bytes(512)),  # negative
    ]
    for offset, data in cases:
        error = api_error(lambda o=offset, d=data: write(owner, disk_id, o, d))
        assert (error.status, error.code) == (400, "EVS.0412"), error.message
    error = api_error(lambda: read(owner, disk_id, GiB - 10, 20))
    assert (error.status, error.code) == (400, "EVS.0412")
    assert read(owner, disk_id, 0, 8192) == original
    changed = owner.client.request(
        "GET", owner.path(f"/{disk_id}/extents"), params={"changed": True}
    )["extents"]
    assert changed == [{"offset": 0, "length": CBT_BLOCK_SIZE}]


def test_unknown_and_foreign_disks_answer_alike(runtime: Runtime, tenant: TenantMaker) -> None:
    owner, outsider = tenant(), tenant()
    disk_id = create_disk(runtime, owner)
    missing = "00000000-0000-4000-8000-000000000000"
    for target in (disk_id, missing, "not-a-uuid"):
        for call in (
            lambda t=target: outsider.client.request("GET", outsider.path(f"/{t}")),
            lambda t=target: write(outsider, t, 0, bytes(512)),
            lambda t=target: read(outsider, t, 0, 512),
            lambda t=target: outsider.client.request("DELETE", outsider.path(f"/{t}")),
        ):
            error = api_error(call)
            assert (error.status, error.code) == (404, "EVS.0404")
            assert target in error.message
    listed = outsider.client.request("GET", outsider.path("/detail"))
    assert listed["count"] == 0
    # the owner's disk is untouched
    assert owner.client.request("GET", owner.path(f"/{disk_id}"))["volume"]["status"] == (
        "available"
    )


def test_encryption_needs_the_agency(runtime: Runtime, tenant: TenantMaker) -> None:
    owner = tenant(agency=False)
    body = {
        "volume": {
            "size": 1,
            "availability_zone": "az1",
            "volume_type": "SAS",
            "metadata": {"__system__encrypted": "1"},
        }
    }
    error = api_error(
        lambda: owner.client.request("POST", f"/v2.1/{owner.project}/cloudvolumes", body)
    )
    assert (error.status, error.code) == (403, "EVS.0403")
    assert "EVSAccessKMS" in error.message
    assert owner.client.request("GET", owner.path("/detail"))["count"] == 0
    assert run_jobs(runtime) == 0


def test_validation_errors_use_the_evs_envelope(server: LiveServer, tenant: TenantMaker) -> None:
    owner = tenant()
    for volume in (
        {"size": 1, "volume_type": "SAS"},  # no availability zone
        {"size": 0, "availability_zone": "az1", "volume_type": "SAS"},
        {"size": 1, "availability_zone": "az1", "volume_type": "FLOPPY"},
    ):
        error = api_error(
            lambda v=volume: owner.client.request(
                "POST", f"/v2.1/{owner.project}/cloudvolumes", {"volume": v}
            )
        )
        assert (error.status, error.code) == (400, "EVS.0400")
    raw = httpx.get(server.url + owner.path("/detail"))
    assert raw.status_code == 401


def test_create_from_backup_without_the_backup_service(
    runtime: Runtime, tenant: TenantMaker
) -> None:
    owner = tenant()
    runtime.parts.pop(VOLUME_FROM_BACKUP)
    body = {
        "volume": {
            "availability_zone": "az1",
            "volume_type": "SAS",
            "backup_id": "00000000-0000-4000-8000-000000000001",
        }
    }
    error = api_error(
        lambda: owner.client.request("POST", f"/v2.1/{owner.project}/cloudvolumes", body)
    )
    assert (error.status, error.code) == (501, "EVS.0414")


def test_show_job_and_delete(runtime: Runtime, tenant: TenantMaker) -> None:
    owner = tenant()
    body = {"volume": {"size": 2, "availability_zone": "az1", "volume_type": "SSD", "name": "j"}}
    created = owner.client.request("POST", f"/v2.1/{owner.project}/cloudvolumes", body)
    job_path = f"/v1/{owner.project}/jobs/{created['job_id']}"
    job = owner.client.request("GET", job_path)
    assert job["status"] == "INIT"
    assert job["entities"]["volume_id"] == created["volume_ids"][0]
    run_jobs(runtime)
    job = owner.client.request("GET", job_path)
    assert (job["status"], job["job_type"]) == ("SUCCESS", "createVolume")
    assert job["entities"]["size"] == 2
    disk_id = created["volume_ids"][0]
    deleted = owner.client.request("DELETE", owner.path(f"/{disk_id}"))
    assert owner.client.request("GET", owner.path(f"/{disk_id}"))["volume"]["status"] == (
        "deleting"
    )
    run_jobs(runtime)
    error = api_error(lambda: owner.client.request("GET", owner.path(f"/{disk_id}")))
    assert error.code == "EVS.0404"
    assert not (runtime.settings.data_dir / "volumes" / f"{disk_id}.img").exists()
    done = owner.client.request("GET", f"/v1/{owner.project}/jobs/{deleted['job_id']}")
    assert done["status"] == "SUCCESS"
