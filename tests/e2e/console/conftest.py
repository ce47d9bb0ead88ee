"""Browser fixtures for the console: a live server with job workers, Debian's chromium driven
by Playwright, signed-in pages per tenant, screenshots, and helpers that go through the
console's own forms (import an image, Back up now) or read a disk's bytes back.

These tests run on SQLite only; the services the console calls are tested on both databases
in `tests/integration`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select, update

from opencbr.cbr import vaults
from opencbr.core.clock import utcnow
from opencbr.core.context import Actor, Runtime
from opencbr.core.jobs import WorkerPool
from opencbr.evs import service as evs
from opencbr.iam import service as iam
from opencbr.iam.models import Token, User
from opencbr.iam.service import TenantCredentials
from tests.conftest import LiveServer, unique

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts" / "console"
PASSWORD = "console-Passw0rd"
REGION = "region-1"


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The browser tests run on SQLite only (see the module docstring)."""
    return f"sqlite:///{tmp_path / 'opencbr.db'}"


@pytest.fixture
def console(runtime: Runtime, workers: WorkerPool) -> Iterator[LiveServer]:
    """The API and console on a loopback port, with every slice's job workers running in
    the same process, as `opencbr serve` runs them."""
    with LiveServer(runtime) as live:
        yield live


@dataclass
class Tenant:
    creds: TenantCredentials
    page: Page

    @property
    def project_id(self) -> str:
        return self.creds.projects[REGION]

    @property
    def actor(self) -> Actor:
        return Actor(self.creds.domain_id, "", self.project_id, REGION)


WIDE, NARROW = 1440, 800


def shot(page: Page, name: str, narrow: bool = False) -> Path:
    """Keep a screenshot of the page as a test artifact (test-artifacts/console/): `name.png`
    at the page's width (1440 px), and with `narrow` also `name-800.png` at 800 px (a tablet,
    or half a laptop's screen; each costs a relayout and a second image, so only pages whose
    narrow layout matters take it)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if not narrow:
        return path
    height = page.viewport_size["height"] if page.viewport_size else 900
    page.set_viewport_size({"width": NARROW, "height": height})
    try:
        page.screenshot(path=str(ARTIFACTS / f"{name}-{NARROW}.png"), full_page=True)
    finally:
        page.set_viewport_size({"width": WIDE, "height": height})
    return path


def login(page: Page, base: str, user: str, password: str = PASSWORD, goto: bool = True) -> None:
    """Sign in on the login page (opened first unless `goto` is False)."""
    if goto:
        page.goto(f"{base}/console/login")
    page.get_by_label("IAM user name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Account")).to_contain_text(user)


TenantMaker = Callable[[str], Tenant]


@pytest.fixture
def signed_in(runtime: Runtime, console: LiveServer, browser: Browser) -> Iterator[TenantMaker]:
    """`signed_in("owner")`: a new tenant (projects in two regions) and a page signed in as it."""
    contexts = []

    def make(label: str) -> Tenant:
        with runtime.database.unit_of_work() as session:
            creds = iam.create_tenant(
                session,
                runtime.root_key,
                runtime.settings.regions,
                unique(label),
                ["region-1", "region-2"],
                password=PASSWORD,
            )
        context = browser.new_context(viewport={"width": WIDE, "height": 900})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        login(page, console.url, creds.user_name)
        return Tenant(creds, page)

    yield make
    for context in contexts:
        context.close()


def import_image(page: Page, base: str, disk_name: str, image: Path) -> None:
    """Write a raw image into a detached disk through the console's Import form."""
    page.goto(f"{base}/console/disks")
    page.locator(f"tr[data-disk='{disk_name}']").get_by_role("link", name="Import").click()
    page.get_by_label("Raw image file").set_input_files(str(image))
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".flash").first).to_contain_text(
        f"Imported {image.stat().st_size} bytes of {image.name}."
    )


def back_up_now(page: Page, base: str, kind: str, vault_name: str, backup_name: str) -> str:
    """Vault > Back up now, then wait on the Backups tab (it refreshes itself while backups
    run) until the job workers have made the backup `available`; its id."""
    page.goto(f"{base}/console/cbr/{kind}/vaults")
    page.locator(f"tr[data-vault='{vault_name}']").get_by_role("link", name="Back up now").click()
    page.get_by_label("Backup name (optional)").fill(backup_name)
    page.get_by_role("button", name="Back up now").click()
    expect(page.locator(".flash").first).to_contain_text(f"Backup {backup_name} started for 1 ")
    row = page.locator(f"tr[data-backup='{backup_name}']")
    expect(row).to_contain_text("available", timeout=60_000)
    return row.locator(".sub.mono").first.inner_text().strip()


def disk_bytes(runtime: Runtime, tenant: Tenant, disk_id: str, length: int) -> bytes:
    """The first `length` bytes of a disk, read through the disk service as its project."""
    with runtime.database.unit_of_work() as session:
        volume = evs.data_volume(runtime, session, tenant.actor, disk_id)
        return b"".join(volume.read(0, length))


def leave_free(runtime: Runtime, tenant: Tenant, vault_name: str, nbytes: int) -> None:
    """Take a vault's space as other backups would, leaving `nbytes` free."""
    with runtime.database.unit_of_work() as session:
        found, _ = vaults.list_vaults(session, tenant.actor, vaults.VaultFilters(name=vault_name))
        vault = found[0]
        vaults.reserve(session, vault, vaults.free_bytes(vault) - nbytes)


def expire_sessions(runtime: Runtime, user_name: str) -> None:
    """Let every session of a user reach its end now, as its time to live would."""
    with runtime.database.unit_of_work() as session:
        users = select(User.id).where(User.name == user_name)
        session.execute(
            update(Token)
            .where(Token.user_id.in_(users))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


def flash(page: Page) -> str:
    return page.locator(".flash").first.inner_text()


def read_project_id(page: Page, base: str) -> str:
    """What a recipient tells the sharer: its project ID in the region, from My Credentials."""
    page.goto(f"{base}/console/credentials")
    text = page.locator(f"tr[data-region='{REGION}'] .project-id").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{32}", text)
    return text


def read_account_id(page: Page, base: str) -> str:
    page.goto(f"{base}/console/credentials")
    return page.locator("#account-id").inner_text().strip()
