"""The web console in a real browser (Debian's chromium driven by Playwright).

The whole "Sharing a Backup" procedure for both sides, the encrypted case with a KMS grant,
keyboard-only use of the Share Backup dialog, and the remaining pages. A screenshot of each
page is kept under test-artifacts/console/.

Every backup here is a real one: made with the vault's Back up now action and the job
workers running in the server's process, holding bytes written through the console's Import
form; disks and servers made from backups are compared byte for byte with their source.

These tests run on SQLite only: the services the console calls are covered on SQLite and
PostgreSQL by tests/integration.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from opencbr.cbr import vaults
from opencbr.core.context import Runtime
from opencbr.evs.models import Disk
from tests.conftest import LiveServer

from .conftest import (
    REGION,
    TenantMaker,
    back_up_now,
    disk_bytes,
    expire_sessions,
    import_image,
    leave_free,
    login,
    read_account_id,
    read_project_id,
    shot,
)

pytestmark = pytest.mark.slow

MiB = 1024**2


def flash(page: Page) -> Locator:
    return page.locator(".flash").first


def create_vault(
    page: Page,
    base: str,
    name: str,
    size_gb: int,
    resources: tuple[str, ...] = (),
    kind: str = "disk",
) -> None:
    page.goto(f"{base}/console/cbr/{kind}/vaults")
    page.get_by_role("link", name="Create Vault").click()
    page.get_by_label("Name").fill(name)
    capacity = page.get_by_label("Capacity (GB)")
    expect(capacity).to_have_accessible_description("1 GB = 1,024 MB = 2^30 bytes (1,073,741,824).")
    capacity.fill(str(size_gb))
    for resource_id in resources:
        page.locator(f"input[name=resource][value='{resource_id}']").check()
    page.get_by_role("button", name="Create", exact=True).click()
    expect(flash(page)).to_contain_text(f"Vault {name} created.")


def create_disk(
    page: Page, base: str, name: str, size_gb: int = 1, key_alias: str | None = None
) -> str:
    """Create a disk through the console and wait on the job page until it is made."""
    page.goto(f"{base}/console/disks")
    page.get_by_role("link", name="Create Disk").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Size (GB)").fill(str(size_gb))
    if key_alias is not None:
        page.get_by_label("Encrypted").check()
        page.get_by_label("KMS key").select_option(label=key_alias)
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator("h1")).to_contain_text("succeeded", timeout=20_000)
    expect(page.locator("h1")).to_contain_text(f"Create disk {name}")
    page.get_by_role("link", name="view disks").click()
    row = page.locator(f"tr[data-disk='{name}']")
    expect(row).to_contain_text("available")
    return row.locator(".sub.mono").first.inner_text().strip()


def open_share_dialog(page: Page, base: str, backup_name: str) -> Locator:
    page.goto(f"{base}/console/cbr/disk/backups")
    row = page.locator(f"tr[data-backup='{backup_name}']")
    row.locator("summary", has_text="More").click()
    row.get_by_role("menuitem", name="Share Backup").click()
    return page.get_by_role("dialog", name="Share Backup")


def disk_from_backup(page: Page, name: str, backup_name: str) -> str:
    """On the Create Disk form opened from a backup: name the disk, create it, wait for the
    job (its page is titled for people, not by the job's internal kind), and find the new
    disk (available) in the list; its id."""
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator("h1")).to_contain_text("succeeded", timeout=30_000)
    expect(page.locator("h1")).to_contain_text(f"Create disk from backup {backup_name}")
    expect(page).to_have_title(f"Create disk from backup {backup_name} · OpenCBR")
    page.get_by_role("link", name="view disks").click()
    row = page.locator(f"tr[data-disk='{name}']")
    expect(row).to_contain_text("available")
    return row.locator(".sub.mono").first.inner_text().strip()


def check_narrow(page: Page, table: str, row: Locator, one_line: str) -> None:
    """At 768 px wide the page itself does not scroll sideways: the table scrolls inside its
    box, the row's Operation cell stays in view, and `one_line` (a size) does not wrap."""
    page.set_viewport_size({"width": 768, "height": 900})
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= 768
        wrap = page.get_by_role("table", name=table).locator("xpath=..")
        assert wrap.evaluate("w => w.scrollWidth > w.clientWidth"), "the table fits: no test"
        expect(row.locator("td.ops")).to_be_in_viewport(ratio=1)
        cell = row.locator("td", has_text=re.compile(f"^{re.escape(one_line)}$"))
        lines = cell.evaluate(
            "td => { const r = document.createRange(); r.selectNodeContents(td);"
            " return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; }"
        )
        assert lines == 1, f"{one_line!r} wraps"
    finally:
        page.set_viewport_size({"width": 1440, "height": 900})


def share_list_row(page: Page, base: str, backup_id: str, project_id: str) -> Locator:
    page.goto(f"{base}/console/cbr/disk/backups/{backup_id}")
    page.get_by_role("link", name="Share List").click()
    return page.locator(f"tr[data-member='{project_id}']")


def test_sharing_a_backup_both_sides(
    runtime: Runtime, console: LiveServer, signed_in: TenantMaker, tmp_path: Path
) -> None:
    base = console.url
    owner, first, second = signed_in("sharer"), signed_in("recipient"), signed_in("other")
    page = owner.page

    # The sharer's disk holds 4 MiB of data (imported through the console); a vault protects
    # it; Back up now makes a real backup of it, which the job workers make `available`.
    disk_id = create_disk(page, base, "db-disk")
    image = tmp_path / "db.raw"
    image.write_bytes(os.urandom(4 * MiB))
    import_image(page, base, "db-disk", image)
    shot(page, "disks")
    create_vault(page, base, "owner-vault", 50, resources=(disk_id,))
    page.goto(f"{base}/console/cbr/disk/vaults")
    page.locator("tr[data-vault='owner-vault']").get_by_role("link", name="Back up now").click()
    shot(page, "back-up-now")
    page.get_by_label(re.compile("db-disk")).uncheck()
    page.get_by_role("button", name="Back up now").click()
    expect(page.get_by_role("alert")).to_contain_text("choose at least one disk to back up")
    backup_id = back_up_now(page, base, "disk", "owner-vault", "db-disk-backup")
    page.goto(f"{base}/console/cbr/disk/vaults")
    expect(page.locator("tr[data-vault='owner-vault']")).to_contain_text(
        re.compile(r"4\.\d MB / 50 GB")
    )
    shot(page, "vaults", narrow=True)

    # Each recipient reads its project ID under My Credentials and passes it on.
    first_project = read_project_id(first.page, base)
    shot(first.page, "credentials")
    second_project = read_project_id(second.page, base)

    # Sharer: region, Cloud Disk Backups, Backups tab with filter criteria.
    page.goto(f"{base}/console/cbr/server/vaults")
    expect(page.get_by_label("Region")).to_have_value(owner.project_id)
    page.get_by_role("link", name="Cloud Disk Backups").click()
    page.get_by_role("navigation", name="Cloud Disk Backups").get_by_role(
        "link", name="Backups", exact=True
    ).click()
    page.get_by_label("Name", exact=True).fill("db-disk")
    page.get_by_label("Status").select_option("available")
    page.get_by_label("Vault").select_option(label="owner-vault")
    page.get_by_role("button", name="Search").click()
    row = page.locator("tr[data-backup='db-disk-backup']")
    expect(row).to_contain_text("available")
    shot(page, "backups", narrow=True)
    check_narrow(page, "Backups", row, "4.0 MB")
    # Sizes are in the product's units (GB = 2^30 bytes); each carries its exact bytes.
    expect(row.locator(".size")).to_have_attribute("title", f"{4 * MiB:,} bytes")

    # More > Share Backup: name, disk name, backup ID and type; add two projects; OK. (At
    # 768 px the menu opens over the table that scrolls, not clipped by it.)
    page.set_viewport_size({"width": 768, "height": 900})
    row.locator("summary", has_text="More").click()
    expect(row.get_by_role("menuitem", name="Share List")).to_be_in_viewport(ratio=1)
    shot(page, "backups-more")
    page.set_viewport_size({"width": 1440, "height": 900})
    row.get_by_role("menuitem", name="Share Backup").click()
    dialog = page.get_by_role("dialog", name="Share Backup")
    for fact in ("db-disk-backup", "db-disk", backup_id, "Disk backup"):
        expect(dialog).to_contain_text(fact)
    for project_id in (first_project, second_project):
        dialog.get_by_label("Project ID of the recipient").fill(project_id)
        dialog.get_by_role("button", name="Add").click()
    listed = dialog.get_by_role("list", name="Projects to share with").get_by_role("listitem")
    expect(listed).to_have_count(2)
    shot(page, "share-dialog", narrow=True)
    dialog.get_by_role("button", name="OK").click()
    expect(flash(page)).to_contain_text("Backup shared with 2 project(s).")

    # Back in the list: the backup name opens the details; the Share List tab shows both.
    page.get_by_role("link", name="db-disk-backup").click()
    shot(page, "backup-details")
    page.get_by_role("link", name="Share List").click()
    expect(page.locator(f"tr[data-member='{first_project}']")).to_contain_text("pending")
    expect(page.locator(f"tr[data-member='{second_project}']")).to_contain_text("pending")
    shot(page, "share-list")

    # Recipient: Backups Shared with Me; without a vault, accepting is refused clearly.
    # It is under the Backups tab; its Status filter is the share's status.
    mine = first.page
    mine.goto(f"{base}/console/cbr/disk/vaults")
    mine.get_by_role("navigation", name="Cloud Disk Backups").get_by_role(
        "link", name="Backups", exact=True
    ).click()
    mine.get_by_role("navigation", name="Backups", exact=True).get_by_role(
        "link", name="Backups Shared with Me"
    ).click()
    status = mine.get_by_label("Status")
    expect(status.locator("option")).to_have_text(
        ["All share statuses", "pending", "accepted", "rejected"]
    )
    status.select_option("accepted")
    mine.get_by_role("button", name="Search").click()
    expect(mine.locator("main")).to_contain_text("No shared backups match these criteria.")
    mine.get_by_label("Status").select_option("pending")
    mine.get_by_role("button", name="Search").click()
    shared = mine.locator("tr[data-backup='db-disk-backup']")
    expect(shared).to_contain_text("pending")
    expect(shared).to_contain_text(owner.project_id)
    shot(mine, "shared-with-me", narrow=True)
    shared.get_by_role("link", name="Accept").click()
    expect(mine.locator(".flash-warn")).to_contain_text("no disk backup vault")
    expect(mine.get_by_role("button", name="OK")).to_be_disabled()

    # A vault whose free space is not greater than the 4 MiB backup cannot be chosen, and the
    # page says why; a larger one with automatic association takes it.
    create_vault(mine, base, "small-vault", 1)
    leave_free(runtime, first, "small-vault", 4 * MiB)
    mine.goto(f"{base}/console/cbr/disk/backups/{backup_id}/accept")
    expect(mine.get_by_role("alert")).to_contain_text(
        "No disk backup vault has more than 4.0 MB free"
    )
    expect(mine.get_by_label(re.compile("small-vault"))).to_be_disabled()
    expect(mine.get_by_role("button", name="OK")).to_be_disabled()
    shot(mine, "accept-refused")
    create_vault(mine, base, "big-vault", 20)
    mine.goto(f"{base}/console/cbr/disk/backups/{backup_id}/accept")
    expect(mine.get_by_label(re.compile("big-vault"))).to_be_checked()
    mine.get_by_role("group", name="Automatic Association").get_by_label("Configure").check()
    shot(mine, "accept")
    mine.get_by_role("button", name="OK").click()
    expect(flash(mine)).to_contain_text("Shared backup accepted into vault big-vault.")
    accepted = mine.locator("tr[data-backup='db-disk-backup']")
    expect(accepted).to_contain_text("shared")
    expect(accepted).to_contain_text("big-vault")
    shot(mine, "backups-recipient", narrow=True)
    wrong_kind = mine.goto(f"{base}/console/cbr/server/backups/{backup_id}/accept")
    assert wrong_kind is not None
    assert wrong_kind.status == 404  # a disk backup has no server-backup pages
    mine.goto(f"{base}/console/cbr/disk/vaults")
    big = mine.locator("tr[data-vault='big-vault']")
    expect(big).to_contain_text("4.0 MB / 20 GB")
    expect(big).to_contain_text("Enabled")

    # The recipient creates a disk from the accepted backup: it holds the sharer's bytes.
    mine.goto(f"{base}/console/cbr/disk/backups")
    mine.locator("tr[data-backup='db-disk-backup']").get_by_role("link", name="Create Disk").click()
    expect(mine.locator(".flash-info")).to_contain_text("From backup db-disk-backup")
    copy_id = disk_from_backup(mine, "db-copy", "db-disk-backup")
    expect(mine.locator("tr[data-disk='db-copy']")).to_contain_text(backup_id)
    shot(mine, "disks-recipient")
    original = disk_bytes(runtime, owner, disk_id, 4 * MiB)
    assert original == image.read_bytes()
    assert disk_bytes(runtime, first, copy_id, 4 * MiB) == original

    # The other recipient rejects.
    other = second.page
    other.goto(f"{base}/console/cbr/disk/backups?tab=shared")
    other.locator("tr[data-backup='db-disk-backup']").get_by_role("button", name="Reject").click()
    expect(flash(other)).to_contain_text("Shared backup rejected.")
    expect(other.locator("tr[data-backup='db-disk-backup']")).to_contain_text("rejected")
    other.goto(f"{base}/console/cbr/disk/backups?tab=shared&share_status=pending")
    expect(other.locator("tr[data-backup='db-disk-backup']")).to_have_count(0)
    other.goto(f"{base}/console/cbr/disk/backups?tab=shared&share_status=rejected")
    expect(other.locator("tr[data-backup='db-disk-backup']")).to_contain_text("rejected")

    # Sharer: the Share List shows both answers; Cancel Sharing for the one that rejected.
    expect(share_list_row(page, base, backup_id, first_project)).to_contain_text("accepted")
    expect(page.locator(f"tr[data-member='{second_project}']")).to_contain_text("rejected")
    # OK first asks to confirm, naming the recipient that had accepted; Back changes nothing.
    dialog = open_share_dialog(page, base, "db-disk-backup")
    dialog.get_by_role("tab", name="Cancel Sharing").click()
    dialog = page.get_by_role("dialog", name="Share Backup")
    dialog.locator(f"input[value='{first_project}']").check()
    dialog.locator(f"input[value='{second_project}']").check()
    shot(page, "cancel-sharing")
    dialog.get_by_role("button", name="OK").click()
    confirm = dialog.get_by_role("alert")
    expect(confirm).to_contain_text("Cancel sharing with 2 projects?")
    expect(confirm).to_contain_text(
        f"This recipient had accepted the backup: {first_project}. It leaves its vault"
    )
    shot(page, "cancel-sharing-confirm", narrow=True)
    dialog.get_by_role("link", name="Back").click()
    expect(dialog.locator(f"input[value='{first_project}']")).not_to_be_checked()
    dialog.locator(f"input[value='{second_project}']").check()
    dialog.get_by_role("button", name="OK").click()
    expect(dialog.get_by_role("alert")).to_contain_text("None of them had accepted the backup.")
    dialog.get_by_role("button", name="Yes, cancel sharing").click()
    expect(flash(page)).to_contain_text("Sharing cancelled for 1 project(s).")
    expect(share_list_row(page, base, backup_id, second_project)).to_have_count(0)
    expect(page.locator(f"tr[data-member='{first_project}']")).to_contain_text("accepted")

    # Sharer deletes the backup: it leaves the recipient, whose vault space is freed.
    page.goto(f"{base}/console/cbr/disk/backups")
    row = page.locator("tr[data-backup='db-disk-backup']")
    row.locator("summary", has_text="More").click()
    row.get_by_role("button", name="Delete").click()
    expect(flash(page)).to_contain_text("is being deleted; it has left every recipient")
    mine.goto(f"{base}/console/cbr/disk/backups")
    expect(mine.locator("tr[data-backup='db-disk-backup']")).to_have_count(0)
    mine.goto(f"{base}/console/cbr/disk/vaults")
    expect(mine.locator("tr[data-vault='big-vault']")).to_contain_text("0 B / 20 GB")
    shot(mine, "vaults-recipient")
    mine.goto(f"{base}/console/disks")
    expect(mine.locator("tr[data-disk='db-copy']")).to_contain_text("available")
    assert disk_bytes(runtime, first, copy_id, 4 * MiB) == original
    mine.goto(f"{base}/console/tasks")
    expect(mine.get_by_role("table", name="Tasks")).to_contain_text("cascade-delete")
    shot(mine, "tasks", narrow=True)


def test_encrypted_backup_shared_with_a_kms_grant(
    runtime: Runtime, console: LiveServer, signed_in: TenantMaker, tmp_path: Path
) -> None:
    base = console.url
    owner, recipient = signed_in("keyowner"), signed_in("grantee")
    page = owner.page
    account = read_account_id(recipient.page, base)
    recipient_project = read_project_id(recipient.page, base)

    # KMS: a key, then an encrypted disk, refused until the EVSAccessKMS agency exists.
    page.goto(f"{base}/console/kms")
    page.get_by_label("Alias").fill("backup-key")
    page.get_by_role("button", name="Create key").click()
    expect(flash(page)).to_contain_text("Key backup-key created.")
    key_id = page.locator("tr[data-key='backup-key'] td.mono").inner_text().strip()
    page.goto(f"{base}/console/disks/new")
    page.get_by_label("Name").fill("secret-disk")
    page.get_by_label("Encrypted").check()
    page.get_by_role("button", name="Create", exact=True).click()
    expect(flash(page)).to_contain_text("Encrypted disks need the agency EVSAccessKMS")
    page.goto(f"{base}/console/kms")
    page.get_by_role("button", name="Create agency").click()
    expect(flash(page)).to_contain_text("Agency EVSAccessKMS created")
    shot(page, "kms-keys")

    # The encrypted disk under that key holds 1 MiB of data; its backup is encrypted too.
    disk_id = create_disk(page, base, "secret-disk", key_alias="backup-key")
    expect(page.locator("tr[data-disk='secret-disk']")).to_contain_text(key_id)
    image = tmp_path / "secret.raw"
    image.write_bytes(os.urandom(MiB))
    import_image(page, base, "secret-disk", image)
    create_vault(page, base, "secure-vault", 40, resources=(disk_id,))
    backup_id = back_up_now(page, base, "disk", "secure-vault", "secret-backup")
    expect(page.locator("tr[data-backup='secret-backup']")).to_contain_text("Yes")
    dialog = open_share_dialog(page, base, "secret-backup")
    expect(dialog).to_contain_text("encrypted")
    dialog.get_by_label("Project ID of the recipient").fill(recipient_project)
    dialog.get_by_role("button", name="OK").click()
    expect(flash(page)).to_contain_text("Backup shared with 1 project(s).")

    # The recipient sees it encrypted, accepts it, and finds the key in its details.
    other = recipient.page
    other.goto(f"{base}/console/kms")
    other.get_by_role("button", name="Create agency").click()
    expect(flash(other)).to_contain_text("Agency EVSAccessKMS created")
    create_vault(other, base, "landing-vault", 10)
    other.goto(f"{base}/console/cbr/disk/backups?tab=shared")
    row = other.locator("tr[data-backup='secret-backup']")
    expect(row).to_contain_text("Yes")
    row.get_by_role("link", name="Accept").click()
    other.get_by_role("button", name="OK").click()
    expect(flash(other)).to_contain_text("accepted into vault landing-vault")
    other.get_by_role("link", name="secret-backup").click()
    expect(other.locator("main")).to_contain_text(key_id)

    # Without a grant on the key, creating a disk from it is refused, naming the key and
    # the missing grant; nothing is created.
    other.get_by_role("link", name="Create Disk").click()
    expect(other.locator(".flash-info")).to_contain_text("the new disk is encrypted too")
    assert backup_id in other.url
    shot(other, "disk-from-backup")
    other.get_by_label("Name").fill("secret-copy")
    other.get_by_role("button", name="Create", exact=True).click()
    refusal = other.locator(".flash-error")
    expect(refusal).to_contain_text(f"encrypted with KMS key {key_id}")
    expect(refusal).to_contain_text(f"account {account} needs a KMS grant on that key")
    shot(other, "disk-from-backup-refused")
    other.goto(f"{base}/console/disks")
    expect(other.locator("tr[data-disk='secret-copy']")).to_have_count(0)

    # The owner grants the key to the recipient's Account ID.
    page.goto(f"{base}/console/kms")
    page.locator("tr[data-key='backup-key']").get_by_role("link", name="Grants").click()
    page.get_by_label("Account ID of the grantee").fill(account)
    page.get_by_role("button", name="Create grant").click()
    expect(flash(page)).to_contain_text(f"Grant created for {account}.")
    expect(page.locator(f"tr[data-grantee='{account}']")).to_contain_text("decrypt-datakey")
    shot(page, "kms-grants")

    # Now the same form makes an encrypted disk with the owner's bytes, under the recipient's
    # own default key (so that it outlives the grant).
    other.goto(f"{base}/console/disks/new?backup_id={backup_id}")
    expect(other.get_by_label("KMS key")).to_contain_text("Default key (evs/default)")
    copy_id = disk_from_backup(other, "secret-copy", "secret-backup")
    copy = other.locator("tr[data-disk='secret-copy']")
    expect(copy).to_contain_text("Yes")
    expect(copy).not_to_contain_text(key_id)
    original = disk_bytes(runtime, owner, disk_id, MiB)
    assert original == image.read_bytes()
    assert disk_bytes(runtime, recipient, copy_id, MiB) == original


def tab_to(page: Page, target: Locator, limit: int = 80) -> None:
    """Press Tab until `target` has the focus (keyboard only)."""
    for _ in range(limit):
        if target.evaluate("el => el === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {target}")


def test_share_dialog_by_keyboard_only(
    runtime: Runtime, console: LiveServer, signed_in: TenantMaker
) -> None:
    base = console.url
    owner, friend = signed_in("keyboard"), signed_in("friend")
    friend_project = read_project_id(friend.page, base)
    page = owner.page
    disk_id = create_disk(page, base, "app-disk")
    create_vault(page, base, "kb-vault", 10, resources=(disk_id,))
    back_up_now(page, base, "disk", "kb-vault", "app-backup")
    page.goto(f"{base}/console/cbr/disk/backups")

    # More (Enter) > Share Backup (Enter): the dialog opens with the focus in its field.
    tab_to(page, page.locator("tr[data-backup='app-backup'] summary"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("menuitem", name="Share Backup")).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Share Backup")
    field = dialog.get_by_label("Project ID of the recipient")
    expect(field).to_be_focused()

    # Enter in the field is Add. A malformed ID is refused at once, in the page, with the
    # service's message; nothing is listed and the focus stays in the field.
    listed = dialog.get_by_role("listitem")
    page.keyboard.type("not-a-project")
    page.keyboard.press("Enter")
    malformed = dialog.get_by_role("alert")
    expect(malformed).to_have_text(
        "Project not-a-project cannot receive this backup: "
        "a project ID is 32 lower-case hexadecimal characters."
    )
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    expect(listed).to_have_count(0)
    shot(page, "share-dialog-malformed", narrow=True)
    # Without the script, the same rule refuses it at Add (the service checks the format).
    refused = page.request.post(
        page.url,
        form={
            "csrf": dialog.locator("input[name=csrf]").first.input_value(),
            "step": "add",
            "project_id": "not-a-project",
        },
    )
    assert refused.status == 400
    assert "Project not-a-project cannot receive this backup" in refused.text()

    # Two well-formed IDs of no project and a right one are listed.
    missing = ("0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210")
    page.keyboard.press("Control+A")
    page.keyboard.type(missing[0])
    expect(malformed).to_be_hidden()
    page.keyboard.press("Enter")
    expect(listed).to_have_count(1)
    expect(field).to_be_focused()
    for count, project_id in enumerate((missing[1], friend_project), start=2):
        page.keyboard.type(project_id)
        page.keyboard.press("Enter")
        expect(listed).to_have_count(count)
        expect(field).to_be_focused()

    # OK shares with nobody when listed projects are wrong, and names every one of them.
    tab_to(page, dialog.get_by_role("button", name="OK"))
    page.keyboard.press("Enter")
    expect(dialog.get_by_role("alert")).to_have_text(
        f"Projects {missing[0]}, {missing[1]} cannot receive this backup: "
        f"no such project in region {REGION}."
    )
    expect(listed).to_have_count(3)
    shot(page, "share-dialog-refused", narrow=True)

    # Remove them with the keyboard, then OK.
    for project_id in missing:
        tab_to(page, dialog.get_by_role("button", name=f"Remove {project_id}"))
        page.keyboard.press("Enter")
    expect(listed).to_have_count(1)
    tab_to(page, dialog.get_by_role("button", name="OK"))
    page.keyboard.press("Space")
    expect(flash(page)).to_contain_text("Backup shared with 1 project(s).")

    # The focus stays inside the open dialog, and Escape closes it.
    page.goto(f"{base}/console/cbr/disk/backups")
    tab_to(page, page.locator("tr[data-backup='app-backup'] summary"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("menuitem", name="Share Backup")).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Share Backup")
    expect(dialog.get_by_label("Project ID of the recipient")).to_be_focused()
    for _ in range(12):
        page.keyboard.press("Tab")
        assert dialog.evaluate("d => d.contains(document.activeElement)")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page).to_have_url(f"{base}/console/cbr/disk/backups")


def test_sign_in_servers_disks_credentials_and_refusals(
    runtime: Runtime, console: LiveServer, browser: Browser, signed_in: TenantMaker, tmp_path: Path
) -> None:
    base = console.url
    user = signed_in("operator")
    page = user.page

    # Servers: create one (a 1 GB system disk), follow the job; a new disk gets a raw image
    # (Import) and is attached to it as its data disk.
    page.goto(f"{base}/console/servers")
    page.get_by_role("link", name="Create Server").click()
    page.get_by_label("Name").fill("web-1")
    page.get_by_label("System disk (GB)").fill("1")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator("h1")).to_contain_text("succeeded", timeout=20_000)
    expect(page.locator("h1")).to_contain_text("Create server web-1")
    expect(page.locator("main")).to_contain_text("evs.create_server")  # as the job's type
    # A finished job's bar is green (not the red of a full vault).
    done = page.get_by_role("progressbar", name="Progress")
    expect(done).to_have_class(re.compile(r"\bprogress-done\b"))
    expect(done.locator(".capacity-fill")).to_have_css("background-color", "rgb(26, 127, 75)")
    shot(page, "job", narrow=True)
    create_disk(page, base, "spare-disk", size_gb=1)
    image = tmp_path / "image.raw"
    image.write_bytes(os.urandom(256 * 1024))
    page.locator("tr[data-disk='spare-disk']").get_by_role("link", name="Import").click()
    page.get_by_label("Raw image file").set_input_files(str(image))
    shot(page, "disk-import")
    page.get_by_role("button", name="Import").click()
    expect(flash(page)).to_contain_text("Imported 262144 bytes of image.raw.")
    page.goto(f"{base}/console/servers")
    server = page.locator("tr[data-server='web-1']")
    expect(server).to_contain_text("/dev/vda web-1-system")
    server.get_by_label("Disk to attach to web-1").select_option(label="spare-disk")
    server.get_by_role("button", name="Attach").click()
    expect(flash(page)).to_contain_text("Disk spare-disk attached as /dev/vdb.")
    server_id = server.locator(".sub.mono").first.inner_text().strip()

    # A server vault protects it; Back up now makes one backup with a disk backup per disk.
    create_vault(page, base, "server-vault", 20, resources=(server_id,), kind="server")
    back_up_now(page, base, "server", "server-vault", "web-1-backup")
    page.get_by_role("link", name="web-1-backup").click()
    for device in ("/dev/vda", "/dev/vdb"):
        expect(page.locator("main")).to_contain_text(device)

    # Create Server from it: a new server with a new disk for each one backed up, same
    # devices, holding the same bytes.
    page.get_by_role("link", name="Create Server").click()
    backed_up = page.get_by_role("table", name="Disks in the backup").locator("tbody tr")
    expect(backed_up).to_have_count(2)
    page.get_by_label("Name").fill("web-2")
    shot(page, "server-from-backup")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator("h1")).to_contain_text("succeeded", timeout=30_000)
    expect(page.locator("h1")).to_contain_text("Create server from backup web-1-backup")
    page.get_by_role("link", name="view servers").click()
    copy = page.locator("tr[data-server='web-2']")
    for disk in ("/dev/vda web-2-vda", "/dev/vdb web-2-vdb"):
        expect(copy).to_contain_text(disk)
    shot(page, "servers", narrow=True)
    page.goto(f"{base}/console/disks")
    check_narrow(page, "Disks", page.locator("tr[data-disk='web-2-vdb']"), "1 GB")
    copied = page.locator("tr[data-disk='web-2-vdb'] .sub.mono").first.inner_text().strip()
    expect(page.locator("tr[data-disk='web-2-vdb']")).to_contain_text("in-use")
    assert disk_bytes(runtime, user, copied, len(image.read_bytes())) == image.read_bytes()
    page.locator("tr[data-disk='spare-disk']").get_by_role("button", name="Detach").click()
    expect(flash(page)).to_contain_text("Disk spare-disk detached.")

    # My Credentials, also from the menu on the user name: resting the pointer on the name
    # opens it (and leaving closes it); so do Enter and a click.
    account = page.get_by_role("navigation", name="Account")
    item = account.get_by_role("menuitem", name="My Credentials")
    account.get_by_text(user.creds.user_name, exact=True).hover()
    expect(item).to_be_visible()
    expect(account.get_by_role("menuitem", name="API Credentials")).to_be_visible()
    shot(page, "user-menu", narrow=True)
    page.mouse.move(600, 600)
    expect(item).to_be_hidden()
    account.get_by_text(user.creds.user_name, exact=True).focus()
    page.keyboard.press("Enter")
    expect(item).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/console/credentials")
    expect(page.get_by_role("heading", name="API Credentials")).to_be_visible()

    # My Credentials: the secret key is shown once.
    page.get_by_role("button", name="Create access key").click()
    secret = page.locator("#new-sk").inner_text().strip()
    assert len(secret) == 40
    page.goto(f"{base}/console/credentials")
    expect(page.locator("main")).not_to_contain_text(secret)
    expect(page.get_by_role("table", name="Access keys").locator("tbody tr")).to_have_count(2)

    # Region selector: region-2 is another project of the same account.
    page.get_by_label("Region").select_option(user.creds.projects["region-2"])
    expect(flash(page)).to_contain_text("Now working in region-2.")
    page.goto(f"{base}/console/disks")
    expect(page.locator("main")).to_contain_text("No disks in region-2 yet.")

    # Refusals read as messages: an unknown backup, a form without its CSRF field.
    page.goto(f"{base}/console/cbr/disk/backups/00000000-0000-0000-0000-000000000000")
    expect(page.get_by_role("alert")).to_contain_text(
        "Backup 00000000-0000-0000-0000-000000000000 not found."
    )
    shot(page, "error")
    # Switching region from a page about one backup lands on the list, not on "not found".
    page.get_by_label("Region").select_option(user.creds.projects["region-1"])
    expect(flash(page)).to_contain_text("Now working in region-1.")
    assert page.url.endswith("/console/cbr/disk/backups")
    forged = page.request.post(f"{base}/console/kms", form={"alias": "forged"})
    assert forged.status == 403
    assert "did not come from the console" in forged.text()
    assert "Traceback" not in forged.text()

    # When the session expires, the sign-in page says so and then comes back to the page
    # (with its query), or, for a form sent, to the page the form was on.
    expire_sessions(runtime, user.creds.user_name)
    page.goto(f"{base}/console/cbr/disk/backups?tab=shared&share_status=pending")
    expect(page).to_have_url(re.compile(r"/console/login\?next="))
    expect(page.get_by_role("status")).to_have_text(
        "Your session expired. Sign in again to continue where you were."
    )
    shot(page, "login-expired", narrow=True)
    login(page, base, user.creds.user_name, goto=False)
    expect(page).to_have_url(f"{base}/console/cbr/disk/backups?tab=shared&share_status=pending")
    expect(page.get_by_label("Status")).to_have_value("pending")
    page.goto(f"{base}/console/kms")
    expire_sessions(runtime, user.creds.user_name)
    page.get_by_label("Alias").fill("late-key")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("status")).to_contain_text("Your session expired.")
    login(page, base, user.creds.user_name, goto=False)
    expect(page).to_have_url(f"{base}/console/kms")
    expect(page.locator("tr[data-key='late-key']")).to_have_count(0)
    # The page to come back to is only ever this site's: anything else lands on the home page.
    for elsewhere in ("https://evil.example/", "//evil.example/console/kms"):
        page.goto(f"{base}/console/login?next={quote(elsewhere)}")
        login(page, base, user.creds.user_name, goto=False)
        expect(page).to_have_url(f"{base}/console/cbr/server/vaults")

    # Log out; pages then ask to sign in, even with the old session cookie put back (its
    # token is revoked); a wrong password is refused.
    old = next(c for c in page.context.cookies() if c["name"] == "opencbr_session")
    page.get_by_role("button", name="Log out").click()
    expect(flash(page)).to_contain_text("You are signed out.")
    page.goto(f"{base}/console/kms")
    expect(page).to_have_url(re.compile(r"/console/login\?next=/console/kms$"))
    page.context.add_cookies([old])
    assert any(c["name"] == "opencbr_session" for c in page.context.cookies())
    page.goto(f"{base}/console/kms")
    expect(page).to_have_url(re.compile(r"/console/login\?next=/console/kms$"))
    page.get_by_label("IAM user name").fill(user.creds.user_name)
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("The user name or password is wrong.")
    shot(page, "login")

    # The session cookie is HttpOnly and SameSite=Lax.
    login(page, base, user.creds.user_name)
    cookie = next(c for c in page.context.cookies() if c["name"] == "opencbr_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"


def test_disk_snapshots_the_recycle_bin_and_vault_tags(
    runtime: Runtime, console: LiveServer, signed_in: TenantMaker, tmp_path: Path
) -> None:
    base = console.url
    user = signed_in("keeper")
    page = user.page
    disk_id = create_disk(page, base, "kept")
    first, second = tmp_path / "first.raw", tmp_path / "second.raw"
    first.write_bytes(os.urandom(64 * 1024))
    second.write_bytes(os.urandom(64 * 1024))
    import_image(page, base, "kept", first)

    # Snapshots of a disk: take one, change the disk, roll back, delete the snapshot.
    page.locator("tr[data-disk='kept']").get_by_role("link", name="Snapshots").click()
    page.get_by_label("Name").fill("before")
    page.get_by_role("button", name="Take snapshot").click()
    expect(flash(page)).to_contain_text("Snapshot before is being taken.")
    row = page.locator("tr[data-snapshot='before']")
    _reload_until(page, row, "available")
    shot(page, "disk-snapshots")
    import_image(page, base, "kept", second)
    page.goto(f"{base}/console/disks/{disk_id}/snapshots")
    row.get_by_role("button", name="Roll back").click()
    expect(page.locator("h1")).to_contain_text("succeeded", timeout=20_000)
    expect(page.locator("h1")).to_contain_text("Roll back disk kept to snapshot before")
    assert disk_bytes(runtime, user, disk_id, 64 * 1024) == first.read_bytes()
    page.goto(f"{base}/console/disks/{disk_id}/snapshots")
    row.get_by_role("button", name="Delete").click()
    expect(flash(page)).to_contain_text("Snapshot before deleted.")

    # The recycle bin: turn it on; a deleted disk (older than the threshold) waits there.
    page.get_by_role("link", name="Recycle Bin").click()
    page.get_by_label("Keep deleted disks in the recycle bin").check()
    page.get_by_label("Only disks created at least this many days ago (1-1000)").fill("1")
    page.get_by_role("button", name="Save policy").click()
    expect(flash(page)).to_contain_text("Recycle bin policy saved.")
    with runtime.database.unit_of_work() as session:
        disk = session.get(Disk, disk_id)
        assert disk is not None
        disk.created_at -= timedelta(days=2)  # as two days passing would
    page.goto(f"{base}/console/disks")
    page.locator("tr[data-disk='kept']").get_by_role("button", name="Delete").click()
    expect(page.locator("h1")).to_contain_text("succeeded", timeout=20_000)
    page.goto(f"{base}/console/recycle-bin")
    binned = page.locator("tr[data-disk='kept']")
    expect(binned).to_contain_text("1 GB")
    shot(page, "recycle-bin")
    binned.get_by_role("button", name="Restore").click()
    expect(flash(page)).to_contain_text("Disk kept restored.")
    expect(page.locator("tr[data-disk='kept']")).to_contain_text("available")

    # Vault tags: shown on the vault list, which filters by key or key=value.
    with runtime.database.unit_of_work() as session:
        for name, tags in (("tagged", [{"key": "env", "value": "prod"}]), ("plain", [])):
            spec = vaults.VaultSpec(name=name, object_type="disk", size_gb=10, tags=tags)
            vaults.create_vault(session, user.actor, spec)
    page.goto(f"{base}/console/cbr/disk/vaults")
    expect(page.locator("tr[data-vault='tagged'] [data-tags]")).to_contain_text("env=prod")
    page.get_by_label("Tag (key or key=value)").fill("env=prod")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr[data-vault]")).to_have_count(1)
    expect(page.locator("tr[data-vault='tagged']")).to_be_visible()


def _reload_until(page: Page, row: Locator, text: str, tries: int = 100) -> None:
    """Reload a page that does not refresh itself until `row` shows `text`."""
    for _ in range(tries):
        if text in row.inner_text():
            return
        page.wait_for_timeout(200)
        page.reload()
    expect(row).to_contain_text(text)
