"""The real `opencbr` CLI (a subprocess) against a live server with job workers: vaults,
backups, restore, disks and servers from backups, operation logs and jobs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from opencbr.core.jobs import WorkerPool
from opencbr.iam.service import TenantCredentials
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows

MiB = 1 << 20
OPENCBR = str(Path(sys.executable).parent / "opencbr")
# Each CLI call is a fresh process (about 2.5 s of imports, far more on a busy machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


class Cli:
    def __init__(self, server: LiveServer, creds: TenantCredentials, home: Path) -> None:
        self.project = creds.projects["region-1"]
        self.data = flows.data_client(server.url, creds)
        self.env = {
            **os.environ,
            "OPENCBR_ENDPOINT": server.url,
            "OPENCBR_ACCESS_KEY": creds.access_key,
            "OPENCBR_SECRET_KEY": creds.secret_key,
            "OPENCBR_PROJECT_ID": self.project,
            "XDG_CONFIG_HOME": str(home),
            "COLUMNS": "200",
        }

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [OPENCBR, *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == expect, done.stderr + done.stdout
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def write(self, disk_id: str, offset: int, data: bytes) -> None:
        flows.write(self.data, self.project, disk_id, offset, data)

    def read(self, disk_id: str, offset: int, length: int) -> bytes:
        return flows.read(self.data, self.project, disk_id, offset, length)

    def disk(self, name: str, data: bytes = b"") -> str:
        """A 1 GB disk made through the API (setup, not under test), holding `data`."""
        answer = self.data.request(
            "POST",
            f"/v2.1/{self.project}/cloudvolumes",
            {"volume": {"name": name, "size": 1, "availability_zone": "az1", "volume_type": "SAS"}},
        )
        job = f"/v1/{self.project}/jobs/{answer['job_id']}"
        flows.wait_for("disk", lambda: self.data.request("GET", job)["status"], "SUCCESS".__eq__)
        disk_id: str = answer["volume_ids"][0]
        if data:
            self.write(disk_id, 0, data)
        return disk_id


@pytest.fixture
def cli(server: LiveServer, make_tenant: TenantFactory, tmp_path: Path) -> Cli:
    return Cli(server, make_tenant(), tmp_path / "config")


def test_vault_verbs(cli: Cli, workers: WorkerPool) -> None:
    disk = cli.disk("source")
    vault = cli.json("vault", "create", "--name", "vault-cli", "--size-gb", "10")
    assert (vault["billing"]["object_type"], vault["billing"]["size"]) == ("disk", 10)
    assert cli.json("vault", "add-resource", vault["id"], disk) == {"add_resource_ids": [disk]}
    table = cli.run("vault", "list").stdout
    assert "vault-cli" in table
    assert "10 GB" in table
    assert cli.json("vault", "update", vault["id"], "--size-gb", "20")["billing"]["size"] == 20
    cli.json("vault", "remove-resource", vault["id"], disk)
    assert cli.json("vault", "show", vault["id"])["resources"] == []
    cli.run("vault", "delete", vault["id"])
    made = cli.run("vault", "create", "--name", "vault-cli-2", "--size-gb", "10").stdout
    assert re.search(r"^vault id: [0-9a-f-]{36}$", made, re.MULTILINE), made
    missing = cli.run("vault", "show", str(uuid.uuid4()), expect=4)
    assert "BackupService.6105" in missing.stderr


def test_backup_restore_and_disk_from_backup(cli: Cli, workers: WorkerPool) -> None:
    first = os.urandom(2 * MiB)
    disk = cli.disk("source", first)
    vault = cli.json("vault", "create", "--name", "vault-cli", "--size-gb", "10", "-r", disk)
    assert [r["id"] for r in vault["resources"]] == [disk]

    backups = cli.json("backup", "create", vault["id"], "--name", "first", "--wait")
    assert [(b["name"], b["status"], b["resource_id"]) for b in backups] == [
        ("first", "available", disk)
    ]
    backup = backups[0]["id"]
    listed = cli.json("backup", "list", "--vault", vault["id"], "--status", "available")
    assert [b["id"] for b in listed] == [backup]
    assert cli.json("backup", "list", "--own-type", "shared", "--member-status", "pending") == []
    table = cli.run("backup", "list", "--resource", disk).stdout
    assert "first" in table
    assert "2 MB" in table
    assert backup in table  # the whole id
    assert "1-1 of 1" in table
    assert cli.json("backup", "rename", backup, "renamed")["name"] == "renamed"

    logs = cli.json("oplog", "list", "--type", "backup", "--vault", vault["id"])
    assert [(log["status"], log["extra_info"]["common"]["progress"]) for log in logs] == [
        ("success", 100)
    ]
    assert "100%" in cli.run("oplog", "show", logs[0]["id"]).stdout

    made = cli.json("backup", "to-disk", backup, "--name", "copy", "--wait")
    assert cli.read(made["volume_id"], 0, 2 * MiB) == first
    job = cli.json("job", "show", made["job_id"])
    assert (job["status"], job["entities"]["volume_id"]) == ("SUCCESS", made["volume_id"])

    cli.write(disk, 0, bytes(2 * MiB))
    restored = cli.json("restore", backup, "--wait")
    assert (restored["status"], restored["targets"]) == ("success", [disk])
    assert cli.read(disk, 0, 2 * MiB) == first
    other = cli.json("restore", backup, "--volume", made["volume_id"], "--wait")
    assert other["targets"] == [made["volume_id"]]

    cli.run("backup", "delete", backup)
    gone = cli.run("backup", "show", backup, expect=4)
    assert "BackupService.6200" in gone.stderr


def test_server_backup_to_server_and_resource_selection(cli: Cli, workers: WorkerPool) -> None:
    server = cli.json(
        "server", "create", "--name", "web", "--system-size-gb", "1", "--data-size-gb", "1"
    )
    payloads = {d["id"]: os.urandom(MiB) for d in server["volumes_attached"]}
    for disk_id, payload in payloads.items():
        cli.write(disk_id, 0, payload)
    vault = cli.json(
        "vault", "create", "--name", "servers", "--type", "server", "--size-gb", "20",
        "--resource", server["id"],
    )  # fmt: skip
    backups = cli.json("backup", "create", vault["id"], "--full", "--wait")
    assert [b["status"] for b in backups] == ["available"]
    assert len(backups[0]["children"]) == 2
    assert "Disks" in cli.run("backup", "show", backups[0]["id"]).stdout

    made = cli.json("backup", "to-server", backups[0]["id"], "--name", "web-copy", "--wait")
    copy = cli.data.request("GET", f"/v1/{cli.project}/servers/{made['server_id']}")["server"]
    assert copy["status"] == "ACTIVE"
    copies = {d["device"]: d["id"] for d in copy["volumes_attached"]}
    for original in server["volumes_attached"]:
        assert cli.read(copies[original["device"]], 0, MiB) == payloads[original["id"]]
    refused = cli.run("backup", "to-disk", backups[0]["id"], "--name", "x", expect=1)
    assert "server backup" in refused.stderr

    # --resource backs up one of a vault's resources; without --wait it only starts.
    disks = [cli.disk("lone"), cli.disk("other")]
    disk_vault = cli.json(
        "vault", "create", "--name", "disks", "--size-gb", "10", "-r", disks[0], "-r", disks[1]
    )
    only = cli.json("backup", "create", disk_vault["id"], "--resource", disks[1], "--wait")
    assert [b["resource_id"] for b in only] == [disks[1]]
    started = cli.json("backup", "create", disk_vault["id"])
    assert len(started["vault"]["resources"]) == 2
