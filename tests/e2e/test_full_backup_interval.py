"""A policy's `full_backup_interval`: after that many incremental backups of a disk, the
policy's next backup of it is a full one (reads the whole disk, builds on nothing)."""

from __future__ import annotations

from datetime import timedelta

from huaweicloudsdkcbr.v1 import model as m

from opencbr.cbr.scheduler import fire_policy
from opencbr.core.clock import utcnow
from opencbr.core.context import Runtime
from opencbr.core.jobs import WorkerPool
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows
from tests.e2e.test_cbr_policies import EVERY_DAY, policy_body

MiB = 2**20


def test_every_third_policy_backup_is_full_with_an_interval_of_two(
    server: LiveServer, runtime: Runtime, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    creds = make_tenant()
    project, evs_client, cbr_client, data = flows.tenant_clients(server.url, creds)
    disk = flows.create_disk(evs_client, "interval", size_gb=1)
    vault = flows.disk_vault(cbr_client, "interval-vault", 10, [disk])
    policy = cbr_client.create_policy(
        m.CreatePolicyRequest(body=policy_body([EVERY_DAY], max_backups=20, full_backup_interval=2))
    ).policy
    cbr_client.associate_vault_policy(
        m.AssociateVaultPolicyRequest(vault_id=vault.id, body=m.VaultAssociate(policy_id=policy.id))
    )

    kinds = []
    start = utcnow()
    for day in range(6):
        flows.write(data, project, disk, day * MiB, bytes([day + 1]) * MiB)
        (checkpoint_id,) = fire_policy(
            runtime.database, policy.id, start + timedelta(days=day), start + timedelta(days=day)
        )
        (backup,) = flows.wait_for(
            "the policy's backup",
            lambda c=checkpoint_id: (
                cbr_client.list_backups(m.ListBackupsRequest(checkpoint_id=c)).backups
            ),
            lambda found: len(found) == 1 and found[0].status in ("available", "error"),
        )
        assert backup.status == "available"
        kinds.append("incremental" if backup.incremental else "full")
    assert kinds == ["full", "incremental", "incremental"] * 2

    # A manual backup is never forced to be full (it has no policy).
    manual = flows.back_up(cbr_client, vault.id, "manual")
    assert manual.incremental is True
