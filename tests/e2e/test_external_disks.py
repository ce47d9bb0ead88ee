"""External disks on a live server with real QEMU tools: a qcow2 with a persistent dirty
bitmap served by `qemu-nbd -B`, registered with `opencbr disk register`, backed up through
a vault (full, then incrementals through the bitmap), restored onto new qcow2 images served by
`qemu-nbd` and compared with `qemu-img compare`, shared and turned into an OpenCBR disk,
and the faults: bitmap reset (full read, reason kept) and the server killed mid-backup."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import model as cbr
from typer.testing import CliRunner

from opencbr.cbr.models import Backup
from opencbr.cli.main import app
from opencbr.core.context import Runtime
from opencbr.core.jobs import WorkerPool
from opencbr.evs.external_models import ExternalRead
from opencbr.iam.service import TenantCredentials
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows
from tests.e2e import qemu_nbd as q
from tests.e2e.qemu_nbd import MiB

pytestmark = pytest.mark.slow


class Cli:
    def __init__(self, server: LiveServer, creds: TenantCredentials, home: Path) -> None:
        self.env = {
            "OPENCBR_ENDPOINT": server.url,
            "OPENCBR_ACCESS_KEY": creds.access_key,
            "OPENCBR_SECRET_KEY": creds.secret_key,
            "OPENCBR_PROJECT_ID": creds.projects["region-1"],
            "XDG_CONFIG_HOME": str(home),
        }

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = CliRunner().invoke(app, list(args), env=self.env)
        assert result.exit_code == code, result.output
        # stdout alone: progress lines go to stderr, which the runner also puts in `output`
        return json.loads(result.stdout) if code == 0 and "--json" in args else result.output


def _read_record(runtime: Runtime, backup_id: str) -> ExternalRead:
    with runtime.database.unit_of_work() as session:
        row = session.get(ExternalRead, backup_id)
        assert row is not None
        session.expunge(row)
        return row


def _restore_and_compare(cli: Cli, tmp: Path, backup_id: str, expected: Path, name: str) -> None:
    target = q.create(tmp / f"{name}.qcow2", "1G")
    q.write(target, (0x77, 0, 8 * MiB))  # garbage the restore must zero
    served = q.QemuNbd(target, tmp / f"{name}.sock", writable=True)
    try:
        done = cli("restore", backup_id, "--nbd", served.uri, "--wait", "--json")
        assert done["status"] == "success", done
    finally:
        served.stop()
    assert q.identical(expected, target)


def test_external_disk_backup_incremental_restore_share_and_faults(
    runtime: Runtime,
    server: LiveServer,
    make_tenant: TenantFactory,
    workers: WorkerPool,
    tmp_path: Path,
) -> None:
    q.need_qemu()
    creds = make_tenant()
    _, _, cbr_client, _ = flows.tenant_clients(server.url, creds)
    cli = Cli(server, creds, tmp_path)
    image = q.create(tmp_path / "vm.qcow2", "1G")
    q.write(image, (0xAB, 0, 24 * MiB), (0xCD, 300 * MiB, 8 * MiB))
    q.run("qemu-img", "bitmap", "--add", str(image), "b0")
    shutil.copy(image, tmp_path / "t0.qcow2")
    upstream = tmp_path / "qemu.sock"
    proxy = q.CountingProxy(tmp_path / "proxy.sock", upstream)
    served = q.QemuNbd(image, upstream, "b0")
    try:
        disk = cli(
            "disk", "register", "--nbd", proxy.uri, "--bitmap", "b0", "--name", "vm", "--json"
        )
        assert (disk["size_bytes"], disk["source"], disk["bitmap"]) == (1 << 30, proxy.uri, "b0")
        listed = cli("disk", "sources", "--json")
        assert [d["id"] for d in listed] == [disk["id"]]
        vault = flows.disk_vault(cbr_client, "vms", 10, [disk["id"]])

        proxy.reset()
        full = flows.back_up(cbr_client, vault.id, "full")
        assert full.status == "available", full
        full_read = proxy.reset()
        assert 32 * MiB <= full_read < 34 * MiB  # the allocated extents only, not 1 GiB
        assert _read_record(runtime, full.id).mode == "full"
    finally:
        served.stop()

    q.write(image, (0x11, 100 * MiB, MiB), (0x22, 600 * MiB, 64 << 10))
    shutil.copy(image, tmp_path / "t1.qcow2")
    served = q.QemuNbd(image, upstream, "b0")
    try:
        incremental = flows.back_up(cbr_client, vault.id, "incremental")
        assert incremental.status == "available", incremental
        incremental_read = proxy.reset()
        assert incremental_read < MiB + (64 << 10) + (256 << 10)  # the dirty extents only
        record = _read_record(runtime, incremental.id)
        assert (record.mode, record.bitmap, record.reason) == ("bitmap", "b0", "")
        assert record.marked == [[100 * MiB, MiB], [600 * MiB, 64 << 10]]
    finally:
        served.stop()
    _restore_and_compare(cli, tmp_path, full.id, tmp_path / "t0.qcow2", "r0")
    _restore_and_compare(cli, tmp_path, incremental.id, tmp_path / "t1.qcow2", "r1")

    # The bitmap is reset (as after a migration): the next backup reads everything, says why.
    q.run("qemu-img", "bitmap", "--clear", str(image), "b0")
    q.write(image, (0x33, 700 * MiB, MiB))
    shutil.copy(image, tmp_path / "t2.qcow2")
    served = q.QemuNbd(image, upstream, "b0")
    try:
        after_reset = flows.back_up(cbr_client, vault.id, "after-reset")
        assert after_reset.status == "available", after_reset
        assert proxy.reset() >= 34 * MiB
        record = _read_record(runtime, after_reset.id)
        assert record.mode == "full"
        assert "no longer marks" in record.reason
        shown = cli("backup", "show", after_reset.id, "--json")["extend_info"]["external_source"]
        assert (shown["bitmap"], shown["read"]) == ("b0", "full")
        assert shown["full_read_reason"].startswith("dirty bitmap b0 no longer marks")
        assert "no longer marks" in cli("backup", "show", after_reset.id)
    finally:
        served.stop()
    _restore_and_compare(cli, tmp_path, after_reset.id, tmp_path / "t2.qcow2", "r2")

    # The server is killed mid-backup: the backup ends in error naming the source; the next
    # run (server back) succeeds and restores equal.
    q.run("qemu-img", "bitmap", "--clear", str(image), "b0")
    q.write(image, (0x44, 400 * MiB, 64 * MiB))
    shutil.copy(image, tmp_path / "t3.qcow2")
    served = q.QemuNbd(image, upstream, "b0")
    proxy.kill_after, proxy.on_limit = 8 * MiB, served.kill
    killed = flows.back_up(cbr_client, vault.id, "killed")
    assert killed.status == "error"
    with runtime.database.unit_of_work() as session:
        failed = session.get(Backup, killed.id)
        assert failed is not None
        assert failed.error_message.startswith(f"EVS.0432: NBD source {proxy.uri}"), failed
        assert not failed.manifest_id
    served = q.QemuNbd(image, upstream, "b0")
    try:
        retried = flows.back_up(cbr_client, vault.id, "retried")
        assert retried.status == "available", retried
    finally:
        served.stop()
        proxy.close()
    _restore_and_compare(cli, tmp_path, retried.id, tmp_path / "t3.qcow2", "r3")

    # Shared with another project, accepted, turned into an OpenCBR disk: the same bytes.
    other = make_tenant()
    other_project, other_evs, other_cbr, _ = flows.tenant_clients(server.url, other)
    cbr_client.add_member(
        cbr.AddMemberRequest(
            backup_id=incremental.id, body=cbr.AddMembersReq(members=[other_project])
        )
    )
    other_vault = flows.disk_vault(other_cbr, "received", 10, [])
    other_cbr.update_member_status(
        cbr.UpdateMemberStatusRequest(
            backup_id=incremental.id,
            member_id=other_project,
            body=cbr.UpdateMember(status="accepted", vault_id=other_vault.id),
        )
    )
    copy, job = flows.disk_from_backup(other_evs, incremental.id, "from-vm")
    assert job.status == "SUCCESS", job
    exported = tmp_path / "copy.raw"
    Cli(server, other, tmp_path)("disk", "export", copy, str(exported))
    assert q.identical(tmp_path / "t1.qcow2", exported, "raw")


def test_restore_onto_the_external_disk_itself(
    runtime: Runtime,
    server: LiveServer,
    make_tenant: TenantFactory,
    workers: WorkerPool,
    tmp_path: Path,
) -> None:
    """RestoreBackup onto the backed-up external disk writes into its NBD source."""
    q.need_qemu()
    creds = make_tenant()
    _, _, cbr_client, _ = flows.tenant_clients(server.url, creds)
    cli = Cli(server, creds, tmp_path)
    image = q.create(tmp_path / "vm.qcow2", "128M")
    q.write(image, (0xAB, 0, 4 * MiB), (0xCD, 90 * MiB, MiB))
    shutil.copy(image, tmp_path / "t0.qcow2")
    sock = tmp_path / "vm.sock"
    served = q.QemuNbd(image, sock, writable=True)
    try:
        disk = cli("disk", "register", "--nbd", served.uri, "--name", "vm", "--json")
        vault = flows.disk_vault(cbr_client, "vms", 10, [disk["id"]])
        backup = flows.back_up(cbr_client, vault.id, "full")
        assert backup.status == "available", backup
    finally:
        served.stop()
    q.write(image, (0x99, 2 * MiB, 8 * MiB), (0x98, 120 * MiB, MiB))
    served = q.QemuNbd(image, sock, writable=True)
    try:
        done = cli("restore", backup.id, "--wait", "--json")
        assert (done["status"], done["targets"]) == ("success", [disk["id"]]), done
        assert cli("disk", "show", disk["id"], "--json")["status"] == "available"
    finally:
        served.stop()
    assert q.identical(tmp_path / "t0.qcow2", image)
