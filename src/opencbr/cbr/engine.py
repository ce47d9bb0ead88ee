"""The backup and restore jobs: moving bytes between disks and the chunk store.

Backup (`cbr.backup`, one job per protected resource):
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

Restore (`cbr.restore`, onto existing disks) and create-from-backup (`cbr.disk_from_backup`):
the target disk is `restoring-backup` (or `creating`) while blocks are written, every block is
verified by the store as it is read, and the disk becomes `available` only when every byte is
written; on any failure it becomes `error` / `error_restoring` — never a half-written disk that
looks healthy (S9). A store lock held by the restore keeps its blocks from garbage collection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from opencbr.chunkstore import BackupResult, ChunkStore
from opencbr.core.clock import utcnow
from opencbr.core.context import Actor, Runtime
from opencbr.core.jobs import JobContext, Permanent
from opencbr.core.metrics import record_backup_bytes, record_restore_bytes, record_store_write
from opencbr.evs import instant
from opencbr.evs import service as evs
from opencbr.evs.external_volumes import record_backup_read
from opencbr.evs.models import Disk, DiskStatus, Server, ServerStatus
from opencbr.evs.volumes import BackupView
from opencbr.evs.volumes.filling import FillingVolume
from opencbr.iam.models import Project

from . import oplogs
from .catalogue import enqueue_catalogue
from .dataplane import chunk_store, open_scope, scope_for, store_faults
from .models import Backup, BackupStatus, OperationLog, Policy, StoreScope, Vault
from .vaults import reserve

__all__ = [
    "BackupJob",
    "DiskFromBackupJob",
    "JobProgress",
    "RestoreJob",
    "ServerFromBackupJob",
    "project_actor",
]

log = logging.getLogger(__name__)

FILL_BATCH = 256  # blocks per hold of the filling lock (16 MiB of 64 KiB blocks)
"""Blocks a new disk's copy fills per hold of the filling's lock (1 MiB of 64 KiB blocks)."""
OPLOG_PROGRESS_SECONDS = 2.0
PROGRESS_SECONDS = 0.5  # the job row's percent is written at most this often
"""How often, at most, a running job copies its progress into its operation log."""


def project_actor(runtime: Runtime, project_id: str) -> Actor:
    """The identity a job acts with: the project (and its domain) that asked for the work."""
    with runtime.database.unit_of_work() as session:
        project = session.get(Project, project_id)
        if project is None:
            raise Permanent(f"project {project_id} is gone")
        return Actor(project.domain_id, "", project.id, project.region)


def _disk(session: Any, disk_id: str) -> Disk:
    disk = session.get(Disk, disk_id)
    if disk is None:
        raise Permanent(f"disk {disk_id} no longer exists")
    assert isinstance(disk, Disk)
    return disk


def _scope(session: Any, scope_id: str) -> StoreScope:
    scope = session.get(StoreScope, scope_id)
    if scope is None:
        raise Permanent(f"store scope {scope_id} is gone")
    assert isinstance(scope, StoreScope)
    return scope


class JobProgress:
    """A job's progress reports. The data plane calls it for every batch of blocks (thousands
    for a large disk), a collection for every object it reads or deletes; the job row is
    written when the percent moves or a quarter of the lease has passed, which renews the
    lease (`ctx.progress`, which raises LeaseLost first if another worker took the job). At
    most every `OPLOG_PROGRESS_SECONDS` the percent is also copied into the running operation
    log's `extra_info.common.progress`, where ListOpLogs and ShowOpLog show it. A moving
    percent is written at most every `PROGRESS_SECONDS`: a small disk's restore walks its
    percents in milliseconds, and one commit per percent was most of its time."""

    def __init__(self, ctx: JobContext, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx, self.clock = ctx, clock
        self.oplog_id: str | None = ctx.payload.get("oplog_id")
        self.renew_every = ctx.lease.total_seconds() / 4
        self.percent = -1
        self.reported_at = self.copied_at = float("-inf")

    def __call__(self, percent: int) -> None:
        now = self.clock()
        if now - self.reported_at < (
            PROGRESS_SECONDS if percent != self.percent else self.renew_every
        ):
            return
        self.percent, self.reported_at = percent, now
        self.ctx.progress(percent)
        if not self.oplog_id or now - self.copied_at < OPLOG_PROGRESS_SECONDS:
            return
        self.copied_at = now
        with self.ctx.database.unit_of_work() as session:
            oplog = session.get(OperationLog, self.oplog_id)
            if oplog is not None and oplog.status == "running":
                info = dict(oplog.extra_info or {})
                info["common"] = {**info.get("common", {}), "progress": percent}
                oplog.extra_info = info


@dataclass(frozen=True)
class DiskTask:
    backup_id: str
    disk_id: str
    scope_id: str
    parent_manifest: str | None
    use_change_map: bool


def _parent_for(session: Any, disk: Disk, vault_id: str) -> tuple[Backup | None, bool]:
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


def _full_due(session: Any, backup: Backup, disk_id: str) -> bool:
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
            disk = session.get(Disk, row.resource_id)
            if disk is None:
                raise Permanent(f"disk {row.resource_id} no longer exists")
            scope = scope_for(session, runtime, actor, backup.region, disk.kms_key_id)
            row.scope_id = scope.id
            full = not backup.incremental or _full_due(session, backup, disk.id)
            parent, by_map = (None, False) if full else _parent_for(session, disk, backup.vault_id)
            row.base_backup_id = parent.id if parent else None
            row.incremental = parent is not None
            tasks.append(
                DiskTask(row.id, disk.id, scope.id, parent.manifest_id if parent else None, by_map)
            )
        return tasks


class BackupJob:
    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime: Runtime = ctx.extras["runtime"]  # type: ignore[assignment]
        backup_id = ctx.payload["backup_id"]
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
                    evs.open_volume(runtime, session, _disk(session, t.disk_id)) for t in tasks
                ]
                scopes = {
                    t.scope_id: open_scope(session, runtime, actor, _scope(session, t.scope_id))
                    for t in tasks
                }
            views.extend(volume.begin_backup() for volume in volumes)
            with store_faults():
                results = self._store_all(ctx, store, tasks, views, scopes)
            self._complete(runtime, ctx, backup_id, tasks, results, views)
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
                    # Never-written ranges of the sparse image are holes, not worth reading.
                    data_extents=None if extents is not None else view.allocated_extents(),
                )
            )
            done_before += view.size
        return results

    @staticmethod
    def _complete(
        runtime: Runtime,
        ctx: JobContext,
        backup_id: str,
        tasks: list[DiskTask],
        results: list[BackupResult],
        views: list[BackupView],
    ) -> None:
        now = utcnow()
        with runtime.database.unit_of_work() as session:
            backup = session.get(Backup, backup_id)
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
                session.execute(update(Disk).where(Disk.id == task.disk_id).values(cbt_base=row.id))
                # An external disk's backup keeps what its source's bitmap marked (the next
                # backup's check) and whether it read through it.
                record_backup_read(session, row.id, view)
            if tasks[0].backup_id != backup.id:  # a server backup: the parent sums its disks
                backup.size_bytes = sum(r.data_bytes for r in results)
                backup.stored_bytes = added
                backup.status, backup.protected_at = BackupStatus.AVAILABLE, now
                backup.incremental = any(t.parent_manifest for t in tasks)
            enqueue_catalogue(session, backup.id)
            oplog_id = ctx.payload.get("oplog_id")
            if oplog_id:
                oplogs.finish(session, oplog_id, "success")

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        runtime: Runtime = ctx.extras["runtime"]  # type: ignore[assignment]
        code = getattr(error, "code", type(error).__name__)
        message = getattr(error, "message", str(error))
        with runtime.database.unit_of_work() as session:
            backup_id = ctx.payload["backup_id"]
            session.execute(
                update(Backup)
                .where(
                    (Backup.id == backup_id) | (Backup.parent_id == backup_id),
                    Backup.status == BackupStatus.PROTECTING,
                )
                .values(status=BackupStatus.ERROR, error_message=f"{code}: {message}"[:2000])
            )
            oplog_id = ctx.payload.get("oplog_id")
            if oplog_id:
                oplogs.finish(session, oplog_id, "failed", code, message)


def _write_backup_into(
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
        scope = open_scope(session, runtime, actor, _scope(session, backup.scope_id or ""))
        volume = evs.open_volume(runtime, session, _disk(session, disk_id))
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


class RestoreJob:
    """RestoreBackup onto existing disks: `restoring-backup` until every byte is written."""

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime: Runtime = ctx.extras["runtime"]  # type: ignore[assignment]
        actor = project_actor(runtime, ctx.payload["project_id"])
        targets = ctx.payload["targets"]
        total = 0
        for index, target in enumerate(targets):
            total += _write_backup_into(
                runtime, ctx, actor, target["backup_id"], target["disk_id"], (index, len(targets))
            )
        with runtime.database.unit_of_work() as session:
            for target in targets:
                session.execute(
                    update(Disk)
                    .where(Disk.id == target["disk_id"])
                    .values(status=target["previous"], updated_at=utcnow())
                )
            self._release_backup(session, ctx.payload["backup_id"])
            oplogs.finish(session, ctx.payload["oplog_id"], "success")
        return {"restored_bytes": total}

    @staticmethod
    def _release_backup(session: Any, backup_id: str) -> None:
        session.execute(
            update(Backup)
            .where(Backup.id == backup_id, Backup.status == BackupStatus.RESTORING)
            .values(status=BackupStatus.AVAILABLE)
        )

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        runtime: Runtime = ctx.extras["runtime"]  # type: ignore[assignment]
        with runtime.database.unit_of_work() as session:
            for target in ctx.payload["targets"]:
                session.execute(
                    update(Disk)
                    .where(Disk.id == target["disk_id"])
                    .values(status=DiskStatus.ERROR_RESTORING, error_message=str(error)[:2000])
                )
            self._release_backup(session, ctx.payload["backup_id"])
            oplogs.finish(
                session,
                ctx.payload["oplog_id"],
                "failed",
                getattr(error, "code", type(error).__name__),
                getattr(error, "message", str(error)),
            )


class DiskFromBackupJob:
    """A new disk from a backup (EVS CreateVolume with backup_id): `creating` until complete.

    The disk is usable over NBD while this runs (instant restore, `evs.instant`): the copy goes
    through the disk's filling, which never overwrites a block a client wrote first and serves
    blocks not copied yet from the backup. A retry resumes from the filling's map."""

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime: Runtime = ctx.extras["runtime"]  # type: ignore[assignment]
        actor = project_actor(runtime, ctx.payload["project_id"])
        disk_id = ctx.payload["disk_id"]
        with runtime.database.unit_of_work() as session:
            disk = session.get(Disk, disk_id)
            if disk is None or disk.status != DiskStatus.CREATING:
                return {"skipped": "disk is not being created"}
            filling = instant.filling_volume(runtime, session, disk)
        try:
            with store_faults():
                written = _fill_from_backup(runtime, ctx, actor, ctx.payload["backup_id"], filling)
            filling.flush()
            with runtime.database.unit_of_work() as session:
                disk = _disk(session, disk_id)
                session.execute(
                    update(Disk)
                    .where(Disk.id == disk_id, Disk.status == DiskStatus.CREATING)
                    .values(status=instant.status_after_fill(session, disk), updated_at=utcnow())
                )
        except BaseException:
            instant.end_filling(runtime, disk_id, complete=False)
            raise
        instant.end_filling(runtime, disk_id, complete=True)
        return {"volume_id": disk_id, "restored_bytes": written}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        runtime: Runtime = ctx.extras["runtime"]  # type: ignore[assignment]
        with runtime.database.unit_of_work() as session:
            session.execute(
                update(Disk)
                .where(Disk.id == ctx.payload["disk_id"])
                .values(status=DiskStatus.ERROR, error_message=str(error)[:2000])
            )


def _fill_from_backup(
    runtime: Runtime, ctx: JobContext, actor: Actor, backup_id: str, filling: FillingVolume
) -> int:
    """Copy every block of a disk backup into a new disk's filling (holes stay holes), at most
    `Settings.restore_copy_mib_per_s`; the store verifies each block it reads."""
    with runtime.database.unit_of_work() as session:
        backup = session.get(Backup, backup_id)
        if backup is None or backup.status not in (BackupStatus.AVAILABLE, BackupStatus.RESTORING):
            raise Permanent(f"backup {backup_id} was deleted while it was being restored")
        scope = open_scope(session, runtime, actor, _scope(session, backup.scope_id or ""))
        manifest = backup.manifest_id
    report = JobProgress(ctx)
    rate = runtime.settings.restore_copy_mib_per_s * (1 << 20)
    started, written = time.monotonic(), 0
    batch: list[tuple[int, bytes | None]] = []
    for offset, data in chunk_store(runtime).iter_blocks(scope, manifest):
        batch.append((offset, data))
        if len(batch) < FILL_BATCH:
            continue
        written += filling.fill(batch)
        batch = []
        end = offset + filling.block_size
        report(int(95 * min(end, filling.size) / filling.size))
        if rate and (ahead := end / rate - (time.monotonic() - started)) > 0:
            time.sleep(ahead)
    written += filling.fill(batch)
    record_restore_bytes(written)
    return written


class ServerFromBackupJob:
    """A new server's disks filled from the server backup's disk backups; `BUILD` until done."""

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime: Runtime = ctx.extras["runtime"]  # type: ignore[assignment]
        actor = project_actor(runtime, ctx.payload["project_id"])
        targets = ctx.payload["targets"]
        with runtime.database.unit_of_work() as session:
            for target in targets:
                evs.provision_image(runtime, _disk(session, target["disk_id"]), session=session)
        written = sum(
            _write_backup_into(
                runtime, ctx, actor, t["backup_id"], t["disk_id"], (i, len(targets)), fresh=True
            )
            for i, t in enumerate(targets)
        )
        with runtime.database.unit_of_work() as session:
            ids = [t["disk_id"] for t in targets]
            session.execute(update(Disk).where(Disk.id.in_(ids)).values(status=DiskStatus.IN_USE))
            session.execute(
                update(Server)
                .where(Server.id == ctx.payload["server_id"])
                .values(status=ServerStatus.ACTIVE)
            )
        return {"server_id": ctx.payload["server_id"], "restored_bytes": written}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        runtime: Runtime = ctx.extras["runtime"]  # type: ignore[assignment]
        with runtime.database.unit_of_work() as session:
            ids = [t["disk_id"] for t in ctx.payload["targets"]]
            session.execute(
                update(Disk)
                .where(Disk.id.in_(ids))
                .values(status=DiskStatus.ERROR, error_message=str(error)[:2000])
            )
            session.execute(
                update(Server)
                .where(Server.id == ctx.payload["server_id"])
                .values(status=ServerStatus.ERROR)
            )
