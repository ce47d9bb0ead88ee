"""Nothing lost when the database is: stop the service, delete the database, `opencbr admin
recover`, start again; every backup, share and key is back and restores byte for byte."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import model as cbr

from opencbr.cbr.collect import request_collection
from opencbr.iam import service as iam
from opencbr.iam.service import TenantCredentials
from tests.e2e import flows
from tests.e2e.recovery_fixtures import Deployment, run_cli

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def _tenant(runtime: Any, name: str) -> TenantCredentials:
    with runtime.database.unit_of_work() as session:
        return iam.create_tenant(
            session, runtime.root_key, runtime.settings.regions, name, ["region-1"]
        )


def _listing(cbr_client: Any, **filters: Any) -> list[tuple[Any, ...]]:
    backups = cbr_client.list_backups(cbr.ListBackupsRequest(**filters)).backups
    return sorted(
        (b.id, b.name, b.resource_size, b.vault_id, b.status, b.checkpoint_id) for b in backups
    )


def _member_statuses(cbr_client: Any, backup_id: str) -> list[tuple[str, str, str | None]]:
    listed = cbr_client.show_members_detail(cbr.ShowMembersDetailRequest(backup_id=backup_id))
    return sorted((m.dest_project_id, m.status, m.vault_id) for m in listed.members)


def _share(owner: Any, recipient_project: str, backup_id: str) -> None:
    body = cbr.AddMembersReq(members=[recipient_project])
    owner.add_member(cbr.AddMemberRequest(backup_id=backup_id, body=body))


def _decide(recipient: Any, project: str, backup_id: str, status: str, vault: str | None) -> None:
    request = cbr.UpdateMemberStatusRequest(
        backup_id=backup_id,
        member_id=project,
        body=cbr.UpdateMember(status=status, vault_id=vault),
    )
    recipient.update_member_status(request)


def _scene(server_url: str, runtime: Any) -> dict[str, Any]:
    """Two tenants: backups (full, incremental, renamed), shares accepted and pending."""
    owner, other, third = (_tenant(runtime, n) for n in ("owner", "other", "third"))
    a = flows.tenant_clients(server_url, owner)
    b = flows.tenant_clients(server_url, other)
    c = flows.tenant_clients(server_url, third)
    disk = flows.create_disk(a.evs, "source", size_gb=1)
    first = os.urandom(2 * MiB)
    flows.write(a.data, a.project, disk, 0, first)
    flows.write(a.data, a.project, disk, 600 * MiB, b"tail" * 1024)
    vault = flows.disk_vault(a.cbr, "vault-1", 10, [disk])
    full = flows.back_up(a.cbr, vault.id, "full")
    changed = os.urandom(64 * 1024)
    flows.write(a.data, a.project, disk, MiB, changed)
    incremental = flows.back_up(a.cbr, vault.id, "incremental")
    a.cbr.update_backup(
        cbr.UpdateBackupRequest(
            backup_id=incremental.id,
            body=cbr.BackupUpdateReq(backup=cbr.BackupUpdate(name="renamed")),
        )
    )
    inbox = flows.disk_vault(b.cbr, "inbox", 10, [])
    _share(a.cbr, b.project, full.id)
    _decide(b.cbr, b.project, full.id, "accepted", inbox.id)
    _share(a.cbr, c.project, full.id)
    return {
        "creds": (owner, other, third),
        "full": full.id,
        "incremental": incremental.id,
        "expected_full": first,
        "expected_incremental": first[:MiB] + changed + first[MiB + len(changed) :],
        "inbox": inbox.id,
    }


def _observed(server_url: str, scene: dict[str, Any]) -> dict[str, Any]:
    owner, other, third = scene["creds"]
    a = flows.tenant_clients(server_url, owner)
    b = flows.tenant_clients(server_url, other)
    c = flows.tenant_clients(server_url, third)
    inbox = b.cbr.show_vault(cbr.ShowVaultRequest(vault_id=scene["inbox"])).vault
    return {
        "owner": _listing(a.cbr),
        "members": _member_statuses(a.cbr, scene["full"]),
        "accepted": _listing(b.cbr, own_type="shared", member_status="accepted"),
        "pending": _listing(c.cbr, own_type="shared", member_status="pending"),
        "inbox_used": inbox.billing.used,
    }


def _restored(server_url: str, creds: TenantCredentials, backup_id: str, length: int) -> bytes:
    clients = flows.tenant_clients(server_url, creds)
    disk, job = flows.disk_from_backup(clients.evs, backup_id, "restored")
    assert job.status == "SUCCESS"
    return flows.read(clients.data, clients.project, disk, 0, length)


def test_recovery_after_losing_the_database_brings_back_everything(
    deployment: Deployment,
) -> None:
    _lose_the_database_and_recover(deployment)


def test_recovery_from_an_s3_store(s3_deployment: Deployment) -> None:
    _lose_the_database_and_recover(s3_deployment)


def _lose_the_database_and_recover(deployment: Deployment) -> None:
    with deployment.running() as (runtime, server):
        scene = _scene(server.url, runtime)
    with deployment.running() as (runtime, server):
        before = _observed(server.url, scene)
    assert len(before["owner"]) == 2
    assert before["accepted"]
    assert before["pending"]

    deployment.delete_database()
    # Started by mistake on the empty database: a garbage collection, even when every object
    # is past its grace period, keeps the data of every backup the catalogue names.
    with (
        deployment.running(store_hours_ahead=2) as (runtime, _server),
        runtime.database.unit_of_work() as session,
    ):
        request_collection(session)
    result = run_cli("admin", "recover", *deployment.cli_args(), "--json", env=deployment.cli_env())
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["skipped"] == []
    assert report["recovered"]["backups"] == 2
    assert report["recovered"]["members"] == 2

    with deployment.running() as (runtime, server):
        assert _observed(server.url, scene) == before
        owner, other, _ = scene["creds"]
        assert _restored(server.url, owner, scene["full"], 2 * MiB) == scene["expected_full"]
        assert (
            _restored(server.url, owner, scene["incremental"], 2 * MiB)
            == scene["expected_incremental"]
        )
        # The recipient restores the backup it accepted, with its old access key.
        assert _restored(server.url, other, scene["full"], 2 * MiB) == scene["expected_full"]

    # Again: nothing is added twice, and a database with tenants is refused.
    again = run_cli("admin", "recover", *deployment.cli_args(), "--json", env=deployment.cli_env())
    assert again.exit_code != 0
    assert "BackupService.9922" in again.output
    merged = run_cli(
        "admin", "recover", *deployment.cli_args(), "--merge", "--json", env=deployment.cli_env()
    )
    assert merged.exit_code == 0, merged.output
    assert set(json.loads(merged.output)["recovered"].values()) <= {0}
