"""EVS through the vendor SDK (huaweicloudsdkevs v2) on a real loopback server with workers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkevs.v2 import EvsClient
from huaweicloudsdkevs.v2 import model as evs

from opencbr.core.context import Runtime
from opencbr.core.jobs import WorkerPool
from opencbr.evs.jobs import handlers as evs_handlers
from opencbr.iam.agencies import EVS_KMS_AGENCY, create_agency
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows
from tests.e2e.sdk import project_client

GiB = 1 << 30


@pytest.fixture
def workers(runtime: Runtime) -> Iterator[WorkerPool]:
    pool = WorkerPool(
        runtime.database,
        evs_handlers(runtime),
        threads=2,
        poll_seconds=0.05,
    ).start()
    yield pool
    pool.stop()


def _wait_job(client: Any, job_id: str) -> Any:
    deadline = time.monotonic() + 30
    while True:
        job = client.show_job(evs.ShowJobRequest(job_id=job_id))
        if job.status in ("SUCCESS", "FAIL") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def _create(client: Any, name: str, size: int = 10, **extra: Any) -> Any:
    option = evs.CreateVolumeOption(
        availability_zone="az1", volume_type="SAS", size=size, name=name, **extra
    )
    return client.create_volume(
        evs.CreateVolumeRequest(body=evs.CreateVolumeRequestBody(volume=option))
    )


def test_sdk_create_show_list_delete(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    creds = make_tenant()
    client = project_client(EvsClient, server.url, creds)
    created = _create(client, "sdk-disk", tags={"team": "a"})
    assert created.status_code == 202
    [volume_id] = created.volume_ids
    job = _wait_job(client, created.job_id)
    assert (job.status, job.job_type) == ("SUCCESS", "createVolume")
    assert job.entities.volume_id == volume_id
    assert job.entities.size == 10

    volume = client.show_volume(evs.ShowVolumeRequest(volume_id=volume_id)).volume
    assert (volume.id, volume.name, volume.status, volume.size) == (
        volume_id,
        "sdk-disk",
        "available",
        10,
    )
    assert volume.encrypted is False
    assert volume.bootable == "false"
    assert volume.tags == {"team": "a"}
    assert volume.os_vol_tenant_attrtenant_id == creds.projects["region-1"]

    listed = client.list_volumes(evs.ListVolumesRequest(limit=10))
    assert listed.count == 1
    assert [v.id for v in listed.volumes] == [volume_id]
    assert client.list_volumes(evs.ListVolumesRequest(name="other")).count == 0

    deleted = client.delete_volume(evs.DeleteVolumeRequest(volume_id=volume_id))
    assert _wait_job(client, deleted.job_id).status == "SUCCESS"
    with pytest.raises(ClientRequestException) as caught:
        client.show_volume(evs.ShowVolumeRequest(volume_id=volume_id))
    assert (caught.value.status_code, caught.value.error_code) == (404, "EVS.0404")


def test_sdk_encrypted_disk_needs_the_agency(
    server: LiveServer, make_tenant: TenantFactory, runtime: Runtime, workers: WorkerPool
) -> None:
    creds = make_tenant()
    client = project_client(EvsClient, server.url, creds)
    with pytest.raises(ClientRequestException) as caught:
        _create(client, "secret", metadata={"__system__encrypted": "1"})
    assert (caught.value.status_code, caught.value.error_code) == (403, "EVS.0403")
    assert "EVSAccessKMS" in caught.value.error_msg
    with runtime.database.unit_of_work() as session:
        create_agency(session, creds.domain_id, EVS_KMS_AGENCY, "op_svc_evs")
    created = _create(client, "secret", metadata={"__system__encrypted": "1"})
    assert _wait_job(client, created.job_id).status == "SUCCESS"
    volume = client.show_volume(evs.ShowVolumeRequest(volume_id=created.volume_ids[0])).volume
    assert volume.encrypted is True
    assert volume.metadata["__system__encrypted"] == "1"
    assert volume.metadata["__system__cmkid"]

    # An encrypted disk grows, takes a snapshot and rolls back like a plain one.
    disk, data, project = (
        volume.id,
        flows.data_client(server.url, creds),
        creds.projects["region-1"],
    )
    flows.write(data, project, disk, 0, b"E" * 4096)
    option = evs.CreateSnapshotOption(volume_id=disk, name="enc")
    snapshot = client.create_snapshot(
        evs.CreateSnapshotRequest(body=evs.CreateSnapshotRequestBody(snapshot=option))
    ).snapshot
    show = evs.ShowSnapshotRequest(snapshot_id=snapshot.id)
    flows.wait_for(
        "snapshot", lambda: client.show_snapshot(show).snapshot.status, lambda s: s == "available"
    )
    grow = evs.ResizeVolumeRequestBody(os_extend=evs.OsExtend(new_size=11))
    job = client.resize_volume(evs.ResizeVolumeRequest(volume_id=disk, body=grow)).job_id
    assert _wait_job(client, job).status == "SUCCESS"
    flows.write(data, project, disk, 0, b"F" * 4096)
    flows.write(data, project, disk, 10 * GiB, b"G" * 4096)
    back = evs.RollbackSnapshotRequestBody(rollback=evs.RollbackSnapshotOption(volume_id=disk))
    client.rollback_snapshot(evs.RollbackSnapshotRequest(snapshot_id=snapshot.id, body=back))
    flows.wait_for("rollback", lambda: flows.disk_status(client, disk), lambda s: s == "available")
    assert flows.read(data, project, disk, 0, 4096) == b"E" * 4096
    assert flows.read(data, project, disk, 10 * GiB, 4096) == bytes(4096)
    assert client.show_volume(evs.ShowVolumeRequest(volume_id=disk)).volume.size == 11


def test_sdk_errors_use_the_evs_envelope(server: LiveServer, make_tenant: TenantFactory) -> None:
    creds = make_tenant()
    client = project_client(EvsClient, server.url, creds)
    with pytest.raises(ClientRequestException) as caught:
        _create(client, "bad", size=0)
    assert (caught.value.status_code, caught.value.error_code) == (400, "EVS.0400")
    with pytest.raises(ClientRequestException) as caught:
        client.create_volume(
            evs.CreateVolumeRequest(
                body=evs.CreateVolumeRequestBody(volume=evs.CreateVolumeOption(size=1))
            )
        )
    assert (caught.value.status_code, caught.value.error_code) == (400, "EVS.0400")
    with pytest.raises(ClientRequestException) as caught:
        client.show_job(evs.ShowJobRequest(job_id="00000000-0000-4000-8000-000000000000"))
    assert (caught.value.status_code, caught.value.error_code) == (404, "EVS.0418")
