"""File-level restore end to end: a partitioned disk (GPT: ext4, XFS, FAT and an ext4 with a
zeroed superblock) is backed up, then its files are listed and downloaded through the API
without restoring the disk, compared byte for byte with the tree the images were made from;
escapes through `..` and symbolic links are refused; the damaged filesystem answers a clear
error. A recipient browses an encrypted backup shared with it only once the owner grants its
key; an outsider is answered as for a missing backup.

One appliance per test (each launch costs seconds, ~20 s under TCG): every check of a test
shares it."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from huaweicloudsdkkms.v2 import KmsClient

from opencbr.cli.client import ApiError, Client, Profile
from opencbr.core.ids import new_uuid
from opencbr.core.jobs import WorkerPool
from opencbr.iam.service import TenantCredentials
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows, fs_images
from tests.e2e.sdk import project_client
from tests.e2e.test_nbd_vm import cli_for
from tests.e2e.test_sharing_encrypted import create_key, enable_agency, grant
from tests.e2e.test_sharing_scenario import Tenant, accept, share

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

MiB = 1 << 20
GiB = 1 << 30


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


def test_browse_and_download_files_of_a_partitioned_backup(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool, tmp_path: Path
) -> None:
    fs_images.need_image_tools()
    tree = fs_images.source_tree(tmp_path / "tree")
    parts = [
        fs_images.ext4(tmp_path / "p1.img", tree, 64 * MiB),
        fs_images.xfs(tmp_path / "p2.img", tree, 300 * MiB),
        fs_images.vfat(tmp_path / "p3.img", tree, 32 * MiB),
        fs_images.corrupt_superblock(fs_images.ext4(tmp_path / "p4.img", tree, 16 * MiB)),
    ]
    image = tmp_path / "disk.img"
    fs_images.partitioned(image, GiB, "gpt", parts)
    creds = make_tenant()
    owner = flows.tenant_clients(server.url, creds)
    cli = cli_for(server, creds, tmp_path / "cli")
    disk = cli("disk", "import", str(image), "--name", "partitioned", "--json")["id"]
    vault = flows.disk_vault(owner.cbr, "files-vault", 10, [disk])
    backup = flows.back_up(owner.cbr, vault.id, "files-1")
    files = files_api(slow_client(server.url, creds), backup.id)

    top = files("/")
    assert top["partition_table"] == "gpt"
    kinds = {entry["name"]: entry["fstype"] for entry in top["entries"]}
    assert kinds == {"part1": "ext4", "part2": "xfs", "part3": "vfat", "part4": "unknown"}
    assert {entry["size"] for entry in top["entries"]} == {p.stat().st_size for p in parts}

    report = (tree / "docs" / "report.bin").read_bytes()
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

    # Escapes: `..` above the root, links on the way or at the end, device files.
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

    # The damaged filesystem: a clear error; the others still answer.
    damaged = refused(lambda: files("/part4"))
    assert (damaged.status, damaged.code) == (422, "BackupService.9943")
    assert "part4" in str(damaged)
    assert files("/part1/hello.txt", "content") == b"hello from the backup\n"

    # The CLI, on the same appliance: a listing, a file, a directory as a tar archive.
    shown = cli("backup", "files", "ls", backup.id, "/part1/docs", "--json")
    assert shown["type"] == "directory"
    assert {e["name"]: e["size"] for e in shown["entries"]}["report.bin"] == len(report)
    out = tmp_path / "got.bin"
    got = cli(
        "backup", "files", "get", backup.id, "/part2/docs/report.bin", "--out", str(out), "--json"
    )
    assert (got["bytes"], out.read_bytes()) == (len(report), report)
    tar_out = tmp_path / "docs.tar"
    got = cli("backup", "files", "get", backup.id, "/part1/docs", "--out", str(tar_out), "--json")
    assert got["archive"] is True
    with tarfile.open(tar_out) as archive:
        member = archive.extractfile("./report.bin")
        assert member is not None
        assert member.read() == report


def test_a_recipient_browses_an_encrypted_shared_backup_once_granted(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool, tmp_path: Path
) -> None:
    fs_images.need_image_tools()
    tree = fs_images.source_tree(tmp_path / "tree", links=False)
    image = fs_images.ext4(tmp_path / "whole.img", tree, 64 * MiB)  # no partition table
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
