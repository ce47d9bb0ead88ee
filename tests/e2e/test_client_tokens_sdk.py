"""Idempotent create calls through the official SDK (huaweicloudsdkcbr/evs/kms 3.1.219), which
sends `X-Client-Token` as a custom header (`*_invoker(request).add_header(...)`): a retry
answers the first call's answer and does nothing; the same token with another body is
refused and changes nothing; a burst of concurrent retries does the work once; tokens are per
project; expired tokens are purged by the workers' periodic tick."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import CbrClient
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkevs.v2 import model as evs
from huaweicloudsdkkms.v2 import KmsClient
from huaweicloudsdkkms.v2 import model as kms_model
from sqlalchemy import func, select, text, update

from opencbr.cbr.models import Checkpoint, Member, Policy, Vault
from opencbr.cli.client import ApiError
from opencbr.core.context import Runtime
from opencbr.core.idempotency import HEADER, ClientToken, purge_tick
from opencbr.core.jobs import Job, WorkerPool
from opencbr.evs.models import Disk, Server, Snapshot
from opencbr.kms.models import Grant, Key
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows
from tests.e2e.sdk import project_client

Call = Callable[[str], Any]  # a token -> the SDK's answer


def _count(runtime: Runtime, model: Any) -> int:
    with runtime.database.unit_of_work() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _retried(runtime: Runtime, model: Any, first: Call, other: Call, code: str) -> Any:
    """The first answer, after checking that its retry answers the same and adds no row of
    `model`, and that the token with another body is refused and adds none either."""
    token = str(uuid.uuid4())
    answer = first(token)
    rows = _count(runtime, model)
    again = first(token)
    assert again.raw_content == answer.raw_content
    assert again.status_code == answer.status_code
    assert _count(runtime, model) == rows
    with pytest.raises(ClientRequestException) as refused:
        other(token)
    assert (refused.value.status_code, refused.value.error_code) == (409, code)
    assert token in refused.value.error_msg
    assert _count(runtime, model) == rows
    return answer


def _vault_body(name: str, disks: list[str]) -> Any:
    vault = cbr.VaultCreate(
        name=name,
        resources=[cbr.ResourceCreate(id=d, type="OS::Cinder::Volume") for d in disks],
        billing=cbr.BillingCreate(
            object_type="disk", protect_type="backup", consistent_level="crash_consistent", size=10
        ),
    )
    return cbr.CreateVaultRequest(body=cbr.VaultCreateReq(vault=vault))


def _with_token(invoker: Any, token: str) -> Any:
    return invoker.add_header(HEADER, token).invoke()


def test_each_create_call_answers_its_retry_once(
    runtime: Runtime, server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    owner = flows.tenant_clients(server.url, make_tenant())
    recipient = flows.tenant_clients(server.url, make_tenant())
    third = flows.tenant_clients(server.url, make_tenant())

    def volume(name: str) -> Call:
        option = evs.CreateVolumeOption(
            availability_zone="az1", volume_type="SAS", size=1, name=name
        )
        request = evs.CreateVolumeRequest(body=evs.CreateVolumeRequestBody(volume=option))
        return lambda t: _with_token(owner.evs.create_volume_invoker(request), t)

    created = _retried(runtime, Disk, volume("disk"), volume("other"), "EVS.0437")
    disk = created.volume_ids[0]
    flows.wait_for("disk", lambda: flows.disk_status(owner.evs, disk), lambda s: s == "available")

    def vault(name: str) -> Call:
        return lambda t: _with_token(owner.cbr.create_vault_invoker(_vault_body(name, [disk])), t)

    vault_id = _retried(runtime, Vault, vault("v"), vault("w"), "BackupService.9947").vault.id

    def policy(days: int) -> Call:
        definition = cbr.PolicyoODCreate(retention_duration_days=days)
        pattern = ["FREQ=DAILY;INTERVAL=1;BYHOUR=6;BYMINUTE=00"]
        body = cbr.PolicyCreateReq(
            policy=cbr.PolicyCreate(
                name="p",
                operation_type="backup",
                operation_definition=definition,
                trigger=cbr.PolicyTriggerReq(
                    properties=cbr.PolicyTriggerPropertiesReq(pattern=pattern)
                ),
            )
        )
        request = cbr.CreatePolicyRequest(body=body)
        return lambda t: _with_token(owner.cbr.create_policy_invoker(request), t)

    _retried(runtime, Policy, policy(7), policy(8), "BackupService.9947")

    def checkpoint(name: str) -> Call:
        params = cbr.CheckpointParam(name=name, incremental=True)
        body = cbr.VaultBackupReq(checkpoint=cbr.VaultBackup(vault_id=vault_id, parameters=params))
        request = cbr.CreateCheckpointRequest(body=body)
        return lambda t: _with_token(owner.cbr.create_checkpoint_invoker(request), t)

    taken = _retried(runtime, Checkpoint, checkpoint("b"), checkpoint("c"), "BackupService.9947")
    backup = flows.wait_for(
        "backup",
        lambda: (
            owner.cbr.list_backups(
                cbr.ListBackupsRequest(checkpoint_id=taken.checkpoint.id)
            ).backups
        ),
        lambda b: len(b) == 1 and b[0].status == "available",
    )[0]

    def share(project: str) -> Call:
        body = cbr.AddMembersReq(members=[project])
        request = cbr.AddMemberRequest(backup_id=backup.id, body=body)
        return lambda t: _with_token(owner.cbr.add_member_invoker(request), t)

    _retried(runtime, Member, share(recipient.project), share(third.project), "BackupService.9947")

    their_vault = flows.disk_vault(recipient.cbr, "theirs", 10, []).id

    def answer(status: str) -> Call:
        body = cbr.UpdateMember(status=status, vault_id=their_vault)
        request = cbr.UpdateMemberStatusRequest(
            backup_id=backup.id, member_id=recipient.project, body=body
        )
        return lambda t: _with_token(recipient.cbr.update_member_status_invoker(request), t)

    accepted = _retried(
        runtime, Member, answer("accepted"), answer("rejected"), "BackupService.9947"
    )
    assert accepted.member.status == "accepted"

    def restore(volume_id: str) -> Call:
        body = cbr.BackupRestoreReq(restore=cbr.BackupRestore(volume_id=volume_id))
        request = cbr.RestoreBackupRequest(backup_id=backup.id, body=body)
        return lambda t: _with_token(owner.cbr.restore_backup_invoker(request), t)

    _retried(runtime, Job, restore(disk), restore(str(uuid.uuid4())), "BackupService.9947")
    flows.wait_for(
        "restore", lambda: flows.disk_status(owner.evs, disk), lambda s: s == "available"
    )

    def snapshot(name: str) -> Call:
        option = evs.CreateSnapshotOption(volume_id=disk, name=name)
        request = evs.CreateSnapshotRequest(body=evs.CreateSnapshotRequestBody(snapshot=option))
        return lambda t: _with_token(owner.evs.create_snapshot_invoker(request), t)

    _retried(runtime, Snapshot, snapshot("s"), snapshot("t"), "EVS.0437")
    _server_retried(runtime, owner)


def _server_retried(runtime: Runtime, owner: flows.TenantClients) -> None:
    """CreateServer, our extension, through the CLI's signed client."""
    path, token = f"/v1/{owner.project}/servers", str(uuid.uuid4())

    def body(name: str) -> dict[str, Any]:
        disks = {"system_disk": {"size": 1}, "data_disks": []}
        return {"server": {"name": name, "availability_zone": "az1", "flavor": "s1.small", **disks}}

    first = owner.data.request("POST", path, body("s"), client_token=token)
    servers = _count(runtime, Server)
    assert owner.data.request("POST", path, body("s"), client_token=token) == first
    with pytest.raises(ApiError) as refused:
        owner.data.request("POST", path, body("t"), client_token=token)
    assert (refused.value.status, refused.value.code) == (409, "EVS.0437")
    assert _count(runtime, Server) == servers
    flows.wait_for(
        "server",
        lambda: owner.evs.show_job(evs.ShowJobRequest(job_id=first["job_id"])).status,
        lambda s: s in ("SUCCESS", "FAIL"),
    )


def test_concurrent_retries_do_the_work_once_and_tokens_are_per_project(
    runtime: Runtime, server: LiveServer, make_tenant: TenantFactory
) -> None:
    """The retries wait behind a lock the test holds, so they all run while the others do."""
    creds, other = make_tenant(), make_tenant()
    clients = [project_client(CbrClient, server.url, creds) for _ in range(4)]
    token, answers, failures = str(uuid.uuid4()), [], []

    def create(client: Any) -> None:
        try:
            answers.append(_with_token(client.create_vault_invoker(_vault_body("c", [])), token))
        except Exception as error:  # reported below, with the answers
            failures.append(error)

    threads = [threading.Thread(target=create, args=(c,)) for c in clients]
    with runtime.database.sessions() as holder:
        if not runtime.database.is_sqlite:
            holder.execute(text("LOCK TABLE client_tokens IN EXCLUSIVE MODE"))
        else:  # SQLite: the holder's BEGIN IMMEDIATE takes the write lock
            holder.execute(text("DELETE FROM client_tokens WHERE 1 = 0"))
        for thread in threads:
            thread.start()
        threading.Event().wait(0.5)  # let every request reach the lock
        holder.commit()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(answers) == 4
    assert len({a.vault.id for a in answers}) == 1
    project = creds.projects["region-1"]
    with runtime.database.unit_of_work() as session:
        mine = session.scalars(select(Vault.id).where(Vault.project_id == project)).all()
    assert mine == [answers[0].vault.id]

    theirs = project_client(CbrClient, server.url, other)
    own = _with_token(theirs.create_vault_invoker(_vault_body("c", [])), token)
    assert own.vault.id != answers[0].vault.id  # another project's token: new work


def test_expired_tokens_are_purged_and_then_name_new_work(
    runtime: Runtime, server: LiveServer, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    client, client_project = (
        project_client(CbrClient, server.url, creds),
        creds.projects["region-1"],
    )
    token = str(uuid.uuid4())
    first = _with_token(client.create_vault_invoker(_vault_body("e", [])), token)
    with runtime.database.unit_of_work() as session:
        session.execute(
            update(ClientToken)
            .where(ClientToken.token == token)
            .values(created_at=ClientToken.created_at - timedelta(hours=24, seconds=1))
        )
    purge_tick(runtime, every=timedelta(0))()
    with runtime.database.unit_of_work() as session:
        assert session.get(ClientToken, (client_project, token)) is None
    again = _with_token(client.create_vault_invoker(_vault_body("e", [])), token)
    assert again.vault.id != first.vault.id


def test_kms_create_calls_answer_their_retry_once(
    runtime: Runtime, server: LiveServer, make_tenant: TenantFactory
) -> None:
    owner, grantee = make_tenant(), make_tenant()
    kms = project_client(KmsClient, server.url, owner)

    def key(alias: str) -> Call:
        body = kms_model.CreateKeyRequestBody(key_alias=alias)
        request = kms_model.CreateKeyRequest(body=body)
        return lambda t: _with_token(kms.create_key_invoker(request), t)

    alias = f"k-{uuid.uuid4().hex[:8]}"
    made = _retried(runtime, Key, key(alias), key(alias + "x"), "KMS.0214")

    def grant(operations: list[str]) -> Call:
        body = kms_model.CreateGrantRequestBody(
            key_id=made.key_info.key_id,
            grantee_principal=grantee.domain_id,
            grantee_principal_type="domain",
            operations=operations,
        )
        request = kms_model.CreateGrantRequest(body=body)
        return lambda t: _with_token(kms.create_grant_invoker(request), t)

    _retried(runtime, Grant, grant(["create-datakey"]), grant(["decrypt-datakey"]), "KMS.0214")


@pytest.mark.parametrize("token", ["x" * 65, "two words"])
def test_a_malformed_token_is_refused_and_nothing_made(
    runtime: Runtime, server: LiveServer, make_tenant: TenantFactory, token: str
) -> None:
    client = project_client(CbrClient, server.url, make_tenant())
    vaults = _count(runtime, Vault)
    with pytest.raises(ClientRequestException) as refused:
        _with_token(client.create_vault_invoker(_vault_body("m", [])), token)
    assert (refused.value.status_code, refused.value.error_code) == (400, "BackupService.9900")
    assert "X-Client-Token" in refused.value.error_msg
    assert _count(runtime, Vault) == vaults
