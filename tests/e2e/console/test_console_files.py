"""The console's Browse files action: from a disk backup's page down a directory to a file,
downloaded byte for byte, and a directory downloaded as a tar archive."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from opencbr.core.context import Runtime
from tests.conftest import LiveServer
from tests.e2e import flows, fs_images
from tests.e2e.test_nbd_vm import cli_for

from .conftest import TenantMaker, shot

pytestmark = pytest.mark.slow
MiB = 1 << 20


def test_browse_files_of_a_backup_and_download_them(
    runtime: Runtime, console: LiveServer, signed_in: TenantMaker, tmp_path: Path
) -> None:
    fs_images.need_image_tools()
    tree = fs_images.source_tree(tmp_path / "tree")
    image = fs_images.ext4(tmp_path / "disk.img", tree, 64 * MiB)
    user = signed_in("file-owner")
    cli = cli_for(console, user.creds, tmp_path / "cli")
    disk = cli("disk", "import", str(image), "--name", "files-disk", "--json")["id"]
    clients = flows.tenant_clients(console.url, user.creds)
    vault = flows.disk_vault(clients.cbr, "files-vault", 10, [disk])
    backup = flows.back_up(clients.cbr, vault.id, "files-1")

    page = user.page
    page.goto(f"{console.url}/console/cbr/disk/backups/{backup.id}")
    page.set_default_timeout(240_000)  # the first call starts the backup's file browser
    page.get_by_role("link", name="Browse files").click()
    expect(page.get_by_text("Partition table: none")).to_be_visible(timeout=240_000)
    page.set_default_timeout(10_000)
    page.locator("tr[data-entry='disk']").get_by_role("link", name="disk").click()
    row = page.locator("tr[data-entry='passwd-link']")
    expect(row).to_contain_text("→ /etc/passwd")
    expect(row.get_by_role("link")).to_have_count(0)  # a link is shown, never followed
    page.locator("tr[data-entry='docs']").get_by_role("link", name="docs/").click()
    expect(page.locator("nav[data-path]")).to_have_attribute("data-path", "/disk/docs")
    shot(page, "backup-files")

    with page.expect_download() as started:
        page.locator("tr[data-entry='report.bin']").get_by_role("link", name="Download").click()
    report = (tree / "docs" / "report.bin").read_bytes()
    assert Path(started.value.path()).read_bytes() == report
    with page.expect_download() as started:
        page.locator("tr[data-entry='nested']").get_by_role("link", name="Download .tar").click()
    with tarfile.open(fileobj=io.BytesIO(Path(started.value.path()).read_bytes())) as archive:
        assert [m.name for m in archive.getmembers() if m.isfile()] == ["./empty.txt"]
