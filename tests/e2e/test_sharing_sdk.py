"""Backup sharing through the official SDK (huaweicloudsdkcbr 3.1.219) on a live server.

Vaults, members and logs go through the API; the shared backups are stored backup records
inserted with `stored_backup` (data plane not involved).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from huaweicloudsdkcbr.v1 import CbrClient
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException

from opencbr.cbr.models import GiB
from opencbr.core.context import Runtime
from tests.conftest import LiveServer, TenantFactory
from tests.e2e.sdk import project_client
from tests.e2e.signed import sign
from tests.integration.cbr.sharing_fixtures import MiB, Party, party, stored_backup


@dataclass
class Side:
    party: Party
    sdk: Any

    @property
    def project_id(self) -> str:
        return self.party.project_id


@dataclass
class Scene:
    runtime: Runtime
    server: LiveServer
    owner: Side
    recipient: Side
    outsider: Side
    make: Callable[..., Side]


@pytest.fixture
def scene(runtime: Runtime, server: LiveServer, make_tenant: TenantFactory) -> Scene:
    def make(region: str = "region-1") -> Side:
        creds = make_tenant()
        return Side(
            party(runtime, creds, region), project_client(CbrClient, server.url, creds, region)
        )

    return Scene(runtime, server, make(), make(), make(), make)


def _vault(side: Side, object_type: str = "disk", size_gb: int = 10) -> str:
    billing = cbr.BillingCreate(
        object_type=object_type,
        protect_type="backup",
        consistent_level="crash_consistent",
        size=size_gb,
    )
    vault = cbr.VaultCreate(name=f"v-{object_type}", resources=[], billing=billing)
    request = cbr.CreateVaultRequest(body=cbr.VaultCreateReq(vault=vault))
    vault_id: str = side.sdk.create_vault(request).vault.id
    return vault_id


def _backup(scene: Scene, size_bytes: int = GiB // 2, **kwargs: Any) -> str:
    return stored_backup(
        scene.runtime, scene.owner.party, _vault(scene.owner), size_bytes=size_bytes, **kwargs
    )


def _add(side: Side, backup_id: str, *projects: str) -> Any:
    body = cbr.AddMembersReq(members=list(projects))
    return side.sdk.add_member(cbr.AddMemberRequest(backup_id=backup_id, body=body))


def _decide(side: Side, backup_id: str, status: str, vault_id: str | None = None) -> Any:
    request = cbr.UpdateMemberStatusRequest(
        backup_id=backup_id,
        member_id=side.project_id,
        body=cbr.UpdateMember(status=status, vault_id=vault_id),
    )
    return side.sdk.update_member_status(request).member


def _shared(side: Side, status: str | None = None) -> list[Any]:
    request = cbr.ListBackupsRequest(own_type="shared", member_status=status)
    return list(side.sdk.list_backups(request).backups)


def _used_mb(side: Side, vault_id: str) -> float:
    return float(side.sdk.show_vault(cbr.ShowVaultRequest(vault_id=vault_id)).vault.billing.used)


def refused(call: Callable[[], Any]) -> ClientRequestException:
    with pytest.raises(ClientRequestException) as caught:
        call()
    return caught.value


def test_sdk_share_accept_and_cancel(scene: Scene) -> None:
    owner, recipient = scene.owner, scene.recipient
    backup_id = _backup(scene, size_bytes=512 * MiB)
    added = _add(owner, backup_id, recipient.project_id).members
    assert [(m.dest_project_id, m.status) for m in added] == [(recipient.project_id, "pending")]
    # B finds it among pending shares, with the owner's project and the encrypted flag.
    pending = _shared(recipient, "pending")
    assert [b.id for b in pending] == [backup_id]
    assert pending[0].project_id == owner.project_id
    assert pending[0].extend_info.encrypted is False
    vault_id = _vault(recipient)
    member = _decide(recipient, backup_id, "accepted", vault_id)
    assert (member.status, member.vault_id) == ("accepted", vault_id)
    assert _used_mb(recipient, vault_id) == 512
    shown = recipient.sdk.show_backup(cbr.ShowBackupRequest(backup_id=backup_id)).backup
    assert (shown.vault_id, shown.project_id) == (vault_id, owner.project_id)
    in_vault = recipient.sdk.list_backups(
        cbr.ListBackupsRequest(own_type="all_granted", vault_id=vault_id)
    ).backups
    assert [b.id for b in in_vault] == [backup_id]
    # The owner sees the member, filtered, and one member's detail; so does the recipient.
    listed = owner.sdk.show_members_detail(
        cbr.ShowMembersDetailRequest(backup_id=backup_id, status="accepted")
    )
    assert [(m.dest_project_id, m.vault_id) for m in listed.members] == [
        (recipient.project_id, vault_id)
    ]
    for side in (owner, recipient):
        detail = side.sdk.show_member_detail(
            cbr.ShowMemberDetailRequest(backup_id=backup_id, member_id=recipient.project_id)
        ).member
        assert detail.status == "accepted"
    # Cancel: gone from B, B's space freed.
    owner.sdk.delete_member(
        cbr.DeleteMemberRequest(backup_id=backup_id, member_id=recipient.project_id)
    )
    assert _shared(recipient) == []
    assert _used_mb(recipient, vault_id) == 0
    error = refused(lambda: recipient.sdk.show_backup(cbr.ShowBackupRequest(backup_id=backup_id)))
    assert (error.status_code, error.error_code) == (404, "BackupService.6200")


def test_sdk_refusals_carry_the_reference_codes(scene: Scene) -> None:
    owner, recipient = scene.owner, scene.recipient
    backup_id = _backup(scene, size_bytes=GiB)
    _add(owner, backup_id, recipient.project_id)
    far = scene.make("region-2")
    vault_id = _vault(recipient)
    cases: list[tuple[Callable[[], Any], int, str]] = [
        (lambda: _add(owner, backup_id, recipient.project_id), 400, "BackupService.6703"),
        (lambda: _add(owner, backup_id, far.project_id), 400, "BackupService.6704"),
        (lambda: _add(owner, backup_id, owner.project_id), 400, "BackupService.6704"),
        (lambda: _add(recipient, backup_id, scene.outsider.project_id), 400, "BackupService.6714"),
        (lambda: _decide(recipient, backup_id, "maybe"), 400, "BackupService.6706"),
        (lambda: _decide(recipient, backup_id, "accepted"), 400, "BackupService.6706"),
        (
            lambda: _decide(recipient, backup_id, "accepted", _vault(owner)),
            404,
            "BackupService.6105",
        ),
        (
            lambda: _decide(recipient, backup_id, "accepted", _vault(recipient, "server")),
            400,
            "BackupService.6713",
        ),
        (
            lambda: _decide(recipient, backup_id, "accepted", _vault(recipient, size_gb=1)),
            400,
            "BackupService.6114",
        ),
        (
            lambda: owner.sdk.update_member_status(
                cbr.UpdateMemberStatusRequest(
                    backup_id=backup_id,
                    member_id=recipient.project_id,
                    body=cbr.UpdateMember(status="accepted", vault_id=vault_id),
                )
            ),
            400,
            "BackupService.6707",
        ),
        (
            lambda: owner.sdk.show_member_detail(
                cbr.ShowMemberDetailRequest(backup_id=backup_id, member_id="0" * 32)
            ),
            404,
            "BackupService.6705",
        ),
        (
            lambda: scene.outsider.sdk.show_members_detail(
                cbr.ShowMembersDetailRequest(backup_id=backup_id)
            ),
            404,
            "BackupService.6200",
        ),
        (
            lambda: scene.outsider.sdk.show_backup(cbr.ShowBackupRequest(backup_id=backup_id)),
            404,
            "BackupService.6200",
        ),
    ]
    for call, status, code in cases:
        error = refused(call)
        assert (error.status_code, error.error_code) == (status, code), error.error_msg
        assert error.request_id
    # Nothing changed: still one pending member, nothing reserved.
    members = owner.sdk.show_members_detail(cbr.ShowMembersDetailRequest(backup_id=backup_id))
    assert [(m.dest_project_id, m.status) for m in members.members] == [
        (recipient.project_id, "pending")
    ]
    assert _used_mb(recipient, vault_id) == 0


def test_sdk_eleventh_member_is_refused(scene: Scene) -> None:
    backup_id = _backup(scene)
    sides = [scene.make() for _ in range(11)]
    _add(scene.owner, backup_id, *(s.project_id for s in sides[:10]))
    error = refused(lambda: _add(scene.owner, backup_id, sides[10].project_id))
    assert (error.status_code, error.error_code) == (400, "BackupService.6701")
    listed = scene.owner.sdk.show_members_detail(
        cbr.ShowMembersDetailRequest(backup_id=backup_id, limit=4, offset=8)
    )
    assert len(listed.members) == 2
    assert json.loads(listed.raw_content)["count"] == 10


def test_sdk_delete_cascades_to_recipients(scene: Scene) -> None:
    owner, recipient = scene.owner, scene.recipient
    backup_id = _backup(scene, size_bytes=256 * MiB)
    _add(owner, backup_id, recipient.project_id)
    vault_id = _vault(recipient)
    _decide(recipient, backup_id, "accepted", vault_id)
    assert _used_mb(recipient, vault_id) == 256
    owner.sdk.delete_backup(cbr.DeleteBackupRequest(backup_id=backup_id))
    assert _shared(recipient) == []
    assert _used_mb(recipient, vault_id) == 0
    error = refused(lambda: recipient.sdk.show_backup(cbr.ShowBackupRequest(backup_id=backup_id)))
    assert (error.status_code, error.error_code) == (404, "BackupService.6200")
    logs = recipient.sdk.list_op_logs(cbr.ListOpLogsRequest(operation_type="share"))
    actions = sorted(json.loads(logs.raw_content)["operation_logs"], key=lambda x: x["created_at"])
    assert [log["extra_info"]["share"]["action"] for log in actions] == [
        "add",
        "accept",
        "cascade-delete",
    ]


def test_accept_with_auto_bind_switches_it_on(scene: Scene) -> None:
    owner, recipient = scene.owner, scene.recipient
    backup_id = _backup(scene)
    _add(owner, backup_id, recipient.project_id)
    vault_id = _vault(recipient)
    path = f"/v3/{recipient.project_id}/backups/{backup_id}/members/{recipient.project_id}"
    url = scene.server.url + path
    body = json.dumps({"status": "accepted", "vault_id": vault_id, "auto_bind": True}).encode()
    creds = recipient.party.creds
    headers = sign("PUT", url, creds.access_key, creds.secret_key, body=body)
    response = httpx.put(url, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["member"]["status"] == "accepted"
    vault = recipient.sdk.show_vault(cbr.ShowVaultRequest(vault_id=vault_id)).vault
    assert vault.auto_bind is True


def test_sdk_both_sides_read_the_share_logs(scene: Scene) -> None:
    owner, recipient = scene.owner, scene.recipient
    backup_id = _backup(scene)
    _add(owner, backup_id, recipient.project_id)
    _decide(recipient, backup_id, "rejected")
    for side in (owner, recipient):
        logs = side.sdk.list_op_logs(cbr.ListOpLogsRequest(operation_type="share"))
        raw = json.loads(logs.raw_content)["operation_logs"]
        assert sorted(log["extra_info"]["share"]["action"] for log in raw) == ["add", "reject"]
        assert {log["extra_info"]["share"]["backup_id"] for log in raw} == {backup_id}
        one = side.sdk.show_op_log(cbr.ShowOpLogRequest(operation_log_id=raw[0]["id"]))
        assert one.operation_log.operation_type == "share"
    foreign = json.loads(
        scene.outsider.sdk.list_op_logs(cbr.ListOpLogsRequest(operation_type="share")).raw_content
    )
    assert foreign["operation_logs"] == []
