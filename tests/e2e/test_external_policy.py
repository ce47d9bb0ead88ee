"""An external disk is an ordinary disk resource for vaults: an auto-bind vault that follows a
policy takes it in when the policy fires and backs it up; the next period's backup of it is an
incremental through its dirty bitmap."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from huaweicloudsdkcbr.v1 import model as m

from opencbr.cbr.scheduler import fire_policy
from opencbr.core.clock import utcnow
from opencbr.core.context import Runtime
from opencbr.core.jobs import WorkerPool
from opencbr.evs.external_models import ExternalRead
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows
from tests.e2e import qemu_nbd as q
from tests.e2e.qemu_nbd import MiB
from tests.e2e.test_cbr_policies import EVERY_DAY, policy_body
from tests.e2e.test_external_disks import Cli

pytestmark = pytest.mark.slow


def test_policy_auto_binds_and_backs_up_an_external_disk(
    server: LiveServer,
    runtime: Runtime,
    make_tenant: TenantFactory,
    workers: WorkerPool,
    tmp_path: Path,
) -> None:
    q.need_qemu()
    creds = make_tenant()
    _, _, cbr_client, _ = flows.tenant_clients(server.url, creds)
    vault = m.VaultCreate(
        name="auto",
        resources=[],
        auto_bind=True,
        billing=m.BillingCreate(
            object_type="disk", protect_type="backup", consistent_level="crash_consistent", size=10
        ),
    )
    vault_id = cbr_client.create_vault(
        m.CreateVaultRequest(body=m.VaultCreateReq(vault=vault))
    ).vault.id
    policy = cbr_client.create_policy(
        m.CreatePolicyRequest(body=policy_body([EVERY_DAY], max_backups=20))
    ).policy
    cbr_client.associate_vault_policy(
        m.AssociateVaultPolicyRequest(vault_id=vault_id, body=m.VaultAssociate(policy_id=policy.id))
    )
    image = q.create(tmp_path / "vm.qcow2", "256M")
    q.write(image, (0xAB, 0, 4 * MiB))
    q.run("qemu-img", "bitmap", "--add", str(image), "b0")
    sock = tmp_path / "vm.sock"
    served = q.QemuNbd(image, sock, "b0")
    disk = Cli(server, creds, tmp_path)(
        "disk", "register", "--nbd", served.uri, "--bitmap", "b0", "--name", "vm", "--json"
    )
    start = utcnow()
    modes = []
    try:
        for day in range(2):
            if day:
                served.stop()
                q.write(image, (0x10 + day, 100 * MiB, MiB))
                served = q.QemuNbd(image, sock, "b0")
            now = start + timedelta(days=day)
            (checkpoint_id,) = fire_policy(runtime.database, policy.id, now, now)
            (backup,) = flows.wait_for(
                "the policy's backup",
                lambda c=checkpoint_id: (
                    cbr_client.list_backups(m.ListBackupsRequest(checkpoint_id=c)).backups
                ),
                lambda found: len(found) == 1 and found[0].status in ("available", "error"),
            )
            assert (backup.status, backup.resource_id) == ("available", disk["id"])
            with runtime.database.unit_of_work() as session:
                record = session.get(ExternalRead, backup.id)
                assert record is not None
                modes.append(record.mode)
    finally:
        served.stop()
    assert modes == ["full", "bitmap"]
