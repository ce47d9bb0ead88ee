"""The console's Connect action: open a disk's NBD export, read the URI it shows with a real
NBD client, close it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from opencbr.core.context import Runtime
from opencbr.evs.models import DiskStatus
from opencbr.evs.service import DiskSpec, create_disk_record, provision_image
from tests.conftest import LiveServer
from tests.nbd_tools import libnbd, need_tools

from .conftest import TenantMaker, flash, shot

pytestmark = pytest.mark.slow


def test_connect_shows_a_working_nbd_uri(
    runtime: Runtime, console: LiveServer, signed_in: TenantMaker
) -> None:
    need_tools("nbdkit")
    user = signed_in("vm-owner")
    with runtime.database.unit_of_work() as session:
        spec = DiskSpec("vm-disk", 1, "az1", "SAS")
        disk = create_disk_record(session, runtime, user.actor, spec, status=DiskStatus.AVAILABLE)
        provision_image(runtime, disk, session=session)
    page = user.page
    page.goto(f"{console.url}/console/disks")
    page.locator("tr[data-disk='vm-disk']").get_by_role("link", name="Connect").click()
    page.get_by_role("button", name="Open NBD export").click()
    assert "The NBD export is open." in flash(page)
    uri = page.locator("[data-nbd-uri]").input_value()
    assert uri.startswith("nbd://127.0.0.1:")
    expect(page.locator("pre")).to_contain_text(f"file={uri},format=raw")
    shot(page, "disk-nbd")
    h = libnbd().NBD()
    h.connect_uri(uri)
    assert h.get_size() == 1 << 30
    h.shutdown()
    page.goto(f"{console.url}/console/disks")
    expect(page.locator("tr[data-disk='vm-disk']")).to_contain_text("in-use")
    page.locator("tr[data-disk='vm-disk']").get_by_role("link", name="Connect").click()
    page.get_by_role("button", name="Close export").click()
    assert "The NBD export is closed." in flash(page)
    expect(page.get_by_role("button", name="Open NBD export")).to_be_visible()
