"""EVS jobs: provision new disks' images, create servers' disks, delete disks.

Each handler is idempotent (a retry after a crash repeats it safely): images are created only
if missing, statuses move by compare-and-swap only from the status the request left.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from opencbr.core.context import Runtime
from opencbr.core.jobs import Job, JobContext, JobHandler

from .models import Disk, DiskStatus, Server, ServerStatus, Snapshot
from .recycle import RECYCLE_DISK_JOB, RecycleDisk
from .resize import EXTEND_DISK_JOB, ExtendDisk
from .servers import CREATE_SERVER_JOB
from .service import (
    CREATE_DISK_JOB,
    DELETE_DISK_JOB,
    provision_image,
    remove_disk,
    transition_disk,
    transition_server,
)
from .snapshots import CREATE_SNAPSHOT_JOB, ROLLBACK_SNAPSHOT_JOB
from .snapshots import handlers as snapshot_handlers
from .volumes import BackupInProgress

__all__ = ["handlers", "job_title"]


class RetryLater(Exception):
    """A transient condition (a backup view is open): the queue retries with backoff."""


def _provision(runtime: Runtime, session: Session, disk_id: str) -> None:
    disk = session.get(Disk, disk_id)
    if disk is None or disk.status != DiskStatus.CREATING:
        return
    provision_image(runtime, disk, session=session)
    target = DiskStatus.IN_USE if disk.server_id else DiskStatus.AVAILABLE
    transition_disk(session, disk, [DiskStatus.CREATING], target)


def _mark_failed(session: Session, disk_ids: list[str], error: BaseException) -> None:
    for disk_id in disk_ids:
        disk = session.get(Disk, disk_id)
        if disk is not None and disk.status == DiskStatus.CREATING:
            transition_disk(session, disk, [DiskStatus.CREATING], DiskStatus.ERROR)
            disk.error_message = str(error)[:4000]


class CreateDisks:
    """`evs.create_disk` {disk_ids}: make each image, then `available`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        disk_ids = [str(i) for i in ctx.payload["disk_ids"]]
        for disk_id in disk_ids:
            with self.runtime.database.unit_of_work() as session:
                _provision(self.runtime, session, disk_id)
        return {"volume_id": disk_ids[0], "volume_ids": disk_ids}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        with self.runtime.database.unit_of_work() as session:
            _mark_failed(session, [str(i) for i in ctx.payload["disk_ids"]], error)


class CreateServer:
    """`evs.create_server` {server_id, disk_ids}: make the new disks' images, then `ACTIVE`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        disk_ids = [str(i) for i in ctx.payload["disk_ids"]]
        for disk_id in disk_ids:
            with self.runtime.database.unit_of_work() as session:
                _provision(self.runtime, session, disk_id)
        with self.runtime.database.unit_of_work() as session:
            server = session.get(Server, ctx.payload["server_id"])
            if server is not None and server.status == ServerStatus.BUILD:
                transition_server(session, server, [ServerStatus.BUILD], ServerStatus.ACTIVE)
        return {"server_id": ctx.payload["server_id"], "volume_ids": disk_ids}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        with self.runtime.database.unit_of_work() as session:
            _mark_failed(session, [str(i) for i in ctx.payload["disk_ids"]], error)
            server = session.get(Server, ctx.payload["server_id"])
            if server is not None and server.status == ServerStatus.BUILD:
                transition_server(session, server, [ServerStatus.BUILD], ServerStatus.ERROR)


class DeleteDisk:
    """`evs.delete_disk` {disk_id}: remove the image and the record of a `deleting` disk."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        disk_id = str(ctx.payload["disk_id"])
        with self.runtime.database.unit_of_work() as session:
            disk = session.get(Disk, disk_id)
            if disk is not None and disk.status == DiskStatus.DELETING:
                try:
                    remove_disk(self.runtime, session, disk)
                except BackupInProgress as exc:
                    raise RetryLater(exc.message) from exc
        return {"volume_id": disk_id}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        with self.runtime.database.unit_of_work() as session:
            disk = session.get(Disk, str(ctx.payload["disk_id"]))
            if disk is not None and disk.status == DiskStatus.DELETING:
                transition_disk(session, disk, [DiskStatus.DELETING], DiskStatus.ERROR_DELETING)
                disk.error_message = str(error)[:4000]


def handlers(runtime: Runtime) -> dict[str, JobHandler]:
    return {
        CREATE_DISK_JOB: CreateDisks(runtime),
        CREATE_SERVER_JOB: CreateServer(runtime),
        DELETE_DISK_JOB: DeleteDisk(runtime),
        EXTEND_DISK_JOB: ExtendDisk(runtime),
        RECYCLE_DISK_JOB: RecycleDisk(runtime),
        **snapshot_handlers(runtime),
    }


def _disk_name(session: Session, disk_id: object) -> str:
    disk = session.get(Disk, str(disk_id))
    return (disk.name or disk.id) if disk is not None else str(disk_id)


def job_title(session: Session, job: Job) -> str | None:
    """What a person calls one of this slice's jobs ("Create disk data-1"), for pages that
    show a job; None for another slice's. Names are read now: a deleted disk shows its id."""
    payload = job.payload
    if job.kind == CREATE_DISK_JOB:
        names = [_disk_name(session, i) for i in payload.get("disk_ids") or []]
        return f"Create disk{'s' if len(names) > 1 else ''} {', '.join(names)}"
    if job.kind == EXTEND_DISK_JOB:
        name = _disk_name(session, payload.get("disk_id"))
        return f"Extend disk {name} to {payload.get('size_gb')} GB"
    if job.kind in (CREATE_SNAPSHOT_JOB, ROLLBACK_SNAPSHOT_JOB):
        snapshot = session.get(Snapshot, str(payload.get("snapshot_id")))
        shot = (snapshot.name or snapshot.id) if snapshot else payload.get("snapshot_id")
        disk = _disk_name(session, snapshot.volume_id if snapshot else payload.get("disk_id"))
        if job.kind == CREATE_SNAPSHOT_JOB:
            return f"Take snapshot {shot} of disk {disk}"
        return f"Roll back disk {disk} to snapshot {shot}"
    if job.kind == RECYCLE_DISK_JOB:
        return f"Move disk {_disk_name(session, payload.get('disk_id'))} to the recycle bin"
    if job.kind == DELETE_DISK_JOB:
        return f"Delete disk {_disk_name(session, payload.get('disk_id'))}"
    if job.kind == CREATE_SERVER_JOB:
        server = session.get(Server, str(payload.get("server_id")))
        return f"Create server {server.name if server is not None else payload.get('server_id')}"
    return None
