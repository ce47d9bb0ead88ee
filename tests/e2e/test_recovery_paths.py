"""Recovery's harder paths: by the recovery key alone (root key lost too), a crashed backup's
record without its manifest, and a recovery killed half-way and run again."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import model as cbr

from opencbr.api.runtime import build_runtime
from opencbr.cbr.catalogue import BACKUPS, catalogue_keys, read_record
from opencbr.cbr.dataplane import chunk_store
from opencbr.cbr.recovery import MARKER, recover
from opencbr.core.context import Runtime
from opencbr.iam import service as iam
from opencbr.iam.service import TenantCredentials
from tests.e2e import flows
from tests.e2e.recovery_fixtures import Deployment, run_cli

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def _scene(url: str, runtime: Runtime, backups: int = 2) -> dict[str, Any]:
    """A tenant whose disk has `backups` backups, the first shared with a second tenant."""
    with runtime.database.unit_of_work() as session:
        owner, other = (
            iam.create_tenant(session, runtime.root_key, runtime.settings.regions, n, ["region-1"])
            for n in ("owner", "other")
        )
    a = flows.tenant_clients(url, owner)
    b = flows.tenant_clients(url, other)
    disk = flows.create_disk(a.evs, "source", size_gb=1)
    vault = flows.disk_vault(a.cbr, "vault", 10, [disk])
    data, ids = [], []
    for number in range(backups):
        data.append(os.urandom(MiB))
        flows.write(a.data, a.project, disk, 0, data[-1])
        ids.append(flows.back_up(a.cbr, vault.id, f"b{number}").id)
    body = cbr.AddMembersReq(members=[b.project])
    a.cbr.add_member(cbr.AddMemberRequest(backup_id=ids[0], body=body))
    return {"owner": owner, "other": other, "ids": ids, "data": data}


def _names(url: str, creds: TenantCredentials, **filters: Any) -> list[tuple[str, str]]:
    clients = flows.tenant_clients(url, creds)
    backups = clients.cbr.list_backups(cbr.ListBackupsRequest(**filters)).backups
    return sorted((b.id, b.name) for b in backups)


def _restores(url: str, creds: TenantCredentials, backup_id: str) -> bytes:
    clients = flows.tenant_clients(url, creds)
    disk, job = flows.disk_from_backup(clients.evs, backup_id, "restored")
    assert job.status == "SUCCESS"
    return flows.read(clients.data, clients.project, disk, 0, MiB)


def _crashed_record(runtime: Runtime, like: str) -> str:
    """The record a backup that crashed after writing it, before its manifest, would leave."""
    catalogue = chunk_store(runtime).catalogue
    keys = catalogue_keys(runtime)
    record = read_record(catalogue, keys, BACKUPS, like)
    crashed = str(uuid.uuid4())
    record["backup"] = {**record["backup"], "id": crashed, "name": "crashed"}
    record["manifests"] = ["0" * 64]
    record["members"] = []
    plain = json.dumps(record).encode()
    catalogue.put(BACKUPS, crashed, keys.seal(BACKUPS, crashed, plain))
    return crashed


def test_the_recovery_key_alone_recovers_and_a_crashed_record_is_skipped(
    deployment: Deployment,
) -> None:
    key_file = deployment.data_dir.parent / "recovery.key"
    with deployment.running() as (runtime, server):
        scene = _scene(server.url, runtime)
        exported = run_cli("admin", "export-recovery-key", str(key_file), *deployment.cli_args())
        assert exported.exit_code == 0, exported.output
        crashed = _crashed_record(runtime, scene["ids"][1])
        before = _names(server.url, scene["owner"])
        shared = _names(server.url, scene["other"], own_type="shared")

    deployment.delete_database()
    (deployment.data_dir / "root.key").unlink()  # the root key is lost too
    result = run_cli(
        "admin", "recover", *deployment.cli_args(), "--recovery-key", str(key_file), "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [line.split(":")[0] for line in report["skipped"]] == [f"{BACKUPS}/{crashed}"]
    assert "is not in the store" in report["skipped"][0]

    with deployment.running() as (runtime, server):
        assert _names(server.url, scene["owner"]) == before
        assert _names(server.url, scene["other"], own_type="shared") == shared
        for backup_id, data in zip(scene["ids"], scene["data"], strict=True):
            assert _restores(server.url, scene["owner"], backup_id) == data
    # The new root key opens the catalogue from now on: a second recovery needs no other key.
    deployment.delete_database()
    again = run_cli("admin", "recover", *deployment.cli_args(), "--json")
    assert again.exit_code == 0, again.output


def test_a_recovery_killed_half_way_finishes_when_run_again(deployment: Deployment) -> None:
    with deployment.running() as (runtime, server):
        scene = _scene(server.url, runtime, backups=3)
        before = _names(server.url, scene["owner"])
    deployment.delete_database()

    class Killed(Exception):
        pass

    def kill_after_first_batch(kind: str, done: int, total: int) -> None:
        raise Killed

    runtime = build_runtime(deployment.settings())
    try:
        with pytest.raises(Killed):
            recover(runtime, batch=1, progress=kill_after_first_batch)
    finally:
        runtime.database.dispose()
    assert (deployment.data_dir / MARKER).exists()

    result = run_cli("admin", "recover", *deployment.cli_args(), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["recovered"]["backups"] == 2  # the first came back before
    assert not (deployment.data_dir / MARKER).exists()
    with deployment.running() as (runtime, server):
        assert _names(server.url, scene["owner"]) == before
        assert _restores(server.url, scene["owner"], scene["ids"][2]) == scene["data"][2]
