"""Helpers for end-to-end tests that move real bytes: disks, vaults, backups, jobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from huaweicloudsdkcbr.v1 import CbrClient
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkevs.v2 import EvsClient
from huaweicloudsdkevs.v2 import model as evs

from opencbr.cli.client import Client, Profile
from opencbr.iam.service import TenantCredentials
from tests.e2e.sdk import project_client


def wait_for(
    what: str, probe: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 60
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: last {value!r}")
        time.sleep(0.1)


def data_client(url: str, creds: TenantCredentials, region: str = "region-1") -> Client:
    return Client(Profile(url, creds.access_key, creds.secret_key, creds.projects[region]))


class TenantClients(NamedTuple):
    """What a disk-and-backup test drives, all acting in the tenant's project of one region."""

    project: str
    evs: Any  # huaweicloudsdkevs EvsClient
    cbr: Any  # huaweicloudsdkcbr CbrClient
    data: Client  # our disk data paths and server API, signed like the SDK


def tenant_clients(url: str, creds: TenantCredentials, region: str = "region-1") -> TenantClients:
    return TenantClients(
        creds.projects[region],
        project_client(EvsClient, url, creds, region),
        project_client(CbrClient, url, creds, region),
        data_client(url, creds, region),
    )


def create_disk(evs_client: Any, name: str, size_gb: int = 1, **extra: Any) -> str:
    option = evs.CreateVolumeOption(
        availability_zone="az1", volume_type="SAS", size=size_gb, name=name, **extra
    )
    created = evs_client.create_volume(
        evs.CreateVolumeRequest(body=evs.CreateVolumeRequestBody(volume=option))
    )
    wait_for(
        "disk",
        lambda: evs_client.show_job(evs.ShowJobRequest(job_id=created.job_id)).status,
        lambda s: s in ("SUCCESS", "FAIL"),
    )
    volume_id: str = created.volume_ids[0]
    assert disk_status(evs_client, volume_id) == "available"
    return volume_id


def disk_from_backup(evs_client: Any, backup_id: str, name: str, **extra: Any) -> tuple[str, Any]:
    option = evs.CreateVolumeOption(
        availability_zone="az1", volume_type="SAS", backup_id=backup_id, name=name, **extra
    )
    created = evs_client.create_volume(
        evs.CreateVolumeRequest(body=evs.CreateVolumeRequestBody(volume=option))
    )
    job = wait_for(
        "disk from backup",
        lambda: evs_client.show_job(evs.ShowJobRequest(job_id=created.job_id)),
        lambda j: j.status in ("SUCCESS", "FAIL"),
    )
    return created.volume_ids[0], job


def disk_status(evs_client: Any, volume_id: str) -> str:
    status: str = evs_client.show_volume(evs.ShowVolumeRequest(volume_id=volume_id)).volume.status
    return status


def write(client: Client, project_id: str, disk_id: str, offset: int, data: bytes) -> None:
    client.upload(
        f"/v2/{project_id}/cloudvolumes/{disk_id}/data", [data], len(data), {"offset": offset}
    )


def read(client: Client, project_id: str, disk_id: str, offset: int, length: int) -> bytes:
    path = f"/v2/{project_id}/cloudvolumes/{disk_id}/data"
    return b"".join(client.download(path, {"offset": offset, "length": length}))


def disk_vault(cbr_client: Any, name: str, size_gb: int, disk_ids: list[str]) -> Any:
    vault = cbr.VaultCreate(
        name=name,
        resources=[cbr.ResourceCreate(id=d, type="OS::Cinder::Volume") for d in disk_ids],
        billing=cbr.BillingCreate(
            object_type="disk",
            protect_type="backup",
            consistent_level="crash_consistent",
            size=size_gb,
        ),
    )
    return cbr_client.create_vault(
        cbr.CreateVaultRequest(body=cbr.VaultCreateReq(vault=vault))
    ).vault


def back_up(cbr_client: Any, vault_id: str, name: str, incremental: bool = True) -> Any:
    """Take a backup of the vault and wait until its one backup is available."""
    checkpoint = cbr_client.create_checkpoint(
        cbr.CreateCheckpointRequest(
            body=cbr.VaultBackupReq(
                checkpoint=cbr.VaultBackup(
                    vault_id=vault_id,
                    parameters=cbr.CheckpointParam(name=name, incremental=incremental),
                )
            )
        )
    ).checkpoint
    listed = wait_for(
        "backup",
        lambda: (
            cbr_client.list_backups(cbr.ListBackupsRequest(checkpoint_id=checkpoint.id)).backups
        ),
        lambda b: len(b) == 1 and b[0].status in ("available", "error"),
    )
    return listed[0]
