"""The Disks page lists external disks with their NBD source (and offers no import or
attach for them: their bytes live in the hypervisor)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from opencbr.core.context import Runtime
from opencbr.evs.external import ExternalDiskSpec, register_external_disk
from tests.conftest import LiveServer
from tests.e2e import qemu_nbd as q
from tests.e2e.console.conftest import TenantMaker

pytestmark = pytest.mark.slow


def test_disks_page_shows_the_nbd_source(
    runtime: Runtime, console: LiveServer, signed_in: TenantMaker, tmp_path: Path
) -> None:
    q.need_qemu()
    owner = signed_in("owner")
    image = q.create(tmp_path / "vm.qcow2", "64M")
    q.run("qemu-img", "bitmap", "--add", str(image), "b0")
    served = q.QemuNbd(image, tmp_path / "vm.sock", "b0")
    try:
        with runtime.database.unit_of_work() as session:
            spec = ExternalDiskSpec(name="vm-disk", uri=served.uri, bitmap="b0")
            register_external_disk(session, runtime, owner.actor, spec)
    finally:
        served.stop()
    page = owner.page
    page.goto(f"{console.url}/console/disks")
    row = page.locator("tr[data-disk='vm-disk']")
    expect(row.locator("[data-source=nbd]")).to_contain_text(served.uri)
    expect(row.locator("[data-source=nbd]")).to_contain_text("bitmap b0")
    expect(row.get_by_role("link", name="Import")).to_have_count(0)
