"""Backups that hold real data, through the official SDK on a live server: back up a disk,
change it, back up incrementally, restore and create disks from backups, compare bytes."""

from __future__ import annotations

import os
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkevs.v2 import model as evs

from opencbr.cbr.dataplane import chunk_store
from opencbr.cbr.models import Backup, Vault
from opencbr.cbr.vaults import reserve
from opencbr.cli.client import Client
from opencbr.core.context import Runtime
from opencbr.core.jobs import WorkerPool
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows

MiB = 1024 * 1024


def test_backup_restore_and_disk_from_backup_hold_the_same_bytes(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    creds = make_tenant()
    project, evs_client, cbr_client, data = flows.tenant_clients(server.url, creds)
    disk = flows.create_disk(evs_client, "source", size_gb=1)
    first = os.urandom(3 * MiB)
    flows.write(data, project, disk, 0, first)
    flows.write(data, project, disk, 512 * MiB, b"tail" * 1024)
    vault = flows.disk_vault(cbr_client, "vault-1", 10, [disk])

    full = flows.back_up(cbr_client, vault.id, "full")
    assert full.status == "available"
    assert full.resource_id == disk

    changed = os.urandom(64 * 1024)
    flows.write(data, project, disk, MiB, changed)
    incremental = flows.back_up(cbr_client, vault.id, "incremental")
    assert incremental.status == "available"
    shown = cbr_client.show_backup(cbr.ShowBackupRequest(backup_id=incremental.id)).backup
    assert shown.incremental is True

    copy, job = flows.disk_from_backup(evs_client, full.id, "from-full")
    assert job.status == "SUCCESS"
    assert flows.disk_status(evs_client, copy) == "available"
    assert flows.read(data, project, copy, 0, 3 * MiB) == first
    assert flows.read(data, project, copy, 512 * MiB, 4096) == b"tail" * 1024

    later, _ = flows.disk_from_backup(evs_client, incremental.id, "from-incremental")
    expected = first[:MiB] + changed + first[MiB + len(changed) :]
    assert flows.read(data, project, later, 0, 3 * MiB) == expected

    flows.write(data, project, disk, 0, bytes(3 * MiB))
    cbr_client.restore_backup(
        cbr.RestoreBackupRequest(
            backup_id=full.id, body=cbr.BackupRestoreReq(restore=cbr.BackupRestore(volume_id=disk))
        )
    )
    flows.wait_for(
        "restore", lambda: flows.disk_status(evs_client, disk), lambda s: s == "available"
    )
    assert flows.read(data, project, disk, 0, 3 * MiB) == first

    vault_after = cbr_client.show_vault(cbr.ShowVaultRequest(vault_id=vault.id)).vault
    assert vault_after.billing.used > 0


def _fill_vault(runtime: Runtime, vault_id: str, leave_free: int) -> None:
    """Take the vault's space as other backups would, leaving `leave_free` bytes."""
    with runtime.database.unit_of_work() as session:
        vault = session.get(Vault, vault_id)
        assert vault is not None
        reserve(session, vault, vault.size_bytes - vault.used_bytes - leave_free)


def test_a_backup_that_does_not_fit_fails_with_6114_and_changes_nothing(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool, runtime: Runtime
) -> None:
    creds = make_tenant()
    project, evs_client, cbr_client, data = flows.tenant_clients(server.url, creds)
    disk = flows.create_disk(evs_client, "data", size_gb=1)
    flows.write(data, project, disk, 0, os.urandom(4 * MiB))
    vault = flows.disk_vault(cbr_client, "nearly-full", 1, [disk])
    _fill_vault(runtime, vault.id, leave_free=MiB)
    used_before = cbr_client.show_vault(cbr.ShowVaultRequest(vault_id=vault.id)).vault.billing.used

    backup = flows.back_up(cbr_client, vault.id, "too-big")
    assert backup.status == "error"
    logs = cbr_client.list_op_logs(cbr.ListOpLogsRequest(operation_type="backup")).operation_logs
    assert [(log.status, log.error_info.code) for log in logs] == [("failed", "BackupService.6114")]
    assert (
        cbr_client.show_vault(cbr.ShowVaultRequest(vault_id=vault.id)).vault.billing.used
        == used_before
    )

    _fill_vault(runtime, vault.id, leave_free=0)
    with pytest.raises(ClientRequestException) as refused:
        flows.back_up(cbr_client, vault.id, "no-room")
    assert (refused.value.status_code, refused.value.error_code) == (400, "BackupService.6114")


def test_restore_refuses_a_target_too_small(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    creds = make_tenant()
    _, evs_client, cbr_client, _ = flows.tenant_clients(server.url, creds)
    disk = flows.create_disk(evs_client, "two-gb", size_gb=2)
    small = flows.create_disk(evs_client, "one-gb", size_gb=1)
    vault = flows.disk_vault(cbr_client, "v", 10, [disk])
    backup = flows.back_up(cbr_client, vault.id, "b")
    with pytest.raises(ClientRequestException) as refused:
        cbr_client.restore_backup(
            cbr.RestoreBackupRequest(
                backup_id=backup.id,
                body=cbr.BackupRestoreReq(restore=cbr.BackupRestore(volume_id=small)),
            )
        )
    assert (refused.value.status_code, refused.value.error_code) == (400, "BackupService.2001")
    assert flows.disk_status(evs_client, small) == "available"
    for missing in ("0d5f6a2e-3c1b-4e7a-9a51-5b0c7d2e9f10", "not-a-disk-id"):
        with pytest.raises(ClientRequestException) as unknown:
            cbr_client.restore_backup(
                cbr.RestoreBackupRequest(
                    backup_id=backup.id,
                    body=cbr.BackupRestoreReq(restore=cbr.BackupRestore(volume_id=missing)),
                )
            )
        assert (unknown.value.status_code, unknown.value.error_code) == (
            404,
            "BackupService.7000",
        )
    shown = cbr_client.show_backup(cbr.ShowBackupRequest(backup_id=backup.id)).backup
    assert shown.status == "available"


def test_deleting_a_backup_collects_only_its_own_data(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool, runtime: Runtime
) -> None:
    creds = make_tenant()
    project, evs_client, cbr_client, data = flows.tenant_clients(server.url, creds)
    disk = flows.create_disk(evs_client, "gc", size_gb=1)
    flows.write(data, project, disk, 0, os.urandom(2 * MiB))
    vault = flows.disk_vault(cbr_client, "gc-vault", 10, [disk])
    kept = flows.back_up(cbr_client, vault.id, "kept", incremental=False)
    flows.write(data, project, disk, 0, os.urandom(2 * MiB))
    dropped = flows.back_up(cbr_client, vault.id, "dropped", incremental=False)
    with runtime.database.unit_of_work() as session:
        manifests = {
            b.id: b.manifest_id for b in session.query(Backup).filter(Backup.vault_id == vault.id)
        }
    store = chunk_store(runtime)
    assert set(manifests.values()) <= set(store.list_manifests())

    cbr_client.delete_backup(cbr.DeleteBackupRequest(backup_id=dropped.id))

    def shown() -> int:
        """ShowBackup's status: the job drops the manifests first, then the rows."""
        try:
            cbr_client.show_backup(cbr.ShowBackupRequest(backup_id=dropped.id))
        except ClientRequestException as error:
            return int(error.status_code)
        return 200

    flows.wait_for("the deleted backup to go", shown, lambda status: status == 404)
    assert manifests[kept.id] in store.list_manifests()
    assert manifests[dropped.id] not in store.list_manifests()
    copy, job = flows.disk_from_backup(evs_client, kept.id, "still-there")
    assert job.status == "SUCCESS"
    assert flows.disk_status(evs_client, copy) == "available"


def _server(data: Client, project: str, evs_client: Any, name: str) -> dict[str, Any]:
    """A running server with a 1 GB system disk and a 1 GB data disk."""
    body = {"server": {"name": name, "system_disk": {"size": 1}, "data_disks": [{"size": 1}]}}
    created = data.request("POST", f"/v1/{project}/servers", body)
    flows.wait_for(
        "server job",
        lambda: evs_client.show_job(evs.ShowJobRequest(job_id=created["job_id"])).status,
        lambda status: status in ("SUCCESS", "FAIL"),
    )
    shown: dict[str, Any] = data.request("GET", f"/v1/{project}/servers/{created['server']['id']}")
    return shown["server"]


def _devices(server: dict[str, Any]) -> dict[str, str]:
    return {d["device"]: d["id"] for d in server["volumes_attached"]}


def test_server_restore_writes_only_the_stopped_target_servers_disks(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    creds = make_tenant()
    project, evs_client, cbr_client, data = flows.tenant_clients(server.url, creds)
    web, spare = (_server(data, project, evs_client, name) for name in ("web", "spare"))
    web_disks, spare_disks = _devices(web), _devices(spare)
    content = os.urandom(2 * MiB)
    flows.write(data, project, web_disks["/dev/vdb"], 0, content)
    data.request("POST", f"/v1/{project}/servers/{web['id']}/stop")
    vault = cbr_client.create_vault(
        cbr.CreateVaultRequest(
            body=cbr.VaultCreateReq(
                vault=cbr.VaultCreate(
                    name="servers",
                    resources=[cbr.ResourceCreate(id=web["id"], type="OS::Nova::Server")],
                    billing=cbr.BillingCreate(object_type="server", protect_type="backup", size=10),
                )
            )
        )
    ).vault
    backup = flows.back_up(cbr_client, vault.id, "web-1")
    children = cbr_client.show_backup(cbr.ShowBackupRequest(backup_id=backup.id)).backup.children
    child_of = {c.resource_id: c.id for c in children}
    data.request("POST", f"/v1/{project}/servers/{web['id']}/start")
    data.request("POST", f"/v1/{project}/servers/{spare['id']}/stop")

    def restore(**fields: Any) -> None:
        body = cbr.BackupRestoreReq(restore=cbr.BackupRestore(**fields))
        cbr_client.restore_backup(cbr.RestoreBackupRequest(backup_id=backup.id, body=body))

    def refused(**fields: Any) -> str:
        with pytest.raises(ClientRequestException) as caught:
            restore(**fields)
        assert (caught.value.status_code, caught.value.error_code) == (400, "BackupService.2002")
        return str(caught.value.error_msg)

    # Onto the running original; onto another server without saying which disk gets what;
    # onto another server but into the running original's disks: all refused, nothing moves.
    assert "must be stopped" in refused()
    with pytest.raises(ClientRequestException) as unknown:
        restore(server_id="0d5f6a2e-3c1b-4e7a-9a51-5b0c7d2e9f10")
    assert (unknown.value.status_code, unknown.value.error_code) == (404, "BackupService.7100")
    assert "mapping" in refused(server_id=spare["id"])
    into_web = [
        cbr.BackupRestoreServerMapping(backup_id=child_of[disk], volume_id=disk)
        for disk in web_disks.values()
    ]
    assert "attached to server" in refused(server_id=spare["id"], mappings=into_web)
    assert {flows.disk_status(evs_client, d) for d in web_disks.values()} == {"in-use"}

    # Onto the stopped spare server, each backed-up disk into the spare's disk on its device.
    into_spare = [
        cbr.BackupRestoreServerMapping(backup_id=child_of[web_disks[dev]], volume_id=disk)
        for dev, disk in spare_disks.items()
    ]
    restore(server_id=spare["id"], mappings=into_spare)
    flows.wait_for(
        "restore",
        lambda: {flows.disk_status(evs_client, d) for d in spare_disks.values()},
        lambda states: states == {"in-use"},
    )
    assert flows.read(data, project, spare_disks["/dev/vdb"], 0, len(content)) == content
