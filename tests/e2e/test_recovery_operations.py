"""The operator's other disaster-recovery verbs: `admin rotate-root-key`, `admin catalogue
sync` (a store made before the catalogue) and `admin db backup`."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkkms.v2 import KmsClient
from huaweicloudsdkkms.v2 import model as kms_model

from opencbr.iam import service as iam
from opencbr.iam.service import TenantCredentials
from tests.e2e import flows
from tests.e2e.recovery_fixtures import Deployment, run_cli
from tests.e2e.sdk import project_client
from tests.e2e.test_sharing_encrypted import create_key, enable_agency
from tests.e2e.test_sharing_scenario import Tenant

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def _backed_up(url: str, creds: TenantCredentials) -> tuple[str, bytes]:
    clients = flows.tenant_clients(url, creds)
    disk = flows.create_disk(clients.evs, "source")
    data = os.urandom(MiB)
    flows.write(clients.data, clients.project, disk, 0, data)
    vault = flows.disk_vault(clients.cbr, "vault", 10, [disk])
    return flows.back_up(clients.cbr, vault.id, "backup").id, data


def _tenant(deployment: Deployment, runtime: object) -> TenantCredentials:
    from opencbr.core.context import Runtime

    assert isinstance(runtime, Runtime)
    with runtime.database.unit_of_work() as session:
        return iam.create_tenant(
            session, runtime.root_key, runtime.settings.regions, "tenant", ["region-1"]
        )


def _restores(url: str, creds: TenantCredentials, backup_id: str) -> bytes:
    clients = flows.tenant_clients(url, creds)
    disk, job = flows.disk_from_backup(clients.evs, backup_id, "restored")
    assert job.status == "SUCCESS"
    return flows.read(clients.data, clients.project, disk, 0, MiB)


def test_a_rotated_root_key_and_a_synced_catalogue_still_recover(deployment: Deployment) -> None:
    with deployment.running() as (runtime, server):
        creds = _tenant(deployment, runtime)
        backup_id, data = _backed_up(server.url, creds)
    old_key = (deployment.data_dir / "root.key").read_bytes()

    rotated = run_cli("admin", "rotate-root-key", *deployment.cli_args())
    assert rotated.exit_code == 0, rotated.output
    assert (deployment.data_dir / "root.key").read_bytes() != old_key
    assert not (deployment.data_dir / "root.key.new").exists()
    with deployment.running() as (runtime, server):  # the same access key, the same bytes
        assert _restores(server.url, creds, backup_id) == data

    # A store made before the catalogue existed: sync writes it from the database.
    shutil.rmtree(deployment.data_dir / "store" / "catalogue")
    synced = run_cli("admin", "catalogue", "sync", *deployment.cli_args(), "--json")
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.output) == {"backups": 1, "domains": 1, "scopes": 1}

    deployment.delete_database()
    recovered = run_cli("admin", "recover", *deployment.cli_args(), "--json")
    assert recovered.exit_code == 0, recovered.output
    with deployment.running() as (runtime, server):
        clients = flows.tenant_clients(server.url, creds)
        listed = clients.cbr.list_backups(cbr.ListBackupsRequest()).backups
        assert [b.id for b in listed] == [backup_id]
        assert _restores(server.url, creds, backup_id) == data


def test_db_backup_copies_sqlite_online_and_points_postgresql_to_pg_dump(
    deployment: Deployment,
) -> None:
    copy = deployment.data_dir.parent / "copy.db"
    with deployment.running() as (runtime, _server):
        creds = _tenant(deployment, runtime)
        result = run_cli("admin", "db", "backup", str(copy), *deployment.cli_args())
    if deployment.kind == "postgresql":
        assert result.exit_code != 0
        assert "pg_dump" in result.output
        return
    assert result.exit_code == 0, result.output
    deployment.delete_database()
    shutil.copy(copy, deployment.sqlite_path)
    with deployment.running() as (_runtime, server):
        clients = flows.tenant_clients(server.url, creds)
        assert clients.cbr.list_backups(cbr.ListBackupsRequest()).backups == []


def test_keys_rotated_in_kms_survive_a_root_key_rotation_and_a_deep_scrub(
    deployment: Deployment,
) -> None:
    """A KMS rotation retires material that still opens older data keys: rotating the root key
    re-seals it too, and a deep scrub opens the scope with it."""
    with deployment.running() as (runtime, server):
        creds = _tenant(deployment, runtime)
        tenant = Tenant(server, creds)
        enable_agency(tenant)
        kms = project_client(KmsClient, server.url, creds)
        key_id = create_key(kms)
        metadata = {"__system__encrypted": "1", "__system__cmkid": key_id}
        disk = flows.create_disk(tenant.evs, "secret", metadata=metadata)
        data = os.urandom(MiB)
        tenant.write(disk, 0, data)
        vault = flows.disk_vault(tenant.cbr, "secrets", 10, [disk])
        backup_id = flows.back_up(tenant.cbr, vault.id, "before-rotation").id
        kms.rotate_on_demand(
            kms_model.RotateOnDemandRequest(body=kms_model.OperateKeyRequestBody(key_id=key_id))
        )

    rotated = run_cli("admin", "rotate-root-key", *deployment.cli_args())
    assert rotated.exit_code == 0, rotated.output
    scrubbed = run_cli("store", "verify", "--deep", *deployment.cli_args(), "--json")
    assert scrubbed.exit_code == 0, scrubbed.output
    assert json.loads(scrubbed.output)["ok"] is True
    with deployment.running() as (runtime, server):
        assert _restores(server.url, creds, backup_id) == data
