"""The restore job (`cbr.restore`): a backup written back onto existing disks.

Each target disk is `restoring-backup` while blocks are written, every block is verified by
the store as it is read, and the disk returns to its status only when every byte is written; on
any failure it becomes `error_restoring`, never a half-written disk that looks healthy (S9). A
store lock held by the restore keeps its blocks from garbage collection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from opencbr.core.context import Actor, Runtime
from opencbr.core.jobs import JobContext, Permanent
from opencbr.core.metrics import record_restore_bytes
from opencbr.evs import job_states
from opencbr.evs import service as evs

from .. import oplogs
from ..dataplane import chunk_store, open_scope, store_faults
from ..models import Backup, BackupStatus
from .common import JobProgress, RuntimeJob, project_actor, store_scope
from .payloads import RestorePayload

__all__ = ["RestoreJob", "write_backup_into"]


def write_backup_into(
    runtime: Runtime,
    ctx: JobContext,
    actor: Actor,
    backup_id: str,
    disk_id: str,
    weight: tuple[int, int] = (0, 1),
    *,
    fresh: bool = False,
) -> int:
    """Write every block of a disk backup into a disk; the store verifies each block it reads."""
    with runtime.database.unit_of_work() as session:
        backup = session.get(Backup, backup_id)
        if backup is None or backup.status not in (BackupStatus.AVAILABLE, BackupStatus.RESTORING):
            raise Permanent(f"backup {backup_id} was deleted while it was being restored")
        scope = open_scope(session, runtime, actor, store_scope(session, backup.scope_id or ""))
        volume = evs.open_volume(runtime, session, job_states.disk_for_job(session, disk_id))
        manifest = backup.manifest_id
    store = chunk_store(runtime)
    index, count = weight
    report = JobProgress(ctx)

    def progress(done: int, total: int) -> None:
        report(int(95 * (index + done / max(total, 1)) / count))

    # A fresh (all-zero, sparse) disk needs no zeros written for the backup's holes.
    with store_faults():
        written = store.restore_into(
            scope,
            manifest,
            volume.write,
            zero_holes=not fresh,
            zero_at=volume.write_zeroes,
            progress=progress,
        )
    volume.flush()
    record_restore_bytes(written)
    return written


class RestoreJob(RuntimeJob):
    """RestoreBackup onto existing disks: `restoring-backup` until every byte is written."""

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime = self.runtime
        payload = RestorePayload.of(ctx)
        actor = project_actor(runtime, payload.project_id)
        targets = payload.targets
        total = 0
        for index, target in enumerate(targets):
            total += write_backup_into(
                runtime, ctx, actor, target.backup_id, target.disk_id, (index, len(targets))
            )
        with runtime.database.unit_of_work() as session:
            for target in targets:
                job_states.restored(session, target.disk_id, target.previous)
            self._release_backup(session, payload.backup_id)
            oplogs.finish(session, payload.oplog_id, "success")
        return {"restored_bytes": total}

    @staticmethod
    def _release_backup(session: Session, backup_id: str) -> None:
        session.execute(
            update(Backup)
            .where(Backup.id == backup_id, Backup.status == BackupStatus.RESTORING)
            .values(status=BackupStatus.AVAILABLE)
        )

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        payload = RestorePayload.of(ctx)
        with self.runtime.database.unit_of_work() as session:
            job_states.restore_failed(session, [t.disk_id for t in payload.targets], str(error))
            self._release_backup(session, payload.backup_id)
            oplogs.finish(
                session,
                payload.oplog_id,
                "failed",
                getattr(error, "code", type(error).__name__),
                getattr(error, "message", str(error)),
            )
