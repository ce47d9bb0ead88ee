"""The sharing scenario of reference §5 with real data, through the official SDKs on a live
server: A backs up a disk (and a server) holding recognisable bytes, shares the backup with B;
B accepts, creates a disk (a server) from it and reads A's bytes; A deletes the backup, which
leaves B at once (S9) while what B made from it stays whole."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import CbrClient
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkevs.v2 import EvsClient
from huaweicloudsdkevs.v2 import model as evs
from huaweicloudsdkiam.v3 import IamClient
from huaweicloudsdkiam.v3 import model as iam_model

from opencbr.cli.client import Client
from opencbr.core.jobs import WorkerPool
from opencbr.iam.service import TenantCredentials
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows
from tests.e2e.sdk import global_client, project_client

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


class Tenant:
    """One account acting in its region-1 project through every client it needs."""

    def __init__(self, server: LiveServer, creds: TenantCredentials) -> None:
        self.creds = creds
        self.project = creds.projects["region-1"]
        self.cbr = project_client(CbrClient, server.url, creds)
        self.evs = project_client(EvsClient, server.url, creds)
        self.iam = global_client(IamClient, server.url, creds)
        self.data: Client = flows.data_client(server.url, creds)

    def write(self, disk_id: str, offset: int, data: bytes) -> None:
        flows.write(self.data, self.project, disk_id, offset, data)

    def read(self, disk_id: str, offset: int, length: int) -> bytes:
        return flows.read(self.data, self.project, disk_id, offset, length)


def pattern(tag: str, size: int) -> bytes:
    """Recognisable bytes: a readable marker, then random data (never a hole)."""
    head = f"<{tag}>".encode() * 64
    return head + os.urandom(size - len(head))


def refused(call: Callable[[], Any]) -> ClientRequestException:
    with pytest.raises(ClientRequestException) as caught:
        call()
    return caught.value


def share(owner: Tenant, backup_id: str, recipient: Tenant) -> Any:
    body = cbr.AddMembersReq(members=[recipient.project])
    return owner.cbr.add_member(cbr.AddMemberRequest(backup_id=backup_id, body=body))


def accept(recipient: Tenant, backup_id: str, vault_id: str) -> Any:
    request = cbr.UpdateMemberStatusRequest(
        backup_id=backup_id,
        member_id=recipient.project,
        body=cbr.UpdateMember(status="accepted", vault_id=vault_id),
    )
    return recipient.cbr.update_member_status(request).member


def shared_with(tenant: Tenant, status: str | None = None) -> list[Any]:
    request = cbr.ListBackupsRequest(own_type="shared", member_status=status)
    return list(tenant.cbr.list_backups(request).backups)


def used_mb(tenant: Tenant, vault_id: str) -> float:
    vault = tenant.cbr.show_vault(cbr.ShowVaultRequest(vault_id=vault_id)).vault
    return float(vault.billing.used)


def server_vault(tenant: Tenant, name: str, size_gb: int, server_ids: list[str]) -> Any:
    vault = cbr.VaultCreate(
        name=name,
        resources=[cbr.ResourceCreate(id=s, type="OS::Nova::Server") for s in server_ids],
        billing=cbr.BillingCreate(
            object_type="server",
            protect_type="backup",
            consistent_level="crash_consistent",
            size=size_gb,
        ),
    )
    return tenant.cbr.create_vault(
        cbr.CreateVaultRequest(body=cbr.VaultCreateReq(vault=vault))
    ).vault


def wait_job(tenant: Tenant, job_id: str) -> Any:
    return flows.wait_for(
        f"job {job_id}",
        lambda: tenant.evs.show_job(evs.ShowJobRequest(job_id=job_id)),
        lambda j: j.status in ("SUCCESS", "FAIL"),
    )


def assert_gone_for(recipient: Tenant, backup_id: str) -> None:
    assert shared_with(recipient) == []
    gone = refused(lambda: recipient.cbr.show_backup(cbr.ShowBackupRequest(backup_id=backup_id)))
    assert (gone.status_code, gone.error_code) == (404, "BackupService.6200")


def test_disk_backup_shared_used_and_deleted_with_real_data(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    a, b = Tenant(server, make_tenant()), Tenant(server, make_tenant())
    head, tail = pattern("disk-of-A", 3 * MiB), pattern("tail-of-A", 256 * 1024)

    # A: a disk with recognisable bytes, backed up in a disk vault.
    source = flows.create_disk(a.evs, "vol-src", size_gb=1)
    a.write(source, 0, head)
    a.write(source, 700 * MiB, tail)
    vault_a = flows.disk_vault(a.cbr, "vault-a", 10, [source])
    backup = flows.back_up(a.cbr, vault_a.id, "manual-1")
    assert backup.status == "available"

    # B reads its project id through IAM (S11) and tells A; A shares, twice is refused (6703).
    listed = b.iam.keystone_list_auth_projects(iam_model.KeystoneListAuthProjectsRequest())
    regional = {p.name: p.id for p in listed.projects}
    assert regional["region-1"] == b.project
    added = share(a, backup.id, b).members
    assert [(m.dest_project_id, m.status) for m in added] == [(b.project, "pending")]
    again = refused(lambda: share(a, backup.id, b))
    assert (again.status_code, again.error_code) == (400, "BackupService.6703")

    # B finds it pending, makes a disk vault and accepts into it.
    pending = shared_with(b, "pending")
    assert [(x.id, x.project_id, x.resource_type) for x in pending] == [
        (backup.id, a.project, "OS::Cinder::Volume")
    ]
    vault_b = flows.disk_vault(b.cbr, "vault-b", 50, [])
    member = accept(b, backup.id, vault_b.id)
    assert (member.status, member.vault_id) == ("accepted", vault_b.id)
    assert shared_with(b, "pending") == []
    assert [x.id for x in shared_with(b, "accepted")] == [backup.id]
    assert used_mb(b, vault_b.id) > 0

    # B: a disk from the shared backup holds exactly A's bytes.
    created, job = flows.disk_from_backup(b.evs, backup.id, "from-share")
    assert job.status == "SUCCESS", job.fail_reason
    assert flows.disk_status(b.evs, created) == "available"
    assert b.read(created, 0, len(head)) == head
    assert b.read(created, 700 * MiB, len(tail)) == tail
    assert b.read(created, 100 * MiB, 4096) == bytes(4096)

    # A deletes the backup: B no longer sees it, its space comes back, its disk stays whole.
    a.cbr.delete_backup(cbr.DeleteBackupRequest(backup_id=backup.id))
    assert_gone_for(b, backup.id)
    assert used_mb(b, vault_b.id) == 0
    listed_b = b.cbr.list_backups(
        cbr.ListBackupsRequest(vault_id=vault_b.id, own_type="all_granted")
    )
    assert listed_b.backups == []
    flows.wait_for(
        "the owner's backup to go",
        lambda: a.cbr.list_backups(cbr.ListBackupsRequest(vault_id=vault_a.id)).backups,
        lambda rows: rows == [],
    )
    volume = b.evs.show_volume(evs.ShowVolumeRequest(volume_id=created)).volume
    assert volume.status == "available"
    assert b.read(created, 0, len(head)) == head
    assert b.read(created, 700 * MiB, len(tail)) == tail
    # The source disk is A's own, untouched by all this.
    assert a.read(source, 0, len(head)) == head


def _create_server(tenant: Tenant, name: str) -> dict[str, Any]:
    body = {
        "server": {
            "name": name,
            "system_disk": {"size": 1},
            "data_disks": [{"size": 1, "volume_type": "SSD"}],
        }
    }
    created = tenant.data.request("POST", f"/v1/{tenant.project}/servers", body)
    wait_job(tenant, created["job_id"])
    shown: dict[str, Any] = flows.wait_for(
        "server",
        lambda: tenant.data.request(
            "GET", f"/v1/{tenant.project}/servers/{created['server']['id']}"
        ),
        lambda s: s["server"]["status"] in ("ACTIVE", "ERROR"),
    )["server"]
    assert shown["status"] == "ACTIVE"
    return shown


def test_server_backup_shared_and_made_into_a_server_with_both_disks(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    a, b = Tenant(server, make_tenant()), Tenant(server, make_tenant())
    made = _create_server(a, "web")
    disks = {d["device"]: d["id"] for d in made["volumes_attached"]}
    assert sorted(disks) == ["/dev/vda", "/dev/vdb"]
    system_bytes, data_bytes = pattern("system-of-A", 2 * MiB), pattern("data-of-A", 2 * MiB)
    a.write(disks["/dev/vda"], 0, system_bytes)
    a.write(disks["/dev/vdb"], 300 * MiB, data_bytes)
    a.data.request("POST", f"/v1/{a.project}/servers/{made['id']}/stop")

    vault_a = server_vault(a, "servers-a", 20, [made["id"]])
    backup = flows.back_up(a.cbr, vault_a.id, "server-1")
    assert backup.status == "available"
    assert backup.resource_type == "OS::Nova::Server"
    owner_view = a.cbr.show_backup(cbr.ShowBackupRequest(backup_id=backup.id)).backup
    assert len(owner_view.children) == 2
    assert {c.vault_id for c in owner_view.children} == {vault_a.id}

    share(a, backup.id, b)
    assert [x.id for x in shared_with(b, "pending")] == [backup.id]
    # A disk vault does not take a server backup (6713); a server vault does.
    wrong = flows.disk_vault(b.cbr, "disks-b", 20, [])
    mismatch = refused(lambda: accept(b, backup.id, wrong.id))
    assert (mismatch.status_code, mismatch.error_code) == (400, "BackupService.6713")
    vault_b = server_vault(b, "servers-b", 20, [])
    accept(b, backup.id, vault_b.id)
    assert used_mb(b, vault_b.id) > 0

    # What B sees: the owner's project, B's vault, for the backup and each of its disks.
    seen = b.cbr.show_backup(cbr.ShowBackupRequest(backup_id=backup.id)).backup
    assert (seen.project_id, seen.vault_id) == (a.project, vault_b.id)
    assert len(seen.children) == 2
    assert {c.vault_id for c in seen.children} == {vault_b.id}
    assert {c.project_id for c in seen.children} == {a.project}

    # B: a server from the shared backup (our extension), one new disk per backed-up disk.
    created = b.data.request(
        "POST", f"/v3/{b.project}/backups/{backup.id}/servers", {"server": {"name": "copy"}}
    )
    assert wait_job(b, created["job_id"]).status == "SUCCESS"
    copy = b.data.request("GET", f"/v1/{b.project}/servers/{created['server_id']}")["server"]
    assert copy["status"] == "ACTIVE"
    new_disks = {d["device"]: d["id"] for d in copy["volumes_attached"]}
    assert sorted(new_disks) == ["/dev/vda", "/dev/vdb"]
    assert set(new_disks.values()) == set(created["volume_ids"])
    assert b.read(new_disks["/dev/vda"], 0, len(system_bytes)) == system_bytes
    assert b.read(new_disks["/dev/vdb"], 300 * MiB, len(data_bytes)) == data_bytes
    assert b.read(new_disks["/dev/vdb"], 0, 4096) == bytes(4096)

    # A deletes the server backup: gone for B, space back, B's server keeps its bytes.
    a.cbr.delete_backup(cbr.DeleteBackupRequest(backup_id=backup.id))
    assert_gone_for(b, backup.id)
    assert used_mb(b, vault_b.id) == 0
    flows.wait_for(
        "the owner's backup to go",
        lambda: a.cbr.list_backups(cbr.ListBackupsRequest(vault_id=vault_a.id)).backups,
        lambda rows: rows == [],
    )
    assert b.read(new_disks["/dev/vda"], 0, len(system_bytes)) == system_bytes
    assert b.read(new_disks["/dev/vdb"], 300 * MiB, len(data_bytes)) == data_bytes


def test_only_the_owner_deletes_a_shared_backup(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    a, b, c = (Tenant(server, make_tenant()) for _ in range(3))
    source = flows.create_disk(a.evs, "vol", size_gb=1)
    a.write(source, 0, pattern("owned", MiB))
    vault_a = flows.disk_vault(a.cbr, "vault-a", 10, [source])
    backup = flows.back_up(a.cbr, vault_a.id, "b1")
    share(a, backup.id, b)
    vault_b = flows.disk_vault(b.cbr, "vault-b", 10, [])

    def delete_as(tenant: Tenant) -> ClientRequestException:
        return refused(
            lambda: tenant.cbr.delete_backup(cbr.DeleteBackupRequest(backup_id=backup.id))
        )

    pending = delete_as(b)
    assert (pending.status_code, pending.error_code) == (400, "BackupService.6711")
    assert "only the owner" in pending.error_msg
    accept(b, backup.id, vault_b.id)
    accepted = delete_as(b)
    assert (accepted.status_code, accepted.error_code) == (400, "BackupService.6711")
    # A stranger learns nothing (S14).
    stranger = delete_as(c)
    assert (stranger.status_code, stranger.error_code) == (404, "BackupService.6200")
    # Nothing changed: B still holds it, A still owns it.
    assert [x.id for x in shared_with(b, "accepted")] == [backup.id]
    shown = a.cbr.show_backup(cbr.ShowBackupRequest(backup_id=backup.id)).backup
    assert shown.status == "available"
    # Rejecting is how B lets go of it.
    b.cbr.update_member_status(
        cbr.UpdateMemberStatusRequest(
            backup_id=backup.id, member_id=b.project, body=cbr.UpdateMember(status="rejected")
        )
    )
    assert used_mb(b, vault_b.id) == 0
