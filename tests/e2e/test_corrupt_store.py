"""A backup whose stored bytes were damaged fails to restore with one error code, the same in
the job (EVS ShowJob) and in the operation log (CBR), and the one documented in docs/errors.md:
never the store's own names for the fault."""

from __future__ import annotations

import os
from pathlib import Path

from huaweicloudsdkcbr.v1 import model as cbr

from opencbr.cbr.errors import BackupDataCorrupt
from opencbr.core.context import Runtime
from opencbr.core.jobs import WorkerPool
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def _damage_every_pack(store: Path) -> None:
    """Flip a byte near the end of each pack: inside its last blob."""
    packs = [p for p in (store / "packs").rglob("*") if p.is_file()]
    assert packs
    for pack in packs:
        data = bytearray(pack.read_bytes())
        data[-5] ^= 0x40
        pack.write_bytes(bytes(data))


def test_a_damaged_backup_fails_with_one_documented_code(
    server: LiveServer, workers: WorkerPool, make_tenant: TenantFactory, runtime: Runtime
) -> None:
    clients = flows.tenant_clients(server.url, make_tenant())
    disk = flows.create_disk(clients.evs, "to-damage")
    flows.write(clients.data, clients.project, disk, 0, os.urandom(64 * 1024))
    vault = flows.disk_vault(clients.cbr, "to-damage", 10, [disk])
    backup = flows.back_up(clients.cbr, vault.id, "to-damage")
    assert backup.status == "available"
    _damage_every_pack(Path(runtime.settings.data_dir) / "store")

    _, job = flows.disk_from_backup(clients.evs, backup.id, "from-damaged")
    assert job.status == "FAIL"
    assert job.error_code == BackupDataCorrupt.code

    clients.cbr.restore_backup(
        cbr.RestoreBackupRequest(
            backup_id=backup.id,
            body=cbr.BackupRestoreReq(restore=cbr.BackupRestore(volume_id=disk)),
        )
    )
    logs = flows.wait_for(
        "the restore's log",
        lambda: (
            clients.cbr.list_op_logs(cbr.ListOpLogsRequest(operation_type="restore")).operation_logs
        ),
        lambda logs: logs and logs[0].status == "failed",
    )
    assert logs[0].error_info.code == BackupDataCorrupt.code
    assert f"`{BackupDataCorrupt.code}`" in DOCS.read_text()
