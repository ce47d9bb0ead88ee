"""The cbr slice's job handlers (collected by `opencbr.api.runtime.job_handlers`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from opencbr.core.context import Runtime
from opencbr.core.jobs import Job, JobContext, JobHandler

from . import oplogs
from .admin_routes import SCRUB_JOB
from .catalogue import CATALOGUE_JOB, CatalogueJob, delete_backup_record
from .collect import GC_JOB, CollectGarbage, request_collection
from .dataplane import chunk_store
from .deletion import mark_deleting
from .engine import BackupJob, DiskFromBackupJob, RestoreJob, ServerFromBackupJob
from .models import Backup, BackupStatus, Checkpoint, Vault, VaultStatus
from .nbd_restore import RESTORE_NBD_JOB, NbdRestoreJob
from .scrub import ScrubJob
from .vaults import release

__all__ = ["DeleteBackupJob", "DeleteVaultJob", "handlers", "job_title"]


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


class DeleteBackupJob:
    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime: Runtime = ctx.extras["runtime"]  # type: ignore[assignment]
        dropped = _drop_backup(runtime, ctx.payload["backup_id"])
        with runtime.database.unit_of_work() as session:
            oplogs.finish(session, ctx.payload["oplog_id"], "success")
        return {"manifests_dropped": dropped}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        runtime: Runtime = ctx.extras["runtime"]  # type: ignore[assignment]
        with runtime.database.unit_of_work() as session:
            oplogs.finish(
                session, ctx.payload["oplog_id"], "failed", type(error).__name__, str(error)
            )


class DeleteVaultJob:
    """A deleted vault's backups go (each leaving its recipients first, S9), then the vault."""

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime: Runtime = ctx.extras["runtime"]  # type: ignore[assignment]
        vault_id = ctx.payload["vault_id"]
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
        runtime: Runtime = ctx.extras["runtime"]  # type: ignore[assignment]
        with runtime.database.unit_of_work() as session:
            session.execute(
                update(Vault)
                .where(Vault.id == ctx.payload["vault_id"], Vault.status == VaultStatus.DELETING)
                .values(status=VaultStatus.ERROR)
            )


def handlers(runtime: Runtime) -> dict[str, JobHandler]:
    del runtime
    return {
        "cbr.backup": BackupJob(),
        "cbr.restore": RestoreJob(),
        RESTORE_NBD_JOB: NbdRestoreJob(),
        "cbr.disk_from_backup": DiskFromBackupJob(),
        "cbr.server_from_backup": ServerFromBackupJob(),
        "cbr.delete_backup": DeleteBackupJob(),
        "cbr.delete_vault": DeleteVaultJob(),
        GC_JOB: CollectGarbage(),
        CATALOGUE_JOB: CatalogueJob(),
        SCRUB_JOB: ScrubJob(),
    }


# What a person calls each job, naming the backup (or vault) it works on.
_BACKUP_TITLES = {
    "cbr.backup": "Create backup {}",
    "cbr.restore": "Restore backup {}",
    "cbr.disk_from_backup": "Create disk from backup {}",
    "cbr.server_from_backup": "Create server from backup {}",
    "cbr.delete_backup": "Delete backup {}",
}


def job_title(session: Session, job: Job) -> str | None:
    """A human title for one of this slice's jobs ("Create disk from backup nightly"), for
    pages that show a job; None for another slice's. Names are read now: a backup or vault
    that is gone shows its id."""
    payload = job.payload
    if job.kind in _BACKUP_TITLES:
        backup = session.get(Backup, str(payload.get("backup_id")))
        name = backup.name if backup is not None else payload.get("backup_id")
        return _BACKUP_TITLES[job.kind].format(name)
    if job.kind == "cbr.delete_vault":
        vault = session.get(Vault, str(payload.get("vault_id")))
        return f"Delete vault {vault.name if vault is not None else payload.get('vault_id')}"
    if job.kind == GC_JOB:
        return "Collect unused backup data"
    return None
