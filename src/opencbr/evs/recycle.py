"""The disk recycle bin (EVS `/v3/{project_id}/recycle-bin-volumes`).

Policy per project (`RecyclePolicy`; no row means off, so deleting a disk deletes it): when on,
deleting a disk created at least `threshold_days` ago moves it into the bin (status `recycled`)
instead: its image, key and snapshots stay, every disk call answers as for a missing disk, and
it is purged `keep_days` later by `purge_tick` (a worker hook) unless it is reverted (back to
`available`) or deleted from the bin first. The refusals of a deletion apply alike (attached,
with snapshots, in a status that cannot be deleted). Turning the policy off keeps the disks
already in the bin until their own purge time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor, Runtime
from opencbr.core.ids import is_uuid
from opencbr.core.jobs import Job, JobContext, enqueue, throttled

from .errors import DiskHasSnapshots, DiskInUse, DiskNotInRecycleBin, EvsValidationFailed
from .models import Disk, DiskStatus, NbdExport, RecyclePolicy, Snapshot
from .service import (
    DELETABLE_STATUSES,
    DELETE_ATTEMPTS,
    DELETE_DISK_JOB,
    delete_disk,
    get_disk,
    transition_disk,
    volume_driver,
)

__all__ = [
    "PURGE_EVERY",
    "RECYCLE_DISK_JOB",
    "PolicyChange",
    "RecycleDisk",
    "count_recycled",
    "delete_or_recycle",
    "get_policy",
    "list_recycled",
    "purge_recycled",
    "purge_tick",
    "recycled_disk",
    "revert_disk",
    "update_policy",
]

log = logging.getLogger(__name__)
RECYCLE_DISK_JOB = "evs.recycle_disk"
PURGE_EVERY = timedelta(minutes=1)
THRESHOLD_DAYS = (1, 1000)
KEEP_DAYS = (1, 365)


@dataclass(frozen=True)
class PolicyChange:
    enabled: bool | None = None
    threshold_days: int | None = None
    keep_days: int | None = None


def get_policy(session: Session, project_id: str) -> RecyclePolicy:
    """The project's policy (the vendor's defaults, off, when never set)."""
    policy = session.get(RecyclePolicy, project_id)
    return policy or RecyclePolicy(
        project_id=project_id, enabled=False, threshold_days=7, keep_days=7, updated_at=utcnow()
    )


def update_policy(session: Session, actor: Actor, change: PolicyChange) -> RecyclePolicy:
    assert actor.project_id is not None
    for value, (low, high), name in (
        (change.threshold_days, THRESHOLD_DAYS, "threshold_time"),
        (change.keep_days, KEEP_DAYS, "keep_time"),
    ):
        if value is not None and not low <= value <= high:
            raise EvsValidationFailed(reason=f"{name} must be {low}-{high} days")
    policy = session.get(RecyclePolicy, actor.project_id, with_for_update=True)
    if policy is None:
        policy = get_policy(session, actor.project_id)
        session.add(policy)
    if change.enabled is not None:
        policy.enabled = change.enabled
    if change.threshold_days is not None:
        policy.threshold_days = change.threshold_days
    if change.keep_days is not None:
        policy.keep_days = change.keep_days
    policy.updated_at = utcnow()
    session.flush()
    return policy


def delete_or_recycle(session: Session, actor: Actor, disk_id: str) -> Job:
    """Delete the disk, or move it into the bin when the project's policy says so."""
    assert actor.project_id is not None
    policy = get_policy(session, actor.project_id)
    disk = get_disk(session, actor.project_id, disk_id, lock=True)
    now = utcnow()
    if not policy.enabled or disk.created_at > now - timedelta(days=policy.threshold_days):
        return delete_disk(session, actor, disk_id)
    if disk.server_id is not None:
        raise DiskInUse(id=disk.id, server_id=disk.server_id)
    snapshots = session.scalar(select(func.count()).where(Snapshot.volume_id == disk.id))
    if snapshots:
        raise DiskHasSnapshots(id=disk.id, count=snapshots)
    transition_disk(session, disk, DELETABLE_STATUSES, DiskStatus.RECYCLED)
    session.execute(delete(NbdExport).where(NbdExport.disk_id == disk.id))
    disk.recycled_at, disk.purge_at = now, now + timedelta(days=policy.keep_days)
    return enqueue(session, RECYCLE_DISK_JOB, {"disk_id": disk.id}, project_id=disk.project_id)


def recycled_disk(session: Session, project_id: str, disk_id: str, *, lock: bool = False) -> Disk:
    query = select(Disk).where(
        Disk.id == disk_id, Disk.project_id == project_id, Disk.status == DiskStatus.RECYCLED
    )
    if lock:
        query = query.with_for_update()
    disk = session.scalar(query) if is_uuid(disk_id) else None
    if disk is None:
        raise DiskNotInRecycleBin(id=disk_id)
    return disk


def _binned(query: Any, project_id: str, where: Mapping[str, str | None]) -> Any:
    query = query.where(Disk.project_id == project_id, Disk.status == DiskStatus.RECYCLED)
    if where.get("name") is not None:
        query = query.where(Disk.name == where["name"])
    if where.get("availability_zone") is not None:
        query = query.where(Disk.availability_zone == where["availability_zone"])
    if where.get("status") is not None:
        query = query.where(Disk.status == where["status"])
    return query


def list_recycled(
    session: Session,
    project_id: str,
    where: Mapping[str, str | None],
    offset: int = 0,
    limit: int = 1000,
) -> list[Disk]:
    """The project's disks in the bin, most recently deleted first."""
    query = _binned(select(Disk), project_id, where)
    query = query.order_by(Disk.recycled_at.desc(), Disk.id).offset(offset).limit(limit)
    return list(session.scalars(query))


def count_recycled(session: Session, project_id: str, where: Mapping[str, str | None]) -> int:
    query = _binned(select(func.count()).select_from(Disk), project_id, where)
    return int(session.scalar(query) or 0)


def revert_disk(session: Session, actor: Actor, disk_id: str) -> Disk:
    """Take a disk out of the bin: `available` again, with its data."""
    assert actor.project_id is not None
    disk = recycled_disk(session, actor.project_id, disk_id, lock=True)
    transition_disk(session, disk, [DiskStatus.RECYCLED], DiskStatus.AVAILABLE)
    disk.recycled_at, disk.purge_at = None, None
    return disk


def _purge(session: Session, disk: Disk) -> Job:
    transition_disk(session, disk, [DiskStatus.RECYCLED], DiskStatus.DELETING)
    return enqueue(
        session,
        DELETE_DISK_JOB,
        {"disk_id": disk.id},
        project_id=disk.project_id,
        max_attempts=DELETE_ATTEMPTS,
    )


def delete_recycled(session: Session, actor: Actor, disk_id: str) -> Job:
    """Delete a disk in the bin for good now."""
    assert actor.project_id is not None
    return _purge(session, recycled_disk(session, actor.project_id, disk_id, lock=True))


def purge_recycled(session: Session) -> list[str]:
    """Delete for good the disks whose time in the bin is over; their ids."""
    due = session.scalars(
        select(Disk)
        .where(Disk.status == DiskStatus.RECYCLED, Disk.purge_at <= utcnow())
        .with_for_update(skip_locked=True)
    )
    purged = []
    for disk in list(due):
        _purge(session, disk)
        purged.append(disk.id)
    return purged


def purge_tick(runtime: Runtime, every: timedelta = PURGE_EVERY) -> Callable[[], None]:
    """A `WorkerPool.tick` hook that purges the bin's expired disks."""

    def purge() -> None:
        with runtime.database.unit_of_work() as session:
            purged = purge_recycled(session)
        for disk_id in purged:
            log.info("disk %s purged from the recycle bin: its keep time is over", disk_id)

    return throttled(every, purge, "recycle bin purge")


class RecycleDisk:
    """`evs.recycle_disk` {disk_id}: release the binned disk's open image and key."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        disk_id = str(ctx.payload["disk_id"])
        volume_driver(self.runtime).close(disk_id)
        return {"volume_id": disk_id}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        log.warning("releasing binned disk %s failed: %s", ctx.payload.get("disk_id"), error)
