"""The real `opencbr` CLI (a subprocess) against a live server: disk import/export round trip,
ranged write/read, and server verbs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opencbr.core.context import Runtime
from opencbr.core.jobs import WorkerPool
from opencbr.evs.jobs import handlers as evs_handlers
from opencbr.iam.agencies import EVS_KMS_AGENCY, create_agency
from opencbr.iam.service import TenantCredentials
from tests.conftest import LiveServer, TenantFactory

MiB = 1 << 20
GiB = 1 << 30
OPENCBR = str(Path(sys.executable).parent / "opencbr")
pytestmark = pytest.mark.slow  # each CLI call is a fresh process (about 2.5 s of imports)


@pytest.fixture
def workers(runtime: Runtime) -> Iterator[WorkerPool]:
    pool = WorkerPool(
        runtime.database,
        evs_handlers(runtime),
        threads=2,
        poll_seconds=0.05,
    ).start()
    yield pool
    pool.stop()


@pytest.fixture
def cli(server: LiveServer, make_tenant: TenantFactory, runtime: Runtime, tmp_path: Path) -> Any:
    creds: TenantCredentials = make_tenant()
    with runtime.database.unit_of_work() as session:
        create_agency(session, creds.domain_id, EVS_KMS_AGENCY, "op_svc_evs")
    env = {
        **os.environ,
        "OPENCBR_ENDPOINT": server.url,
        "OPENCBR_ACCESS_KEY": creds.access_key,
        "OPENCBR_SECRET_KEY": creds.secret_key,
        "OPENCBR_PROJECT_ID": creds.projects["region-1"],
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }

    def run(*args: str, expect: int = 0) -> Any:
        done = subprocess.run(
            [OPENCBR, *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == expect, done.stderr + done.stdout
        return json.loads(done.stdout) if "--json" in args and expect == 0 else done

    return run


def _image(path: Path) -> bytes:
    """A 3 MiB + 100 byte image with a hole in the middle."""
    head, tail = os.urandom(MiB), os.urandom(MiB + 100)
    with open(path, "wb") as handle:
        handle.write(head)
        handle.seek(2 * MiB)
        handle.write(tail)
    return path.read_bytes()


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_import_export_round_trip(
    cli: Any, workers: WorkerPool, tmp_path: Path, encrypted: bool
) -> None:
    source = tmp_path / "source.img"
    original = _image(source)
    flags = ["--encrypted"] if encrypted else []
    made = cli("disk", "import", str(source), "--name", "imported", *flags, "--json")
    disk_id = made["id"]
    shown = cli("disk", "show", disk_id, "--json")
    assert (shown["size_gb"], shown["status"], shown["encrypted"]) == (1, "available", encrypted)

    target = tmp_path / "exported.img"
    cli("disk", "export", disk_id, str(target), "--json")
    assert target.stat().st_size == GiB
    with open(target, "rb") as handle:
        assert handle.read(len(original)) == original
        handle.seek(len(original))
        assert handle.read(4 * MiB).count(0) == 4 * MiB
    assert os.stat(target).st_blocks * 512 < 16 * MiB  # the export stayed sparse

    trimmed = tmp_path / "trimmed.img"
    cli("disk", "export", disk_id, str(trimmed), "--length", str(len(original)), "--json")
    assert trimmed.read_bytes() == original  # the imported image, not the whole disk


def test_ranged_write_and_read(cli: Any, workers: WorkerPool, tmp_path: Path) -> None:
    made = cli("disk", "create", "--name", "ranged", "--size-gb", "1", "--json")
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(2 * MiB + 1024))
    written = cli("disk", "write", made["id"], "--offset", str(10 * MiB), str(data), "--json")
    assert written["length"] == 2 * MiB + 1024
    out = tmp_path / "out.bin"
    cli(
        "disk",
        "read",
        made["id"],
        "--offset",
        str(10 * MiB),
        "--length",
        str(2 * MiB + 1024),
        str(out),
        "--json",
    )
    assert out.read_bytes() == data.read_bytes()
    past = cli("disk", "write", made["id"], "--offset", str(GiB - 512), str(data), expect=1)
    assert "EVS.0412" in past.stderr
    listed = cli("disk", "list", "--json")
    assert [d["id"] for d in listed] == [made["id"]]
    cli("disk", "delete", made["id"], "--json")
    assert cli("disk", "list", "--json") == []


def test_server_verbs(cli: Any, workers: WorkerPool) -> None:
    spare = cli("disk", "create", "--name", "spare", "--size-gb", "1", "--json")["id"]
    server = cli(
        "server",
        "create",
        "--name",
        "app",
        "--system-size-gb",
        "1",
        "--data-size-gb",
        "2",
        "--json",
    )
    assert server["status"] == "ACTIVE"
    assert len(server["volumes_attached"]) == 2
    sid = server["id"]
    cli("server", "attach", sid, spare, "--json")
    assert len(cli("server", "show", sid, "--json")["volumes_attached"]) == 3
    refused = cli("disk", "delete", spare, expect=1)
    assert "EVS.0411" in refused.stderr
    cli("server", "detach", sid, spare, "--json")
    assert cli("server", "stop", sid, "--json")["status"] == "SHUTOFF"
    assert cli("server", "start", sid, "--json")["status"] == "ACTIVE"
    assert [s["id"] for s in cli("server", "list", "--json")] == [sid]
    cli("server", "delete", sid, "--with-disks", "--json")
    assert cli("server", "list", "--json") == []


def test_extend_snapshot_rollback_and_bin_policy_verbs(cli: Any, workers: WorkerPool) -> None:
    disk = cli("disk", "create", "--name", "grown", "--size-gb", "1", "--json")["id"]
    assert cli("disk", "extend", disk, "--size-gb", "2", "--json")["size_gb"] == 2
    snapshot = cli("disk", "snapshot", "create", disk, "--name", "s1", "--json")
    assert (snapshot["status"], snapshot["size"], snapshot["volume_id"]) == ("available", 2, disk)
    rolled = cli("disk", "snapshot", "rollback", snapshot["id"], "--json")
    assert rolled == {"snapshot_id": snapshot["id"], "volume_id": disk}
    policy = cli("disk", "bin", "policy", "--enable", "--keep-days", "3", "--json")
    assert policy == {"switch": True, "threshold_time": 7, "keep_time": 3}
