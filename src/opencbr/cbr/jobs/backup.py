"""The backup job (`cbr.backup`, one job per protected resource): moving a resource's disks
into the chunk store.

  1. plan (one transaction): the disks, each disk's parent backup and whether its change map
     is relative to that parent (`Disk.cbt_base`), and the dedup scope of its key;
  2. open a point-in-time view of every disk of the resource before reading any (a server
     backup is one consistent moment across its disks);
  3. store each disk (map incremental: read only changed extents; else read everything and
     store only blocks the store lacks), reporting progress (the job's heartbeat). The view
     says which extents changed, or that it cannot tell (an external disk whose dirty bitmap
     cannot be trusted): then everything allocated is read. Where the bytes live is the
     view's business (a sparse image, an NBD source);
  4. complete (one transaction): reserve the bytes the backup added in the vault (refused →
     the backup fails with BackupService.6114), mark `available`, move each disk's `cbt_base`,
     keep what an external disk's view read (`evs.external_volumes.record_backup_read`);
  5. only after that commit, commit the views (forget the covered changes). A crash between 4
     and 5 leaves a superset of changes in the map: the next backup reads a little more, never
     less. On failure the views are aborted and their changes merged back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from opencbr.chunkstore import BackupResult, ChunkStore
from opencbr.core.clock import utcnow
from opencbr.core.context import Actor, Runtime
from opencbr.core.jobs import JobContext
from opencbr.core.metrics import record_backup_bytes, record_store_write
from opencbr.evs import job_states
from opencbr.evs import service as evs
from opencbr.evs.external_volumes import record_backup_read
from opencbr.evs.volumes import BackupView

from .. import oplogs
from ..catalogue import enqueue_catalogue
from ..dataplane import chunk_store, open_scope, scope_for, store_faults
from ..models import Backup, BackupStatus, Policy, Vault
from ..vault_space import reserve
from .common import JobProgress, RuntimeJob, project_actor, store_scope
from .payloads import BackupPayload

__all__ = ["BackupJob"]


@dataclass(frozen=True)
class DiskTask:
    backup_id: str
    disk_id: str
    scope_id: str
    parent_manifest: str | None
    use_change_map: bool
    grew: bool = False  # larger than its parent backup: the new range is mostly holes


def _parent_for(session: Session, disk: Any, vault_id: str) -> tuple[Backup | None, bool]:
    """The backup to build on, and whether the disk's change map is relative to it."""
    if disk.cbt_base:
        base = session.get(Backup, disk.cbt_base)
        if base is not None and base.status == BackupStatus.AVAILABLE and base.manifest_id:
            return base, True
    latest = session.scalar(
        select(Backup)
        .where(
            Backup.resource_id == disk.id,
            Backup.status == BackupStatus.AVAILABLE,
            Backup.manifest_id != "",
            Backup.vault_id == vault_id,
        )
        .order_by(Backup.protected_at.desc())
        .limit(1)
    )
    return latest, False


def _full_due(session: Session, backup: Backup, disk_id: str) -> bool:
    """Whether the policy that took this backup asks for a full one now.

    A policy's `full_backup_interval` N (0-100) makes a disk's backup in a vault a full one once
    N incremental backups have followed the last full one (0: every backup is full); -1, a
    manual backup or a policy without the field never forces one."""
    policy = session.get(Policy, backup.policy_id) if backup.policy_id else None
    definition = policy.operation_definition if policy else {}
    interval = int(definition.get("full_backup_interval", -1))
    if interval < 0:
        return False
    same_disk = (
        Backup.resource_id == disk_id,
        Backup.vault_id == backup.vault_id,
        Backup.status == BackupStatus.AVAILABLE,
        Backup.manifest_id != "",
    )
    last_full = session.scalar(
        select(func.max(Backup.protected_at)).where(*same_disk, Backup.incremental.is_(False))
    )
    newer = [] if last_full is None else [Backup.protected_at > last_full]
    since = session.scalar(
        select(func.count()).select_from(Backup).where(*same_disk, Backup.incremental, *newer)
    )
    return int(since or 0) >= interval


def _plan(runtime: Runtime, actor: Actor, backup_id: str) -> list[DiskTask] | None:
    with runtime.database.unit_of_work() as session:
        backup = session.get(Backup, backup_id)
        if backup is None or backup.status != BackupStatus.PROTECTING:
            return None
        rows = (
            [backup]
            if backup.resource_type == "OS::Cinder::Volume"
            else list(
                session.scalars(
                    select(Backup).where(Backup.parent_id == backup.id).order_by(Backup.device)
                )
            )
        )
        tasks = []
        for row in rows:
            disk = job_states.disk_for_job(session, row.resource_id)
            scope = scope_for(session, runtime, actor, backup.region, disk.kms_key_id)
            row.scope_id = scope.id
            full = not backup.incremental or _full_due(session, backup, disk.id)
            parent, by_map = (None, False) if full else _parent_for(session, disk, backup.vault_id)
            row.base_backup_id = parent.id if parent else None
            row.incremental = parent is not None
            manifest = parent.manifest_id if parent else None
            grew = parent is not None and disk.size_gb > parent.resource_size_gb
            tasks.append(DiskTask(row.id, disk.id, scope.id, manifest, by_map, grew))
        return tasks


class BackupJob(RuntimeJob):
    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime = self.runtime
        payload = BackupPayload.of(ctx)
        backup_id = payload.backup_id
        with runtime.database.unit_of_work() as session:
            owner = session.get(Backup, backup_id)
            project_id = owner.project_id if owner is not None else None
        if project_id is None:
            return {"skipped": "backup gone"}
        actor = project_actor(runtime, project_id)
        tasks = _plan(runtime, actor, backup_id)
        if tasks is None:
            return {"skipped": "not protecting"}
        store = chunk_store(runtime)
        views: list[BackupView] = []
        try:
            with runtime.database.unit_of_work() as session:
                volumes = [
                    evs.open_volume(runtime, session, job_states.disk_for_job(session, t.disk_id))
                    for t in tasks
                ]
                scopes = {
                    t.scope_id: open_scope(
                        session, runtime, actor, store_scope(session, t.scope_id)
                    )
                    for t in tasks
                }
            views.extend(volume.begin_backup() for volume in volumes)
            with store_faults():
                results = self._store_all(ctx, store, tasks, views, scopes)
            self._complete(runtime, payload, tasks, results, views)
        except BaseException:
            for view in views:
                view.abort()
            raise
        for view in views:
            view.commit()
        record_backup_bytes(sum(r.read_bytes for r in results))
        record_store_write(sum(r.new_bytes for r in results))
        return {"backup_id": backup_id, "stored_bytes": sum(r.new_bytes for r in results)}

    @staticmethod
    def _store_all(
        ctx: JobContext,
        store: ChunkStore,
        tasks: list[DiskTask],
        views: list[Any],
        scopes: dict[str, Any],
    ) -> list[BackupResult]:
        total = sum(v.size for v in views) or 1
        done_before = 0
        results = []
        report = JobProgress(ctx)
        for task, view in zip(tasks, views, strict=True):

            def progress(done: int, _total: int, base: int = done_before) -> None:
                report(int(95 * (base + done) / total))

            extents = view.changed_extents() if task.use_change_map else None
            results.append(
                store.backup(
                    scopes[task.scope_id],
                    view.read_at,
                    view.size,
                    parent=task.parent_manifest,
                    changed_extents=extents,
                    progress=progress,
                    # Never-written ranges of the sparse image are holes, not worth reading
                    # (in a full read, and past the parent's end when the disk grew).
                    data_extents=(
                        view.allocated_extents() if extents is None or task.grew else None
                    ),
                )
            )
            done_before += view.size
        return results

    @staticmethod
    def _complete(
        runtime: Runtime,
        payload: BackupPayload,
        tasks: list[DiskTask],
        results: list[BackupResult],
        views: list[BackupView],
    ) -> None:
        now = utcnow()
        with runtime.database.unit_of_work() as session:
            backup = session.get(Backup, payload.backup_id)
            assert backup is not None
            vault = session.get(Vault, backup.vault_id)
            assert vault is not None
            added = sum(r.new_bytes for r in results)
            reserve(session, vault, added)
            for task, result, view in zip(tasks, results, views, strict=True):
                row = session.get(Backup, task.backup_id)
                assert row is not None
                row.manifest_id, row.size_bytes, row.stored_bytes = (
                    result.manifest_id,
                    result.data_bytes,
                    result.new_bytes,
                )
                row.status, row.protected_at = BackupStatus.AVAILABLE, now
                job_states.record_change_base(session, task.disk_id, row.id)
                # An external disk's backup keeps what its source's bitmap marked (the next
                # backup's check) and whether it read through it.
                record_backup_read(session, row.id, view)
            if tasks[0].backup_id != backup.id:  # a server backup: the parent sums its disks
                backup.size_bytes = sum(r.data_bytes for r in results)
                backup.stored_bytes = added
                backup.status, backup.protected_at = BackupStatus.AVAILABLE, now
                backup.incremental = any(t.parent_manifest for t in tasks)
            enqueue_catalogue(session, backup.id)
            if payload.oplog_id:
                oplogs.finish(session, payload.oplog_id, "success")

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        payload = BackupPayload.of(ctx)
        code = getattr(error, "code", type(error).__name__)
        message = getattr(error, "message", str(error))
        with self.runtime.database.unit_of_work() as session:
            backup_id = payload.backup_id
            session.execute(
                update(Backup)
                .where(
                    (Backup.id == backup_id) | (Backup.parent_id == backup_id),
                    Backup.status == BackupStatus.PROTECTING,
                )
                .values(status=BackupStatus.ERROR, error_message=f"{code}: {message}"[:2000])
            )
            if payload.oplog_id:
                oplogs.finish(session, payload.oplog_id, "failed", code, message)
