"""Disk snapshots (EVS v2 `cloudsnapshots`): point-in-time copies of a disk, and rollback.

The bytes are frozen sparse copies of the disk's image (volumes/snapshots.py says why). Rules,
as EVS:

* A snapshot is taken of an `available` disk, or of an `in-use` one when `force` is set. The
  request records it `creating`; its job copies the image under the volume lock and makes it
  `available` (an external disk's bytes live in its NBD source: refused).
* Rollback puts a snapshot's contents back onto its own disk, which must be `available`: not
  attached, not exported (a read-only export too: its reader would see the bytes change). The
  disk is `rollbacking` and the snapshot `rollbacking` until the job is done; the change map marks
  what changed, so the next backup is incremental and correct.
* A disk with snapshots cannot be deleted by a user (`DiskHasSnapshots`); a disk deleted with
  its server takes its snapshots with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor, Runtime
from opencbr.core.ids import is_uuid, new_uuid
from opencbr.core.jobs import Job, JobContext, JobHandler, enqueue

from .errors import (
    DiskStatusConflict,
    EvsValidationFailed,
    ExternalDiskDataPath,
    NbdExportConflict,
    SnapshotNotFound,
    SnapshotStatusConflict,
)
from .external_volumes import external_source
from .models import Disk, DiskStatus, NbdExport, Snapshot, SnapshotStatus
from .service import get_disk, stored_volume, swap_status, transition_disk, volume_driver

__all__ = [
    "CREATE_SNAPSHOT_JOB",
    "ROLLBACK_SNAPSHOT_JOB",
    "SnapshotFilter",
    "SnapshotSpec",
    "count_snapshots",
    "create_snapshot",
    "delete_snapshot",
    "get_snapshot",
    "handlers",
    "list_snapshots",
    "rollback_snapshot",
    "update_snapshot",
]

CREATE_SNAPSHOT_JOB = "evs.create_snapshot"
ROLLBACK_SNAPSHOT_JOB = "evs.rollback_snapshot"
MAX_METADATA = 50


@dataclass(frozen=True)
class SnapshotSpec:
    volume_id: str
    name: str = ""
    description: str = ""
    metadata: Mapping[str, str] | None = None
    force: bool = False


@dataclass(frozen=True)
class SnapshotFilter:
    name: str | None = None
    status: str | None = None
    volume_id: str | None = None
    id: str | None = None


def get_snapshot(session: Session, project_id: str, snapshot_id: str) -> Snapshot:
    query = select(Snapshot).where(Snapshot.id == snapshot_id, Snapshot.project_id == project_id)
    snapshot = session.scalar(query) if is_uuid(snapshot_id) else None
    if snapshot is None:
        raise SnapshotNotFound(id=snapshot_id)
    return snapshot


def _filtered(query: Any, project_id: str, where: SnapshotFilter) -> Any:
    query = query.where(Snapshot.project_id == project_id)
    for column, value in (
        (Snapshot.name, where.name),
        (Snapshot.status, where.status),
        (Snapshot.volume_id, where.volume_id),
        (Snapshot.id, where.id),
    ):
        if value is not None:
            query = query.where(column == value)
    return query


def list_snapshots(
    session: Session, project_id: str, where: SnapshotFilter, offset: int = 0, limit: int = 1000
) -> list[Snapshot]:
    """The project's snapshots, newest first."""
    query = _filtered(select(Snapshot), project_id, where)
    query = query.order_by(Snapshot.created_at.desc(), Snapshot.id).offset(offset).limit(limit)
    return list(session.scalars(query))


def count_snapshots(session: Session, project_id: str, where: SnapshotFilter) -> int:
    query = _filtered(select(func.count()).select_from(Snapshot), project_id, where)
    return int(session.scalar(query) or 0)


def transition_snapshot(
    session: Session, snapshot: Snapshot, allowed_from: Iterable[str], to: str
) -> None:
    swap_status(session, snapshot, allowed_from, to, SnapshotStatusConflict)


def _check_texts(name: str | None, description: str | None) -> None:
    if name is not None and len(name) > 255:
        raise EvsValidationFailed(reason="snapshot.name is at most 255 characters")
    if description is not None and len(description) > 255:
        raise EvsValidationFailed(reason="snapshot.description is at most 255 characters")


def _refuse_external(session: Session, disk: Disk) -> None:
    source = external_source(session, disk.id)
    if source is not None:
        raise ExternalDiskDataPath(id=disk.id, uri=source.uri)


def create_snapshot(session: Session, actor: Actor, spec: SnapshotSpec) -> tuple[Snapshot, Job]:
    """Record a `creating` snapshot of the caller's disk and enqueue the job that takes it."""
    assert actor.project_id is not None
    _check_texts(spec.name, spec.description)
    metadata = dict(spec.metadata or {})
    if len(metadata) > MAX_METADATA:
        raise EvsValidationFailed(reason=f"snapshot.metadata has at most {MAX_METADATA} keys")
    disk = get_disk(session, actor.project_id, spec.volume_id)
    if disk.status == DiskStatus.IN_USE and not spec.force:
        raise EvsValidationFailed(reason=f"disk {disk.id} is in-use: set force to snapshot it")
    if disk.status not in (DiskStatus.AVAILABLE, DiskStatus.IN_USE):
        expected = f"{DiskStatus.AVAILABLE} or {DiskStatus.IN_USE}"
        raise DiskStatusConflict(id=disk.id, status=disk.status, expected=expected)
    _refuse_external(session, disk)
    snapshot = Snapshot(
        id=new_uuid(),
        project_id=disk.project_id,
        volume_id=disk.id,
        name=spec.name,
        description=spec.description,
        size_gb=disk.size_gb,
        status=SnapshotStatus.CREATING,
        metadata_=metadata,
        error_message="",
    )
    session.add(snapshot)
    session.flush()
    job = enqueue(
        session, CREATE_SNAPSHOT_JOB, {"snapshot_id": snapshot.id}, project_id=disk.project_id
    )
    return snapshot, job


def update_snapshot(
    session: Session, actor: Actor, snapshot_id: str, name: str | None, description: str | None
) -> Snapshot:
    assert actor.project_id is not None
    _check_texts(name, description)
    snapshot = get_snapshot(session, actor.project_id, snapshot_id)
    if name is not None:
        snapshot.name = name
    if description is not None:
        snapshot.description = description
    snapshot.updated_at = utcnow()
    session.flush()
    return snapshot


def delete_snapshot(runtime: Runtime, session: Session, actor: Actor, snapshot_id: str) -> None:
    """Remove an `available` (or failed) snapshot and its copy."""
    assert actor.project_id is not None
    snapshot = get_snapshot(session, actor.project_id, snapshot_id)
    allowed = (SnapshotStatus.AVAILABLE, SnapshotStatus.ERROR)
    transition_snapshot(session, snapshot, allowed, SnapshotStatus.DELETING)
    session.delete(snapshot)
    session.flush()
    volume_driver(runtime).delete_snapshot(snapshot.id)


def rollback_snapshot(
    session: Session, actor: Actor, snapshot_id: str, volume_id: str | None, name: str | None
) -> tuple[Snapshot, Disk, Job]:
    """Start putting the snapshot back onto its disk (renamed to `name` when given)."""
    assert actor.project_id is not None
    snapshot = get_snapshot(session, actor.project_id, snapshot_id)
    if volume_id is not None and volume_id != snapshot.volume_id:
        raise EvsValidationFailed(
            reason=f"rollback.volume_id must be the snapshot's own disk {snapshot.volume_id}"
        )
    if name is not None and len(name) > 255:
        raise EvsValidationFailed(reason="rollback.name is at most 255 characters")
    disk = get_disk(session, actor.project_id, snapshot.volume_id, lock=True)
    export = session.scalar(select(NbdExport).where(NbdExport.disk_id == disk.id))
    if export is not None:
        raise NbdExportConflict(id=disk.id, mode="read-only" if export.read_only else "read-write")
    transition_snapshot(session, snapshot, [SnapshotStatus.AVAILABLE], SnapshotStatus.ROLLBACKING)
    transition_disk(session, disk, [DiskStatus.AVAILABLE, DiskStatus.ERROR], DiskStatus.ROLLBACKING)
    if name:
        disk.name = name
    job = enqueue(
        session,
        ROLLBACK_SNAPSHOT_JOB,
        {"snapshot_id": snapshot.id, "disk_id": disk.id},
        project_id=disk.project_id,
    )
    return snapshot, disk, job


class CreateSnapshot:
    """`evs.create_snapshot` {snapshot_id}: copy the disk's image, then `available`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        snapshot_id = str(ctx.payload["snapshot_id"])
        with self.runtime.database.unit_of_work() as session:
            snapshot = session.get(Snapshot, snapshot_id)
            if snapshot is None or snapshot.status != SnapshotStatus.CREATING:
                return {"snapshot_id": snapshot_id}
            disk = session.get(Disk, snapshot.volume_id)
            assert disk is not None  # a disk with snapshots is not deleted
            stored_volume(self.runtime, session, disk)  # opened with its key
            volume_driver(self.runtime).snapshot(disk.id, snapshot.id)
            transition_snapshot(
                session, snapshot, [SnapshotStatus.CREATING], SnapshotStatus.AVAILABLE
            )
            snapshot.size_gb = disk.size_gb
            return {"snapshot_id": snapshot_id, "volume_id": disk.id}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        with self.runtime.database.unit_of_work() as session:
            snapshot = session.get(Snapshot, str(ctx.payload["snapshot_id"]))
            if snapshot is not None and snapshot.status == SnapshotStatus.CREATING:
                transition_snapshot(
                    session, snapshot, [SnapshotStatus.CREATING], SnapshotStatus.ERROR
                )
                snapshot.error_message = str(error)[:4000]


class RollbackSnapshot:
    """`evs.rollback_snapshot` {snapshot_id, disk_id}: put the copy back (a retry repeats the
    whole copy), then both `available` again. If it fails for good the disk may hold part of
    each: it goes to `error` (a new rollback or a restore from a backup repairs it)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        snapshot_id, disk_id = str(ctx.payload["snapshot_id"]), str(ctx.payload["disk_id"])
        with self.runtime.database.unit_of_work() as session:
            disk = session.get(Disk, disk_id)
            if disk is not None and disk.status == DiskStatus.ROLLBACKING:
                stored_volume(self.runtime, session, disk)
                volume_driver(self.runtime).rollback(disk.id, snapshot_id)
        self._release(ctx, DiskStatus.AVAILABLE)
        return {"snapshot_id": snapshot_id, "volume_id": disk_id}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        self._release(ctx, DiskStatus.ERROR, str(error))

    def _release(self, ctx: JobContext, disk_status: str, error: str = "") -> None:
        with self.runtime.database.unit_of_work() as session:
            disk = session.get(Disk, str(ctx.payload["disk_id"]))
            if disk is not None and disk.status == DiskStatus.ROLLBACKING:
                transition_disk(session, disk, [DiskStatus.ROLLBACKING], disk_status)
                disk.error_message = error[:4000]
            snapshot = session.get(Snapshot, str(ctx.payload["snapshot_id"]))
            if snapshot is not None and snapshot.status == SnapshotStatus.ROLLBACKING:
                transition_snapshot(
                    session, snapshot, [SnapshotStatus.ROLLBACKING], SnapshotStatus.AVAILABLE
                )


def handlers(runtime: Runtime) -> dict[str, JobHandler]:
    return {
        CREATE_SNAPSHOT_JOB: CreateSnapshot(runtime),
        ROLLBACK_SNAPSHOT_JOB: RollbackSnapshot(runtime),
    }
