"""The vault lock through the SDK: a locked vault keeps taking backups and accepting shares;
nothing removes one of its own backups before that backup's retention ends; the lock stays;
accepted shares still leave when their owner cancels or deletes them (cbr/vault_lock.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import CbrClient
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkevs.v2 import EvsClient

from opencbr.cbr.models import Backup, Policy, Vault
from opencbr.cbr.scheduler import apply_retention
from opencbr.core.clock import utcnow
from opencbr.core.context import Runtime
from opencbr.core.jobs import WorkerPool
from tests.conftest import LiveServer, TenantFactory
from tests.e2e.flows import back_up, create_disk, disk_vault
from tests.e2e.sdk import project_client
from tests.integration.cbr.sharing_fixtures import party, stored_backup


def _error(call: Any, request: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientRequestException) as caught:
        call(request)
    error = caught.value
    return error.status_code, error.error_code, str(error.error_msg)


def _lock(client: Any, vault_id: str, locked: bool = True) -> Any:
    body = cbr.VaultUpdateReq(vault=cbr.VaultUpdate(locked=locked))
    return client.update_vault(cbr.UpdateVaultRequest(vault_id=vault_id, body=body)).vault


def _backup_ids(client: Any, vault_id: str) -> set[str]:
    return {b.id for b in client.list_backups(cbr.ListBackupsRequest(vault_id=vault_id)).backups}


def test_a_locked_vault_takes_backups_and_keeps_them(
    runtime: Runtime, server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    creds = make_tenant()
    client = project_client(CbrClient, server.url, creds)
    disk = create_disk(project_client(EvsClient, server.url, creds), "locked-disk")
    vault = disk_vault(client, "locked", 10, [disk])
    assert _lock(client, vault.id).locked is True

    backup = back_up(client, vault.id, "in-a-locked-vault")  # no 6113: a lock is no pause
    assert backup.status == "available"

    delete = cbr.DeleteBackupRequest(backup_id=backup.id)
    status, code, message = _error(client.delete_backup, delete)
    assert (status, code) == (400, "BackupService.6220")
    assert "retention" in message
    status, code, _ = _error(client.delete_vault, cbr.DeleteVaultRequest(vault_id=vault.id))
    assert (status, code) == (400, "BackupService.6111")

    status, code, _ = _error(lambda r: _lock(client, vault.id, False), None)
    assert (status, code) == (400, "BackupService.6112")
    shown = client.show_vault(cbr.ShowVaultRequest(vault_id=vault.id)).vault
    assert shown.locked is True
    assert _backup_ids(client, vault.id) == {backup.id}


def test_retention_ends_and_policies_do_not_shorten_it(
    runtime: Runtime, server: LiveServer, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    owner = party(runtime, creds)
    client = project_client(CbrClient, server.url, creds)
    vault_id = disk_vault(client, "locked", 10, []).id
    _lock(client, vault_id)
    expired, kept, forever = (stored_backup(runtime, owner, vault_id) for _ in range(3))
    with runtime.database.unit_of_work() as session:
        session.get_one(Backup, expired).expired_at = utcnow() - timedelta(minutes=1)
        session.get_one(Backup, kept).expired_at = utcnow() + timedelta(days=1)
        for backup_id in (expired, kept, forever):
            session.get_one(Backup, backup_id).auto_trigger = True
            session.get_one(Backup, backup_id).created_at = utcnow() - timedelta(days=10)

    # The policy's retention (a day) would drop all three: the lock keeps two of them.
    with runtime.database.unit_of_work() as session:
        policy = Policy(operation_definition={"retention_duration_days": 1})
        deleted = apply_retention(session, session.get_one(Vault, vault_id), policy, utcnow())
    assert deleted == [expired]

    for backup_id in (kept, forever):
        status, code, _ = _error(client.delete_backup, cbr.DeleteBackupRequest(backup_id=backup_id))
        assert (status, code) == (400, "BackupService.6220")


def test_accepted_shares_still_leave_a_locked_vault(
    runtime: Runtime, server: LiveServer, make_tenant: TenantFactory
) -> None:
    owner_creds, recipient_creds = make_tenant(), make_tenant()
    owner, recipient = party(runtime, owner_creds), party(runtime, recipient_creds)
    owner_client = project_client(CbrClient, server.url, owner_creds)
    recipient_client = project_client(CbrClient, server.url, recipient_creds)
    source_vault = disk_vault(owner_client, "source", 10, []).id
    locked_vault = disk_vault(recipient_client, "locked", 10, []).id
    _lock(recipient_client, locked_vault)

    shared = [stored_backup(runtime, owner, source_vault) for _ in range(2)]
    for backup_id in shared:
        add = cbr.AddMembersReq(members=[recipient.project_id])
        owner_client.add_member(cbr.AddMemberRequest(backup_id=backup_id, body=add))
        accept = cbr.UpdateMember(status="accepted", vault_id=locked_vault)
        recipient_client.update_member_status(
            cbr.UpdateMemberStatusRequest(
                backup_id=backup_id, member_id=recipient.project_id, body=accept
            )
        )
    listed = recipient_client.list_backups(
        cbr.ListBackupsRequest(vault_id=locked_vault, own_type="shared")
    ).backups
    assert {b.id for b in listed} == set(shared)

    cancelled, deleted = shared
    owner_client.delete_member(
        cbr.DeleteMemberRequest(backup_id=cancelled, member_id=recipient.project_id)
    )
    owner_client.delete_backup(cbr.DeleteBackupRequest(backup_id=deleted))
    listed = recipient_client.list_backups(
        cbr.ListBackupsRequest(vault_id=locked_vault, own_type="shared")
    ).backups
    assert listed == []
