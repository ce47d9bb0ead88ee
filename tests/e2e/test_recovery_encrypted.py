"""Encrypted backups come back: the KMS key's material, and what a rotation retired, is escrowed
in the store, so after the database is lost the owner, and an account it granted the key to,
restore the same bytes; a server backup comes back with its disks' backups."""

from __future__ import annotations

import json
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkkms.v2 import KmsClient
from huaweicloudsdkkms.v2 import model as kms_model

from opencbr.core.context import Runtime
from opencbr.iam import service as iam
from tests.conftest import LiveServer
from tests.e2e import flows
from tests.e2e.recovery_fixtures import Deployment, run_cli
from tests.e2e.sdk import project_client
from tests.e2e.test_sharing_encrypted import create_key, enable_agency, grant
from tests.e2e.test_sharing_scenario import Tenant, _create_server, accept, pattern, server_vault

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def _tenants(runtime: Runtime, server: LiveServer) -> tuple[Tenant, Tenant]:
    with runtime.database.unit_of_work() as session:
        made = [
            iam.create_tenant(session, runtime.root_key, runtime.settings.regions, n, ["region-1"])
            for n in ("owner", "other")
        ]
    return Tenant(server, made[0]), Tenant(server, made[1])


def _scene(runtime: Runtime, server: LiveServer) -> dict[str, Any]:
    a, b = _tenants(runtime, server)
    kms_a = project_client(KmsClient, server.url, a.creds)
    enable_agency(a)
    enable_agency(b)
    key_id = create_key(kms_a)
    secret = flows.create_disk(
        a.evs, "secret", metadata={"__system__encrypted": "1", "__system__cmkid": key_id}
    )
    data = pattern("encrypted", 2 * MiB)
    a.write(secret, 0, data)
    vault = flows.disk_vault(a.cbr, "secrets", 10, [secret])
    encrypted = flows.back_up(a.cbr, vault.id, "encrypted")
    assert encrypted.extend_info.encrypted is True
    # Rotated after the backup: the disk's data key is wrapped by material now retired, which
    # the store must carry too for the backup to come back readable.
    kms_a.rotate_on_demand(
        kms_model.RotateOnDemandRequest(body=kms_model.OperateKeyRequestBody(key_id=key_id))
    )
    grant(kms_a, key_id, b.creds.domain_id)
    inbox = flows.disk_vault(b.cbr, "inbox", 10, [])
    a.cbr.add_member(
        cbr.AddMemberRequest(backup_id=encrypted.id, body=cbr.AddMembersReq(members=[b.project]))
    )
    accept(b, encrypted.id, inbox.id)

    made = _create_server(a, "web")
    system_disk = next(d["id"] for d in made["volumes_attached"] if d["device"] == "/dev/vda")
    system_bytes = pattern("system", MiB)
    a.write(system_disk, 0, system_bytes)
    servers = server_vault(a, "servers", 20, [made["id"]])
    server_backup = flows.back_up(a.cbr, servers.id, "server")
    return {
        "tenants": (a.creds, b.creds),
        "key_id": key_id,
        "encrypted": encrypted.id,
        "data": data,
        "server_backup": server_backup.id,
        "system_bytes": system_bytes,
        "system_disk": system_disk,
    }


def _server_view(tenant: Tenant, backup_id: str) -> tuple[Any, ...]:
    shown = tenant.cbr.show_backup(cbr.ShowBackupRequest(backup_id=backup_id)).backup
    children = sorted((c.id, c.resource_id, c.vault_id, c.status) for c in shown.children)
    return shown.id, shown.status, shown.vault_id, tuple(children)


def _restore(tenant: Tenant, backup_id: str, length: int) -> bytes:
    disk, job = flows.disk_from_backup(tenant.evs, backup_id, "restored")
    assert job.status == "SUCCESS"
    return tenant.read(disk, 0, length)


def test_encrypted_and_server_backups_come_back(deployment: Deployment) -> None:
    with deployment.running() as (runtime, server):
        scene = _scene(runtime, server)
        owner = Tenant(server, scene["tenants"][0])
        server_before = _server_view(owner, scene["server_backup"])

    deployment.delete_database()
    result = run_cli("admin", "recover", *deployment.cli_args(), "--json")
    assert result.exit_code == 0, result.output
    recovered = json.loads(result.output)["recovered"]
    assert recovered["kms_keys"] >= 1
    assert recovered["kms_grants"] == 1
    assert recovered["kms_materials"] == 1  # the material retired by the rotation

    with deployment.running() as (runtime, server):
        a, b = (Tenant(server, creds) for creds in scene["tenants"])
        kms_a = project_client(KmsClient, server.url, a.creds)
        shown = kms_a.list_key_detail(
            kms_model.ListKeyDetailRequest(
                body=kms_model.OperateKeyRequestBody(key_id=scene["key_id"])
            )
        ).key_info
        assert shown.key_id == scene["key_id"]
        assert _restore(a, scene["encrypted"], 2 * MiB) == scene["data"]
        assert _restore(b, scene["encrypted"], 2 * MiB) == scene["data"]  # by the grant
        assert _server_view(a, scene["server_backup"]) == server_before
        system_backup = next(c[0] for c in server_before[3] if c[1] == scene["system_disk"])
        assert _restore(a, system_backup, MiB) == scene["system_bytes"]
