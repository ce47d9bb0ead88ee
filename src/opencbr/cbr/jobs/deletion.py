"""The deletion jobs: a backup (`cbr.delete_backup`) and a vault with its backups
(`cbr.delete_vault`), both already marked `deleting` by the request that asked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select, update

from opencbr.core.context import Runtime
from opencbr.core.jobs import JobContext

from .. import oplogs
from ..catalogue import delete_backup_record
from ..collect import request_collection
from ..dataplane import chunk_store
from ..deletion import mark_deleting
from ..models import Backup, BackupStatus, Checkpoint, Vault, VaultStatus
from ..vault_space import release
from .common import RuntimeJob
from .payloads import DeleteBackupPayload, DeleteVaultPayload

__all__ = ["DeleteBackupJob", "DeleteVaultJob"]


def _drop_backup(runtime: Runtime, backup_id: str) -> int:
    """Drop a `deleting` backup's manifests, free the vault space it used, delete its rows.

    Manifests go first: a crash after that leaves rows in `deleting` that the retried job
    finishes; the blocks themselves are reclaimed by garbage collection.
    """
    with runtime.database.unit_of_work() as session:
        rows = list(
            session.scalars(
                select(Backup).where((Backup.id == backup_id) | (Backup.parent_id == backup_id))
            )
        )
        ids = [r.id for r in rows]
        # Manifests are content-named: an unchanged disk backed up twice shares one manifest.
        manifests = [
            r.manifest_id
            for r in rows
            if r.manifest_id
            and not session.scalar(
                select(Backup.id)
                .where(Backup.manifest_id == r.manifest_id, Backup.id.not_in(ids))
                .limit(1)
            )
        ]
    store = chunk_store(runtime)
    delete_backup_record(runtime, backup_id)  # the record before its manifests (store rules)
    for manifest in manifests:
        store.delete_manifest(manifest)
    with runtime.database.unit_of_work() as session:
        backup = session.get(Backup, backup_id)
        if backup is None:
            return 0
        release(session, backup.vault_id, backup.stored_bytes)
        request_collection(session)
        session.execute(delete(Backup).where(Backup.parent_id == backup_id))
        session.delete(backup)
    return len(manifests)


class DeleteBackupJob(RuntimeJob):
    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        payload = DeleteBackupPayload.of(ctx)
        dropped = _drop_backup(self.runtime, payload.backup_id)
        with self.runtime.database.unit_of_work() as session:
            oplogs.finish(session, payload.oplog_id, "success")
        return {"manifests_dropped": dropped}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        payload = DeleteBackupPayload.of(ctx)
        with self.runtime.database.unit_of_work() as session:
            oplogs.finish(session, payload.oplog_id, "failed", type(error).__name__, str(error))


class DeleteVaultJob(RuntimeJob):
    """A deleted vault's backups go (each leaving its recipients first, S9), then the vault."""

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime = self.runtime
        vault_id = DeleteVaultPayload.of(ctx).vault_id
        with runtime.database.unit_of_work() as session:
            owned = list(
                session.scalars(
                    select(Backup).where(Backup.vault_id == vault_id, Backup.parent_id.is_(None))
                )
            )
            busy = [
                b.id for b in owned if b.status in (BackupStatus.PROTECTING, BackupStatus.RESTORING)
            ]
            if busy:
                # Never drop a backup that is being made or restored (nor skip taking it from
                # its recipients): try again once it is done.
                raise RuntimeError(f"backups {', '.join(busy)} are busy; retrying later")
            for backup in owned:
                if backup.status in (BackupStatus.AVAILABLE, BackupStatus.ERROR):
                    mark_deleting(session, backup)
            ids = [b.id for b in owned]
        for backup_id in ids:
            _drop_backup(runtime, backup_id)
        with runtime.database.unit_of_work() as session:
            session.execute(delete(Checkpoint).where(Checkpoint.vault_id == vault_id))
            vault = session.get(Vault, vault_id)
            if vault is not None:
                session.delete(vault)
        return {"backups_deleted": len(ids)}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        """Out of attempts (its backups stayed busy): the vault shows `error` instead of
        `deleting` for ever; DeleteVault on it tries again."""
        vault_id = DeleteVaultPayload.of(ctx).vault_id
        with self.runtime.database.unit_of_work() as session:
            session.execute(
                update(Vault)
                .where(Vault.id == vault_id, Vault.status == VaultStatus.DELETING)
                .values(status=VaultStatus.ERROR)
            )
