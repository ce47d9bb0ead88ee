"""Disks over NBD end to end, with the real `opencbr` CLI and real clients: a QEMU VM boots
from a disk made from a shared backup; what qemu-io writes over NBD is in the next incremental
backup and in a restore of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException

from opencbr.core.jobs import WorkerPool
from opencbr.iam.service import TenantCredentials
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows
from tests.nbd_tools import need_tools

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),  # heavy: one database
]

MiB = 1 << 20
OPENCBR = str(Path(sys.executable).parent / "opencbr")
MARKER = b"OPENCBR-NBD-BOOT-OK"
BOOT_CODE = bytes.fromhex("FA31C08ED8BE167CBAF803AC08C07403EEEBF8F4EBFD")  # print to COM1, halt


def boot_sector(message: bytes) -> bytes:
    """A BIOS boot sector that writes `message` to the first serial port and halts."""
    sector = bytearray(512)
    sector[: len(BOOT_CODE)] = BOOT_CODE
    sector[22 : 22 + len(message) + 1] = message + b"\0"
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


CliRun = Callable[..., Any]


def cli_for(server: LiveServer, creds: TenantCredentials, tmp_path: Path) -> CliRun:
    env = {
        **os.environ,
        "OPENCBR_ENDPOINT": server.url,
        "OPENCBR_ACCESS_KEY": creds.access_key,
        "OPENCBR_SECRET_KEY": creds.secret_key,
        "OPENCBR_PROJECT_ID": creds.projects["region-1"],
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }

    def run(*args: str) -> Any:
        done = subprocess.run(
            [OPENCBR, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr + done.stdout
        return json.loads(done.stdout) if "--json" in args else done.stdout

    return run


def boots(uri: str, serial: Path, timeout: float = 90) -> bool:
    """Start QEMU (TCG) on the NBD disk; whether the marker reached the serial port."""
    vm = subprocess.Popen(
        [
            "qemu-system-x86_64",
            "-display",
            "none",
            "-no-reboot",
            "-m",
            "64",
            "-serial",
            f"file:{serial}",
            "-drive",
            f"file={uri},format=raw,if=ide",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and vm.poll() is None:
            if serial.exists() and MARKER in serial.read_bytes():
                return True
            time.sleep(0.2)
        return serial.exists() and MARKER in serial.read_bytes()
    finally:
        vm.kill()
        vm.wait()


def test_vm_boots_from_a_shared_backup_over_nbd(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool, tmp_path: Path
) -> None:
    need_tools("nbdkit", "qemu-system-x86_64")
    owner_creds, recipient_creds = make_tenant(), make_tenant()
    owner = flows.tenant_clients(server.url, owner_creds)
    recipient = flows.tenant_clients(server.url, recipient_creds)
    owner_cli = cli_for(server, owner_creds, tmp_path / "owner")
    recipient_cli = cli_for(server, recipient_creds, tmp_path / "recipient")

    image = tmp_path / "boot.img"
    image.write_bytes(boot_sector(MARKER))
    disk = owner_cli("disk", "import", str(image), "--name", "bootable", "--json")["id"]
    vault = flows.disk_vault(owner.cbr, "boot-vault", 10, [disk])
    backup = flows.back_up(owner.cbr, vault.id, "boot-1")
    assert backup.status == "available"
    owner.cbr.add_member(
        cbr.AddMemberRequest(
            backup_id=backup.id, body=cbr.AddMembersReq(members=[recipient.project])
        )
    )
    recipient_vault = flows.disk_vault(recipient.cbr, "recv", 10, [])
    recipient.cbr.update_member_status(
        cbr.UpdateMemberStatusRequest(
            backup_id=backup.id,
            member_id=recipient.project,
            body=cbr.UpdateMember(status="accepted", vault_id=recipient_vault.id),
        )
    )
    made, job = flows.disk_from_backup(recipient.evs, backup.id, "from-shared")
    assert job.status == "SUCCESS"

    export = recipient_cli("disk", "nbd", "open", made, "--json")
    assert export["uri"].startswith("nbd://127.0.0.1:")
    assert flows.disk_status(recipient.evs, made) == "in-use"
    assert boots(export["uri"], tmp_path / "serial.txt")
    recipient_cli("disk", "nbd", "close", made)
    assert flows.disk_status(recipient.evs, made) == "available"


def test_qemu_io_writes_reach_the_next_incremental_backup(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool, tmp_path: Path
) -> None:
    need_tools("nbdkit", "qemu-io")
    creds = make_tenant()
    owner = flows.tenant_clients(server.url, creds)
    cli = cli_for(server, creds, tmp_path)
    disk = flows.create_disk(owner.evs, "vm-disk", size_gb=1)
    base = os.urandom(MiB)
    flows.write(owner.data, owner.project, disk, 0, base)
    vault = flows.disk_vault(owner.cbr, "vm-vault", 10, [disk])
    full = flows.back_up(owner.cbr, vault.id, "full")

    uri = cli("disk", "nbd", "open", disk, "--json")["uri"]
    # in-use: a restore onto it is refused as for an attached disk
    with pytest.raises(ClientRequestException) as caught:
        owner.cbr.restore_backup(
            cbr.RestoreBackupRequest(
                backup_id=full.id,
                body=cbr.BackupRestoreReq(restore=cbr.BackupRestore(volume_id=disk)),
            )
        )
    assert caught.value.status_code == 400
    written = subprocess.run(
        [
            "qemu-io",
            "-f",
            "raw",
            "-c",
            "write -P 0x5a 300M 1M",
            "-c",
            "write -z 512K 64K",
            "-c",
            "flush",
            uri,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert written.returncode == 0, written.stdout + written.stderr
    cli("disk", "nbd", "close", disk)

    incremental = flows.back_up(owner.cbr, vault.id, "after-vm")
    assert incremental.status == "available"
    shown = owner.cbr.show_backup(cbr.ShowBackupRequest(backup_id=incremental.id)).backup
    assert shown.incremental is True
    restored, job = flows.disk_from_backup(owner.evs, incremental.id, "restored")
    assert job.status == "SUCCESS"
    expected = bytearray(base)
    expected[512 * 1024 : 576 * 1024] = bytes(64 * 1024)
    assert flows.read(owner.data, owner.project, restored, 0, MiB) == expected
    assert flows.read(owner.data, owner.project, restored, 300 * MiB, MiB) == b"\x5a" * MiB


def test_cli_opens_and_closes_a_servers_disks(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool, tmp_path: Path
) -> None:
    need_tools("nbdkit")
    creds = make_tenant()
    tenant = flows.tenant_clients(server.url, creds)
    cli = cli_for(server, creds, tmp_path)
    body = {"server": {"name": "vm", "system_disk": {"size": 1}, "data_disks": [{"size": 1}]}}
    made = tenant.data.request("POST", f"/v1/{tenant.project}/servers", body)["server"]
    shown = flows.wait_for(
        "server",
        lambda: tenant.data.request("GET", f"/v1/{tenant.project}/servers/{made['id']}"),
        lambda s: s["server"]["status"] == "ACTIVE",
    )["server"]
    exports = cli("server", "nbd", "open", made["id"], "--read-only", "--json")
    assert [e["volume_id"] for e in exports] == [d["id"] for d in shown["volumes_attached"]]
    assert all(e["read_only"] and e["uri"].startswith("nbd://") for e in exports)
    plain = cli("server", "nbd", "open", made["id"], "--read-only")  # one line per disk
    assert plain.split() == [word for e in exports for word in (e["volume_id"], e["uri"])]
    assert cli("server", "nbd", "close", made["id"], "--json")["closed"] == 2
