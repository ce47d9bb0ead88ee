"""`opencbr store verify` finds a flipped byte, a truncated pack and a missing pack, names each,
and marks the backups that need them so their owner and recipients see it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from huaweicloudsdkcbr.v1 import model as cbr

from opencbr.cbr.dataplane import chunk_store
from opencbr.cbr.models import Backup, OperationLog
from opencbr.chunkstore.index import pack_object
from opencbr.core.context import Runtime
from opencbr.iam import service as iam
from tests.e2e import flows
from tests.e2e.recovery_fixtures import ADMIN_TOKEN, Deployment, run_cli, wait_for_jobs

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def _pack_of(runtime: Runtime, backup_id: str) -> str:
    """The one pack holding the blocks of a backup of fresh random data."""
    with runtime.database.unit_of_work() as session:
        backup = session.get(Backup, backup_id)
        assert backup is not None
        manifest_id = backup.manifest_id
    store = chunk_store(runtime)
    index = store.index.refresh()
    packs = {index[b].pack for b in store.load_manifest(manifest_id).stored_ids()}
    assert len(packs) == 1
    return packs.pop()


def _scene(url: str, runtime: Runtime) -> dict[str, Any]:
    with runtime.database.unit_of_work() as session:
        owner, other = (
            iam.create_tenant(session, runtime.root_key, runtime.settings.regions, n, ["region-1"])
            for n in ("owner", "other")
        )
    a = flows.tenant_clients(url, owner)
    b = flows.tenant_clients(url, other)
    ids = []
    for name in ("flipped", "truncated", "missing", "healthy"):
        disk = flows.create_disk(a.evs, name, size_gb=1)
        flows.write(a.data, a.project, disk, 0, os.urandom(MiB))
        vault = flows.disk_vault(a.cbr, name, 10, [disk])
        ids.append(flows.back_up(a.cbr, vault.id, name).id)
    body = cbr.AddMembersReq(members=[b.project])
    a.cbr.add_member(cbr.AddMemberRequest(backup_id=ids[0], body=body))
    return {"owner": owner, "other": other, "ids": ids, "recipient": b.project}


def _damage(store_dir: Path, packs: list[str]) -> None:
    flipped, truncated, missing = (store_dir / pack_object(p) for p in packs)
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    missing.unlink()


def _verify(deployment: Deployment, *flags: str) -> tuple[int, dict[str, Any]]:
    result = run_cli("store", "verify", *deployment.cli_args(), "--json", *flags)
    return result.exit_code, json.loads(result.output)


def test_scrub_names_each_damaged_pack_and_marks_the_backups(deployment: Deployment) -> None:
    with deployment.running() as (runtime, server):
        scene = _scene(server.url, runtime)
        packs = [_pack_of(runtime, backup_id) for backup_id in scene["ids"][:3]]

    code, clean = _verify(deployment, "--deep")
    assert (code, clean["ok"], clean["damaged_backups"]) == (0, True, [])
    assert clean["checked"]["packs"] >= 4
    assert clean["checked"]["blocks"] > 0

    _damage(deployment.data_dir / "store", packs)
    code, shallow = _verify(deployment)  # without reading the data: missing and truncated
    assert code != 0
    assert not shallow["ok"]
    assert any(pack_object(packs[1]) in e and "truncated" in e for e in shallow["errors"])
    assert any(pack_object(packs[2]) in e and "missing" in e for e in shallow["errors"])

    code, deep = _verify(deployment, "--deep")
    assert code != 0
    text = "\n".join(deep["errors"])
    assert all(pack_object(p) in text for p in packs)
    damaged = {d["backup_id"]: d["objects"] for d in deep["damaged_backups"]}
    assert damaged == {
        scene["ids"][0]: [pack_object(packs[0])],
        scene["ids"][1]: [pack_object(packs[1])],
        scene["ids"][2]: [pack_object(packs[2])],
    }

    with deployment.running() as (runtime, server):
        owner = flows.tenant_clients(server.url, scene["owner"])
        listed = {b.id: b.status for b in owner.cbr.list_backups(cbr.ListBackupsRequest()).backups}
        assert listed == dict(zip(scene["ids"], ["error"] * 3 + ["available"], strict=True))
        logs = owner.cbr.list_op_logs(cbr.ListOpLogsRequest(operation_type="scrub"))
        assert {log.status for log in logs.operation_logs} == {"failed"}
        recipient = flows.tenant_clients(server.url, scene["other"])
        shared = recipient.cbr.list_backups(cbr.ListBackupsRequest(own_type="shared")).backups
        assert [(b.id, b.status) for b in shared] == [(scene["ids"][0], "error")]
        with runtime.database.unit_of_work() as session:
            logs = {
                (log.project_id, log.status)
                for log in session.query(OperationLog).filter_by(operation_type="scrub")
            }
        owner_project = scene["owner"].projects["region-1"]
        assert {("", "failed"), (owner_project, "failed"), (scene["recipient"], "failed")} <= logs

        _operator_api(server.url, runtime)


def _operator_api(url: str, runtime: Runtime) -> None:
    """The operator's API starts a scrub (a job) and shows the last one; /metrics counts."""
    scrubs = f"{url}/v1/admin/store/scrubs"
    assert httpx.post(scrubs).status_code == 401
    assert httpx.post(scrubs, headers={"Authorization": "Bearer wrong"}).status_code == 401
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    started = httpx.post(scrubs, params={"deep": "true"}, headers=auth)
    assert started.status_code == 202, started.text
    wait_for_jobs(runtime)
    latest = httpx.get(f"{scrubs}/latest", headers=auth).json()["scrub"]
    assert (latest["ok"], latest["deep"], len(latest["damaged_backups"])) == (False, True, 3)
    metrics = httpx.get(f"{url}/metrics").text
    errors = [line for line in metrics.splitlines() if line.startswith("opencbr_scrub_errors")]
    assert errors
    assert float(errors[0].split()[-1]) > 0
