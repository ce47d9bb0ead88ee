"""Instant restore end to end: a disk made from a shared backup is opened over NBD at once, a
QEMU VM boots from it and the last block reads right while the (slowed) copy still runs; what
the VM side writes is never overwritten by the copy; the disk turns in-use (its read-write
export is open) only when the copy ends."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkevs.v2 import model as evs

from opencbr.core.jobs import WorkerPool
from opencbr.core.settings import Settings
from tests.conftest import ROOT_KEY, LiveServer, TenantFactory
from tests.e2e import flows
from tests.e2e.test_nbd_vm import MARKER, boot_sector, boots, cli_for
from tests.nbd_tools import libnbd, need_tools

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

MiB = 1 << 20
GiB = 1 << 30
COPY_MIB_PER_S = 40  # a 1 GiB disk takes about 25 s to copy


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        root_key=ROOT_KEY,
        restore_copy_mib_per_s=COPY_MIB_PER_S,
    )


def test_vm_boots_from_a_shared_backup_before_the_copy_ends(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool, tmp_path: Path
) -> None:
    need_tools("nbdkit", "qemu-system-x86_64")
    owner_creds, recipient_creds = make_tenant(), make_tenant()
    owner = flows.tenant_clients(server.url, owner_creds)
    recipient = flows.tenant_clients(server.url, recipient_creds)
    owner_cli = cli_for(server, owner_creds, tmp_path / "owner")
    recipient_cli = cli_for(server, recipient_creds, tmp_path / "recipient")

    tail = os.urandom(MiB)
    image = tmp_path / "boot.img"
    with image.open("wb") as handle:
        handle.write(boot_sector(MARKER))
        handle.seek(GiB - MiB)
        handle.write(tail)
    disk = owner_cli("disk", "import", str(image), "--name", "bootable", "--json")["id"]
    vault = flows.disk_vault(owner.cbr, "boot-vault", 10, [disk])
    backup = flows.back_up(owner.cbr, vault.id, "boot-1")
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

    started = time.monotonic()
    option = evs.CreateVolumeOption(
        availability_zone="az1", volume_type="SAS", backup_id=backup.id, name="instant"
    )
    created = recipient.evs.create_volume(
        evs.CreateVolumeRequest(body=evs.CreateVolumeRequestBody(volume=option))
    )
    made = created.volume_ids[0]
    export = recipient_cli("disk", "nbd", "open", made, "--json")
    h = libnbd().NBD()
    h.connect_uri(export["uri"])
    assert h.pread(MiB, GiB - MiB) == tail  # the last block, from the backup
    first_read = time.monotonic() - started
    assert flows.disk_status(recipient.evs, made) == "creating"
    assert not h.can_meta_context("base:allocation")  # no holes claimed before the copy ends

    late = os.urandom(64 * 1024)  # a block the copy has not reached: it must not overwrite it
    h.pwrite(late, GiB - 2 * MiB)
    h.flush()
    assert boots(export["uri"], tmp_path / "serial.txt")
    assert flows.disk_status(recipient.evs, made) == "creating"  # the VM ran before the copy ended

    flows.wait_for(
        "the copy", lambda: flows.disk_status(recipient.evs, made), lambda s: s != "creating", 120
    )
    assert flows.disk_status(recipient.evs, made) == "in-use"  # its read-write export is open
    assert h.pread(len(late), GiB - 2 * MiB) == late
    assert h.pread(MiB, GiB - MiB) == tail
    h.shutdown()
    recipient_cli("disk", "nbd", "close", made)
    assert flows.disk_status(recipient.evs, made) == "available"
    data = flows.read(recipient.data, recipient.project, made, 0, 512)
    assert data == boot_sector(MARKER)
    assert flows.read(recipient.data, recipient.project, made, GiB - 2 * MiB, len(late)) == late
    assert first_read < 10, first_read
