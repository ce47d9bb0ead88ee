"""File-level restore end to end: a partitioned disk (GPT: ext4, XFS, FAT and an ext4 with a
zeroed superblock) is backed up, then its files are listed and downloaded through the API, the
CLI and the console without restoring the disk, compared byte for byte with the tree the images
were made from; escapes through `..` and symbolic links are refused; the damaged filesystem
answers a clear error. A recipient browses an encrypted backup shared with it only once the
owner grants its key; an outsider is answered as for a missing backup. Both ways a file's
bytes come are covered: from the backup's blocks at the extents the guest reports (ext4, XFS)
and through the guest (FAT, and a file kept inline in its inode).

Each appliance launch costs ~20 s under TCG and sessions are per (project, backup), so the
module starts two: one for the owner's partitioned backup, shared by every test of it (API,
CLI, console) through a module-scoped deployment, and one for the recipient's shared backup."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from huaweicloudsdkkms.v2 import KmsClient
from playwright.sync_api import Browser, expect

from opencbr.api.runtime import build_runtime, start_workers
from opencbr.cli.client import ApiError, Client, Profile
from opencbr.core.context import Runtime
from opencbr.core.ids import new_uuid
from opencbr.core.jobs import WorkerPool
from opencbr.core.settings import Settings
from opencbr.iam import service as iam
from opencbr.iam.service import TenantCredentials
from tests.conftest import ROOT_KEY, LiveServer, TenantFactory, unique
from tests.e2e import flows, fs_images
from tests.e2e.console.conftest import PASSWORD, WIDE, login, shot
from tests.e2e.sdk import project_client
from tests.e2e.test_nbd_vm import cli_for
from tests.e2e.test_sharing_encrypted import create_key, enable_agency, grant
from tests.e2e.test_sharing_scenario import Tenant, accept, share

pytestmark = pytest.mark.slow

MiB = 1 << 20
GiB = 1 << 30
CliRun = Callable[..., Any]


def slow_client(url: str, creds: TenantCredentials) -> Client:
    """A client that waits out a first call's appliance launch (~20 s, more on a busy host)."""
    profile = Profile(url, creds.access_key, creds.secret_key, creds.projects["region-1"])
    return Client(profile, timeout=300)


def files_api(client: Client, backup_id: str) -> Callable[..., Any]:
    base = f"/opencbr/v1/{client.project()}/backups/{backup_id}/files"

    def call(path: str = "/", what: str = "") -> Any:
        if what:
            return b"".join(client.download(f"{base}/{what}", {"path": path}))
        return client.request("GET", base, params={"path": path})

    return call


def refused(call: Callable[[], Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def listed(files: Callable[..., Any], path: str) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in files(path)["entries"]}


@dataclass
class Owned:
    """The owner's partitioned backup on a live server, with what it was made from."""

    server: LiveServer
    creds: TenantCredentials
    backup_id: str
    tree: Path
    parts: list[Path]
    cli: CliRun
    files: Callable[..., Any]
    scratch: Path

    @property
    def report(self) -> bytes:
        return (self.tree / "docs" / "report.bin").read_bytes()


@pytest.fixture(scope="module")
def owned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Owned]:
    """One deployment (SQLite) for the module, holding the owner's partitioned backup: its
    file browser's appliance is launched by the first test and reused by the others."""
    fs_images.need_image_tools()
    root = tmp_path_factory.mktemp("files")
    settings = Settings(
        data_dir=root / "data", database_url=f"sqlite:///{root / 'opencbr.db'}", root_key=ROOT_KEY
    )
    runtime: Runtime = build_runtime(settings)
    pool: WorkerPool = start_workers(runtime, threads=2)
    pool.poll_seconds = 0.05
    try:
        with LiveServer(runtime) as server:
            yield _owned_backup(runtime, server, root)
    finally:
        pool.stop()
        runtime.database.dispose()


def _owned_backup(runtime: Runtime, server: LiveServer, root: Path) -> Owned:
    tree = fs_images.source_tree(root / "tree")
    parts = [
        fs_images.ext4(root / "p1.img", tree, 64 * MiB),
        fs_images.xfs(root / "p2.img", tree, 300 * MiB),
        fs_images.vfat(root / "p3.img", tree, 32 * MiB),
        fs_images.corrupt_superblock(fs_images.ext4(root / "p4.img", tree, 16 * MiB)),
    ]
    image = root / "disk.img"
    fs_images.partitioned(image, GiB, "gpt", parts)
    with runtime.database.unit_of_work() as session:
        creds = iam.create_tenant(
            session,
            runtime.root_key,
            runtime.settings.regions,
            unique("file-owner"),
            ["region-1", "region-2"],
            password=PASSWORD,
        )
    owner = flows.tenant_clients(server.url, creds)
    cli = cli_for(server, creds, root / "cli")
    disk = cli("disk", "import", str(image), "--name", "partitioned", "--json")["id"]
    image.unlink()
    vault = flows.disk_vault(owner.cbr, "files-vault", 10, [disk])
    backup = flows.back_up(owner.cbr, vault.id, "files-1")
    files = files_api(slow_client(server.url, creds), backup.id)
    return Owned(server, creds, backup.id, tree, parts, cli, files, root)


def test_listings_and_downloads_match_the_source_tree(owned: Owned) -> None:
    files, report = owned.files, owned.report
    top = files("/")
    assert top["partition_table"] == "gpt"
    kinds = {entry["name"]: entry["fstype"] for entry in top["entries"]}
    assert kinds == {"part1": "ext4", "part2": "xfs", "part3": "vfat", "part4": "unknown"}
    assert {entry["size"] for entry in top["entries"]} == {p.stat().st_size for p in owned.parts}

    for fs in ("part1", "part2"):
        root = listed(files, f"/{fs}")
        assert set(root) - {"lost+found"} == {"hello.txt", "docs", "report-link", "passwd-link"}
        assert root["hello.txt"]["type"] == "file"
        assert (root["hello.txt"]["size"], root["hello.txt"]["mode"]) == (22, "0640")
        assert root["docs"]["type"] == "directory"
        assert (root["report-link"]["type"], root["report-link"]["target"]) == (
            "symlink",
            "docs/report.bin",
        )
        assert root["passwd-link"]["target"] == "/etc/passwd"
        docs = listed(files, f"/{fs}//docs/./nested/..")
        assert docs["report.bin"]["size"] == len(report)
        assert files(f"/{fs}/docs/report.bin", "content") == report
        assert files(f"/{fs}/docs/r\u00e9sum\u00e9.txt", "content") == "caf\u00e9\n".encode()
    fat = listed(files, "/part3/docs")
    assert set(fat) == {"report.bin", "nested", "r\u00e9sum\u00e9.txt"}
    assert files("/part3/docs/report.bin", "content") == report

    # A directory as a tar stream: links stay links, contents byte for byte.
    with tarfile.open(fileobj=io.BytesIO(files("/part2/docs", "archive"))) as archive:
        members = {m.name.removeprefix("./"): m for m in archive.getmembers()}
        assert archive.extractfile(members["report.bin"]).read() == report  # type: ignore[union-attr]
        assert members["escape"].issym()
        assert members["escape"].linkname == "../../../../../etc"
        assert members["nested/empty.txt"].size == 0


def test_escapes_are_refused(owned: Owned) -> None:
    """`..` above the root, links on the way or at the end, a directory as a file."""
    files = owned.files
    above = refused(lambda: files("/part1/../../etc/passwd", "content"))
    assert (above.status, above.code) == (400, "BackupService.9940")
    for path in ("/part1/passwd-link", "/part1/docs/escape/passwd", "/part1/report-link"):
        link = refused(lambda path=path: files(path, "content"))
        assert (link.status, link.code) == (400, "BackupService.9942"), path
        assert "symbolic link" in str(link)
    assert files("/part2/docs/escape")["entries"][0]["type"] == "symlink"  # shown, not followed
    inside = refused(lambda: listed(files, "/part2/docs/escape/passwd"))
    assert inside.code == "BackupService.9942"
    missing = refused(lambda: files("/part1/no-such-file", "content"))
    assert (missing.status, missing.code) == (404, "BackupService.9941")
    directory = refused(lambda: files("/part1/docs", "content"))
    assert directory.code == "BackupService.9942"


def test_a_damaged_filesystem_answers_a_clear_error(owned: Owned) -> None:
    damaged = refused(lambda: owned.files("/part4"))
    assert (damaged.status, damaged.code) == (422, "BackupService.9943")
    assert "part4" in str(damaged)
    assert owned.files("/part1/hello.txt", "content") == b"hello from the backup\n"


def test_the_cli_lists_and_gets_files_and_directories(owned: Owned) -> None:
    cli, report, out_dir = owned.cli, owned.report, owned.scratch
    shown = cli("backup", "files", "ls", owned.backup_id, "/part1/docs", "--json")
    assert shown["type"] == "directory"
    assert {e["name"]: e["size"] for e in shown["entries"]}["report.bin"] == len(report)
    out = out_dir / "got.bin"
    got = cli(
        "backup",
        "files",
        "get",
        owned.backup_id,
        "/part2/docs/report.bin",
        "--out",
        str(out),
        "--json",
    )
    assert (got["bytes"], out.read_bytes()) == (len(report), report)
    tar_out = out_dir / "docs.tar"
    got = cli(
        "backup", "files", "get", owned.backup_id, "/part1/docs", "--out", str(tar_out), "--json"
    )
    assert got["archive"] is True
    with tarfile.open(tar_out) as archive:
        member = archive.extractfile("./report.bin")
        assert member is not None
        assert member.read() == report


def test_the_console_browses_a_backup_and_downloads_its_files(
    owned: Owned, browser: Browser
) -> None:
    """The console's Browse files action: from the backup's page down a directory to a file,
    downloaded byte for byte, and a directory downloaded as a tar archive."""
    context = browser.new_context(viewport={"width": WIDE, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        login(page, owned.server.url, owned.creds.user_name)
        page.goto(f"{owned.server.url}/console/cbr/disk/backups/{owned.backup_id}")
        page.set_default_timeout(240_000)  # a first call starts the backup's file browser
        page.get_by_role("link", name="Browse files").click()
        expect(page.get_by_text("Partition table: gpt")).to_be_visible(timeout=240_000)
        page.set_default_timeout(10_000)
        page.locator("tr[data-entry='part1']").get_by_role("link", name="part1").click()
        row = page.locator("tr[data-entry='passwd-link']")
        expect(row).to_contain_text("→ /etc/passwd")
        expect(row.get_by_role("link")).to_have_count(0)  # a link is shown, never followed
        page.locator("tr[data-entry='docs']").get_by_role("link", name="docs/").click()
        expect(page.locator("nav[data-path]")).to_have_attribute("data-path", "/part1/docs")
        shot(page, "backup-files")

        with page.expect_download() as started:
            page.locator("tr[data-entry='report.bin']").get_by_role("link", name="Download").click()
        assert Path(started.value.path()).read_bytes() == owned.report
        with page.expect_download() as started:
            nested = page.locator("tr[data-entry='nested']")
            nested.get_by_role("link", name="Download .tar").click()
        with tarfile.open(fileobj=io.BytesIO(Path(started.value.path()).read_bytes())) as archive:
            assert [m.name for m in archive.getmembers() if m.isfile()] == ["./empty.txt"]
    finally:
        context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_recipient_browses_an_encrypted_shared_backup_once_granted(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool, tmp_path: Path
) -> None:
    fs_images.need_image_tools()
    tree = fs_images.source_tree(tmp_path / "tree", links=False)
    # No partition table; small files kept in their inode have no extents to read from the
    # backup's blocks, so hello.txt streams through the guest and report.bin does not.
    image = fs_images.ext4(tmp_path / "whole.img", tree, 64 * MiB, features="inline_data")
    a, b, outsider = (Tenant(server, make_tenant()) for _ in range(3))
    enable_agency(a)
    kms_a = project_client(KmsClient, server.url, a.creds)
    key_id = create_key(kms_a)
    cli = cli_for(server, a.creds, tmp_path / "cli")
    made = cli("disk", "import", str(image), "--name", "secret", "--kms-key", key_id, "--json")
    vault = flows.disk_vault(a.cbr, "vault-a", 10, [made["id"]])
    backup = flows.back_up(a.cbr, vault.id, "encrypted-1")
    assert backup.extend_info.encrypted is True
    share(a, backup.id, b)
    accept(b, backup.id, flows.disk_vault(b.cbr, "vault-b", 10, []).id)
    browse = files_api(slow_client(server.url, b.creds), backup.id)

    # An outsider is answered exactly as for a backup that does not exist (S14).
    peek = files_api(slow_client(server.url, outsider.creds), backup.id)
    nowhere = files_api(slow_client(server.url, outsider.creds), new_uuid())
    for call in (peek, nowhere):
        answer = refused(lambda call=call: call("/"))
        assert (answer.status, answer.code) == (404, "BackupService.6200")
    assert str(refused(lambda: peek("/"))).replace(backup.id, "X") == str(
        refused(lambda: files_api(slow_client(server.url, outsider.creds), "X")("/"))
    )

    # Without a grant the recipient is refused as when it makes a disk (S10).
    no_grant = refused(lambda: browse("/"))
    assert (no_grant.status, no_grant.code) == (400, "BackupService.6709")
    assert key_id in str(no_grant)

    grant(kms_a, key_id, b.creds.domain_id)
    top = browse("/")
    assert top["partition_table"] == "none"
    assert [(e["name"], e["fstype"]) for e in top["entries"]] == [("disk", "ext4")]
    assert browse("/disk/hello.txt", "content") == (tree / "hello.txt").read_bytes()
    report = (tree / "docs" / "report.bin").read_bytes()
    assert browse("/disk/docs/report.bin", "content") == report
