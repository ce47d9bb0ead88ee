"""Restoring a disk backup back into a hypervisor: onto an NBD export (RestoreBackup's
`nbd_uri` extension, `opencbr restore BACKUP --nbd URI`).

The request checks the rules and the target (reachable, writable, as large as the backed-up
disk), marks the backup `restoring` and enqueues `cbr.restore_nbd`, in one transaction; a bad
URI or an unusable target is a 400 and changes nothing. The job writes the backup's data
blocks and makes every hole read as zeros (NBD WRITE_ZEROES, which qemu-nbd turns into a
trim), flushes, and only then logs success. A failed job leaves the target partly written
(the operation log says so); the backup goes back to `available` either way.

Who may: the backup's owner or a project that accepted it (the target is the caller's own
hypervisor disk, not an OpenCBR resource of the owner).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from opencbr.core.context import Actor, Runtime
from opencbr.core.jobs import Job, JobContext, Permanent
from opencbr.core.metrics import record_restore_bytes
from opencbr.evs.external import probe_target
from opencbr.evs.volumes.nbd_source import NbdSource, NbdVolume

from . import oplogs
from .dataplane import chunk_store, open_scope, store_faults
from .errors import RestoreTargetInvalid, VaultStatusForbids
from .jobs.common import JobProgress, RuntimeJob, project_actor
from .jobs.payloads import NbdRestorePayload, start_logged
from .models import Backup, BackupStatus, ResourceType, StoreScope, Vault, VaultStatus
from .restore import usable_backup

__all__ = ["RESTORE_NBD_JOB", "NbdRestoreJob", "restore_to_nbd"]

RESTORE_NBD_JOB = NbdRestorePayload.kind


def restore_to_nbd(
    session: Session,
    runtime: Runtime,
    actor: Actor,
    backup_id: str,
    uri: str,
    tls_psk_file: str = "",
) -> Job:
    backup = usable_backup(session, runtime, actor, backup_id)
    if backup.resource_type != ResourceType.DISK:
        raise RestoreTargetInvalid(
            backup_id=backup.id, reason="an NBD target takes a disk backup; give one of its disks'"
        )
    vault = session.get(Vault, backup.vault_id)
    if vault is None or vault.status == VaultStatus.DELETING:
        raise VaultStatusForbids(
            vault_id=backup.vault_id, status=vault.status if vault else "deleted"
        )
    manifest = chunk_store(runtime).load_manifest(backup.manifest_id)
    probe_target(uri, tls_psk_file, manifest.disk_size)
    changed = session.execute(
        update(Backup)
        .where(Backup.id == backup.id, Backup.status == BackupStatus.AVAILABLE)
        .values(status=BackupStatus.RESTORING)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not changed:
        raise RestoreTargetInvalid(backup_id=backup.id, reason="it is being restored already")
    payload = NbdRestorePayload(
        backup_id=backup.id,
        project_id=actor.project_id or "",
        nbd_uri=uri,
        tls_psk_file=tls_psk_file,
    )
    return start_logged(
        session,
        payload,
        actor.project_id or "",
        "restore",
        vault=vault if vault.project_id == actor.project_id else None,
        checkpoint_id=backup.checkpoint_id,
        resource=(backup.resource_id, backup.resource_type, backup.resource_name),
        extra={
            "restore": {
                "backup_id": backup.id,
                "backup_name": backup.name,
                "target_resource_ids": [],
                "nbd_uri": uri,
            }
        },
    )


class NbdRestoreJob(RuntimeJob):
    """Writes a disk backup onto an NBD export; see the module's docstring."""

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime = self.runtime
        payload = NbdRestorePayload.of(ctx)
        actor = project_actor(runtime, payload.project_id)
        with runtime.database.unit_of_work() as session:
            backup = session.get(Backup, payload.backup_id)
            if backup is None or backup.status != BackupStatus.RESTORING:
                raise Permanent(f"backup {payload.backup_id} is no longer being restored")
            row = session.get(StoreScope, backup.scope_id or "")
            if row is None:
                raise Permanent(f"store scope of backup {backup.id} is gone")
            scope = open_scope(session, runtime, actor, row)
            manifest = backup.manifest_id
        source = NbdSource(payload.nbd_uri, "", payload.tls_psk_file)
        target = NbdVolume("", source, None)
        report = JobProgress(ctx)
        with store_faults():
            written = chunk_store(runtime).restore_into(
                scope,
                manifest,
                target.write,
                zero_holes=True,
                zero_at=target.write_zeroes,
                progress=lambda done, total: report(int(95 * done / max(total, 1))),
            )
        target.flush()
        record_restore_bytes(written)
        self._finish(runtime, payload, "success")
        return {"restored_bytes": written, "nbd_uri": source.uri}

    @staticmethod
    def _finish(
        runtime: Runtime, payload: NbdRestorePayload, status: str, code: str = "", message: str = ""
    ) -> None:
        with runtime.database.unit_of_work() as session:
            session.execute(
                update(Backup)
                .where(Backup.id == payload.backup_id, Backup.status == BackupStatus.RESTORING)
                .values(status=BackupStatus.AVAILABLE)
            )
            oplogs.finish(session, payload.oplog_id, status, code, message)

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        runtime = self.runtime
        code = getattr(error, "code", type(error).__name__)
        message = getattr(error, "message", str(error))
        failed = f"{message} (the target is partly written)"
        self._finish(runtime, NbdRestorePayload.of(ctx), "failed", code, failed)
