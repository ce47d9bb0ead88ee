"""The README's "Disaster recovery" commands, run as written: protect a deployment, lose its
database, recover; lose the root key as well, recover by the recovery key alone."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from huaweicloudsdkcbr.v1 import model as cbr

from opencbr.iam import service as iam
from opencbr.iam.service import TenantCredentials
from tests.e2e import flows
from tests.e2e.recovery_fixtures import Deployment

README = Path(__file__).resolve().parents[2] / "README.md"
OPENCBR = str(Path(sys.executable).parent / "opencbr")
SECTION = "## Disaster recovery"
MiB = 1 << 20

pytestmark = pytest.mark.slow


def _blocks() -> list[list[str]]:
    section = README.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 3, "the section has its protect, recover and recovery-key blocks"
    return [block.strip().splitlines() for block in blocks]


def _run(deployment: Deployment, cwd: Path, line: str) -> subprocess.CompletedProcess[str]:
    words = shlex.split(line)
    assert words[:3] == ["uv", "run", "opencbr"], f"not a CLI line: {line}"
    env = {
        **os.environ,
        "OPENCBR_DATA_DIR": str(deployment.data_dir),
        "OPENCBR_DATABASE_URL": deployment.database_url,
    }
    done = subprocess.run([OPENCBR, *words[3:]], env=env, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
    return done


def _backups(url: str, creds: TenantCredentials) -> list[str]:
    clients = flows.tenant_clients(url, creds)
    return [b.id for b in clients.cbr.list_backups(cbr.ListBackupsRequest()).backups]


def test_the_readme_disaster_recovery_commands_work_as_written(
    deployment: Deployment, tmp_path: Path
) -> None:
    protect, recover, by_recovery_key = _blocks()
    with deployment.running() as (runtime, server):
        with runtime.database.unit_of_work() as session:
            creds = iam.create_tenant(
                session, runtime.root_key, runtime.settings.regions, "acme", ["region-1"]
            )
        clients = flows.tenant_clients(server.url, creds)
        disk = flows.create_disk(clients.evs, "disk")
        data = os.urandom(MiB)
        flows.write(clients.data, clients.project, disk, 0, data)
        vault = flows.disk_vault(clients.cbr, "vault", 10, [disk])
        backup = flows.back_up(clients.cbr, vault.id, "nightly").id
        for line in protect:
            if deployment.kind == "postgresql" and " db backup " in line:
                continue  # the README says pg_dump for PostgreSQL
            _run(deployment, tmp_path, line)
    assert (tmp_path / "recovery.key").exists()

    deployment.delete_database()
    for line in recover:
        _run(deployment, tmp_path, line)
    with deployment.running() as (_runtime, server):
        assert _backups(server.url, creds) == [backup]

    deployment.delete_database()
    (deployment.data_dir / "root.key").unlink()
    for line in by_recovery_key:
        _run(deployment, tmp_path, line)
    with deployment.running() as (_runtime, server):
        assert _backups(server.url, creds) == [backup]
        owner = flows.tenant_clients(server.url, creds)
        restored, job = flows.disk_from_backup(owner.evs, backup, "restored")
        assert job.status == "SUCCESS"
        assert flows.read(owner.data, owner.project, restored, 0, MiB) == data
