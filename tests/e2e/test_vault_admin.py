"""BatchUpdateVault, UpdateExpirationTime, SetVaultResource and MigrateVaultResource through
the SDK (rules in cbr/vault_admin.py): each acts on the caller's vaults only, all or nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import CbrClient
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkevs.v2 import EvsClient
from sqlalchemy import select

from opencbr.cbr import backups
from opencbr.cbr.catalogue import CATALOGUE_JOB
from opencbr.cbr.errors import NothingToBackup
from opencbr.cbr.models import Backup
from opencbr.core.context import Runtime
from opencbr.core.jobs import Job, JobStatus, WorkerPool
from tests.conftest import LiveServer, TenantFactory
from tests.e2e.flows import create_disk, disk_vault
from tests.e2e.sdk import project_client
from tests.integration.cbr.sharing_fixtures import party, stored_backup


def _error(call: Any, request: Any) -> tuple[int, str]:
    with pytest.raises(ClientRequestException) as caught:
        call(request)
    return caught.value.status_code, caught.value.error_code


def _expire(client: Any, vault_id: str, day: str, zone: str = "UTC+08:00") -> Any:
    body = cbr.UpdateExpirationTimeReq(expect_expiration_date=day, time_zone=zone)
    return client.update_expiration_time(
        cbr.UpdateExpirationTimeRequest(vault_id=vault_id, body=body)
    )


def _day(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%d")


def test_backups_expire_at_the_end_of_the_day_in_the_callers_zone(
    runtime: Runtime, server: LiveServer, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    client = project_client(CbrClient, server.url, creds)
    vault_id = disk_vault(client, "v", 10, []).id
    backup_id = stored_backup(runtime, party(runtime, creds), vault_id)
    answer = _expire(client, vault_id, _day(10))
    assert answer.affected_backups_count == 1
    shown = client.show_backup(cbr.ShowBackupRequest(backup_id=backup_id)).backup
    # the end of that day in UTC+08:00 is 16:00 UTC of it
    assert str(shown.expired_at)[:19].replace(" ", "T") == f"{_day(10)}T16:00:00"
    logs = client.list_op_logs(cbr.ListOpLogsRequest(operation_type="update_expiration_time"))
    assert [log.id for log in logs.operation_logs] == [answer.operation_log_id]

    with runtime.database.unit_of_work() as session:  # recorded in the store's catalogue too
        queued = session.scalars(
            select(Job.payload).where(Job.kind == CATALOGUE_JOB, Job.status == JobStatus.QUEUED)
        )
        assert {"backup_id": backup_id} in list(queued)

    bad_days = (("2020-02-30", "UTC+08:00"), (_day(-1), "UTC+00:00"), (_day(5), "CET"))
    for day, zone in (*bad_days, ("9999-12-31", "UTC+08:00")):
        assert _error(lambda r, d=day, z=zone: _expire(client, vault_id, d, z), None) == (
            400,
            "BackupService.9900",
        )
    again = client.show_backup(cbr.ShowBackupRequest(backup_id=backup_id)).backup
    assert again.expired_at == shown.expired_at


def test_a_locked_vaults_backups_may_only_be_kept_longer(
    runtime: Runtime, server: LiveServer, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    client = project_client(CbrClient, server.url, creds)
    vault_id = disk_vault(client, "v", 10, []).id
    backup_id = stored_backup(runtime, party(runtime, creds), vault_id)
    _expire(client, vault_id, _day(10))
    lock = cbr.VaultUpdateReq(vault=cbr.VaultUpdate(locked=True))
    client.update_vault(cbr.UpdateVaultRequest(vault_id=vault_id, body=lock))
    assert _error(lambda r: _expire(client, vault_id, _day(5)), None) == (
        400,
        "BackupService.6220",
    )
    assert _expire(client, vault_id, _day(20)).affected_backups_count == 1
    with runtime.database.unit_of_work() as session:
        expires = session.get_one(Backup, backup_id).expired_at
    assert expires is not None
    assert expires > datetime.now(UTC).replace(tzinfo=None) + timedelta(days=18)


def test_suspended_resources_are_left_out_of_policy_backups(
    runtime: Runtime, server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    creds = make_tenant()
    client = project_client(CbrClient, server.url, creds)
    disk = create_disk(project_client(EvsClient, server.url, creds), "d")
    vault_id = disk_vault(client, "v", 10, [disk]).id
    body = cbr.VaultSetResourceReq(resource_ids=[disk], action="suspend")
    client.set_vault_resource(cbr.SetVaultResourceRequest(vault_id=vault_id, body=body))
    actor = party(runtime, creds).actor
    spec = backups.CheckpointSpec(vault_id=vault_id, auto_trigger=True)
    with runtime.database.unit_of_work() as session, pytest.raises(NothingToBackup):
        backups.create_checkpoint(session, actor, spec)

    bad = cbr.VaultSetResourceReq(resource_ids=[disk], action="pause")
    request = cbr.SetVaultResourceRequest(vault_id=vault_id, body=bad)
    assert _error(client.set_vault_resource, request) == (400, "BackupService.9900")
    unknown = cbr.VaultSetResourceReq(resource_ids=["f" * 32], action="unsuspend")
    request = cbr.SetVaultResourceRequest(vault_id=vault_id, body=unknown)
    assert _error(client.set_vault_resource, request) == (404, "BackupService.6302")


def test_migrating_needs_a_vault_of_the_callers_of_the_same_type(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    creds, other_creds = make_tenant(), make_tenant()
    client = project_client(CbrClient, server.url, creds)
    outsider = project_client(CbrClient, server.url, other_creds)
    disk = create_disk(project_client(EvsClient, server.url, creds), "d")
    source = disk_vault(client, "source", 10, [disk]).id
    theirs = disk_vault(outsider, "theirs", 10, []).id
    billing = cbr.BillingCreate(
        object_type="server", protect_type="backup", consistent_level="crash_consistent", size=10
    )
    server_vault = client.create_vault(
        cbr.CreateVaultRequest(
            body=cbr.VaultCreateReq(vault=cbr.VaultCreate(name="s", resources=[], billing=billing))
        )
    ).vault.id

    def migrate(destination: str) -> Any:
        body = cbr.VaultMigrateResourceReq(destination_vault_id=destination, resource_ids=[disk])
        return client.migrate_vault_resource(
            cbr.MigrateVaultResourceRequest(vault_id=source, body=body)
        )

    assert _error(lambda r: migrate(theirs), None) == (404, "BackupService.6105")
    assert _error(lambda r: migrate(server_vault), None) == (400, "BackupService.6102")
    shown = client.show_vault(cbr.ShowVaultRequest(vault_id=source)).vault
    assert [r.id for r in shown.resources] == [disk]

    target = disk_vault(client, "target", 10, []).id
    assert migrate(target).migrated_resources == [disk]
    moved = client.show_vault(cbr.ShowVaultRequest(vault_id=target)).vault
    assert [r.id for r in moved.resources] == [disk]

    batch = cbr.BatchUpdateVaultRequestBody(vault=cbr.VaultBatchUpdate(threshold=0))
    request = cbr.BatchUpdateVaultRequest(body=batch)
    assert _error(client.batch_update_vault, request) == (400, "BackupService.9900")
    batch = cbr.BatchUpdateVaultRequestBody(vault=cbr.VaultBatchUpdate(smn_notify=False))
    updated = client.batch_update_vault(cbr.BatchUpdateVaultRequest(body=batch))
    assert theirs not in updated.updated_vaults_id
    assert outsider.show_vault(cbr.ShowVaultRequest(vault_id=theirs)).vault.smn_notify is True
