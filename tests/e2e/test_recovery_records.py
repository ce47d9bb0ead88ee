"""Recovery of records as the database held them, without a server: backups sharing one
checkpoint (a vault run over two disks), a server backup's disk backups, rows of every column
read back equal; a record damaged in the store is named and the rest recovered."""

from __future__ import annotations

import datetime as dt
import io
import os
import uuid
from typing import Any

import pytest

from opencbr.api.runtime import build_runtime
from opencbr.cbr.catalogue import BACKUPS, escrow_all
from opencbr.cbr.catalogue_rows import to_json
from opencbr.cbr.dataplane import chunk_store, open_scope, scope_for
from opencbr.cbr.models import Backup, Checkpoint, Member, Vault
from opencbr.cbr.recovery import recover
from opencbr.core.context import Actor, Runtime
from opencbr.iam import service as iam
from tests.e2e.recovery_fixtures import Deployment

pytestmark = pytest.mark.slow


def _backup(vault: Vault, checkpoint: str, scope: str, manifest: str, **extra: Any) -> Backup:
    when = dt.datetime(2026, 5, 1, 12, 30, 15, 123456)
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "project_id": vault.project_id,
        "region": "region-1",
        "vault_id": vault.id,
        "checkpoint_id": checkpoint,
        "name": "b",
        "status": "available",
        "resource_id": str(uuid.uuid4()),
        "resource_type": "OS::Cinder::Volume",
        "size_bytes": 1 << 20,
        "stored_bytes": 1 << 20,
        "scope_id": scope,
        "manifest_id": manifest,
        "created_at": when,
        "protected_at": when,
        **extra,
    }
    return Backup(**values)


def _populate(runtime: Runtime) -> None:
    with runtime.database.unit_of_work() as session:
        creds = iam.create_tenant(
            session, runtime.root_key, runtime.settings.regions, "t", ["region-1"]
        )
        project = creds.projects["region-1"]
        actor = Actor(creds.domain_id, "", project, "region-1")
        vault = Vault(
            id=str(uuid.uuid4()),
            project_id=project,
            region="region-1",
            user_id="",
            name="v",
            object_type="server",
            size_gb=100,
            tags=[{"key": "k", "value": "v"}],
        )
        session.add(vault)
        row = scope_for(session, runtime, actor, "region-1", "")
        scope = open_scope(session, runtime, actor, row)
        scope_id = row.id
    data = os.urandom(1 << 20)
    manifest = chunk_store(runtime).backup(scope, io.BytesIO(data), len(data)).manifest_id
    with runtime.database.unit_of_work() as session:
        checkpoint = Checkpoint(
            id=str(uuid.uuid4()), project_id=project, vault_id=vault.id, name="c"
        )
        first = _backup(vault, checkpoint.id, scope_id, manifest, name="disk-1")
        second = _backup(vault, checkpoint.id, scope_id, manifest, name="disk-2")
        parent = _backup(
            vault, checkpoint.id, None, "", name="server", resource_type="OS::Nova::Server"
        )
        children = [
            _backup(vault, checkpoint.id, scope_id, manifest, parent_id=parent.id, device=d)
            for d in ("/dev/vda", "/dev/vdb")
        ]
        session.add_all([checkpoint, first, second, parent])
        session.flush()
        session.add_all(children)


def _rows(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    with runtime.database.unit_of_work() as session:
        return {
            model.__tablename__: sorted(
                (to_json(r, leave_out=("updated_at",)) for r in session.query(model)),
                key=lambda r: r["id"],
            )
            for model in (Backup, Checkpoint, Member)
        }


def test_records_come_back_column_for_column(deployment: Deployment) -> None:
    runtime = build_runtime(deployment.settings())
    try:
        _populate(runtime)
        assert escrow_all(runtime)["backups"] == 3
        before = _rows(runtime)
        # A record damaged in the store: named, and the others still come back.
        catalogue = chunk_store(runtime).catalogue
        (damaged, *_) = catalogue.names(BACKUPS)
        path = deployment.data_dir / "store" / "catalogue" / BACKUPS / damaged
        path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    finally:
        runtime.database.dispose()

    deployment.delete_database()
    runtime = build_runtime(deployment.settings())
    try:
        report = recover(runtime)
        after = _rows(runtime)
    finally:
        runtime.database.dispose()
    assert [line.split(":")[0] for line in report.skipped] == [f"{BACKUPS}/{damaged}"]
    lost = {damaged} | {r["id"] for r in before["cbr_backups"] if r["parent_id"] == damaged}
    expected = [r for r in before["cbr_backups"] if r["id"] not in lost]
    assert after["cbr_backups"] == expected
    assert after["cbr_checkpoints"] == before["cbr_checkpoints"]
