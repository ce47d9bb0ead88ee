"""Servers (compute instance records): creation with a system disk and data disks, attach,
detach, stop, start and delete (with or without their disks).

Rules:
- A server has exactly one system disk (bootable, device `/dev/vda`) and up to 23 data disks
  (`/dev/vdb` ...). Disks are new (created here) or existing disks of the same project and
  availability zone in status `available`.
- Attaching needs the disk `available` and unattached (an attached disk → EVS.0411); detaching
  the system disk needs the server stopped (`SHUTOFF`).
- New disks are provisioned by the `evs.create_server` job; the server is `BUILD` until then.
- Every change is compare-and-swap on the statuses; a refused request changes nothing.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from opencbr.core.context import Actor, Runtime
from opencbr.core.ids import new_uuid
from opencbr.core.jobs import Job, enqueue

from .errors import (
    DiskInUse,
    DiskNotAttached,
    EvsValidationFailed,
    ServerStatusConflict,
    SystemDiskDetach,
)
from .models import Disk, DiskStatus, Server, ServerStatus
from .service import (
    DELETE_ATTEMPTS,
    DELETE_DISK_JOB,
    DiskSpec,
    create_disk_record,
    get_disk,
    get_server,
    server_disks,
    transition_disk,
    transition_server,
)

__all__ = [
    "CREATE_SERVER_JOB",
    "DiskChoice",
    "ServerSpec",
    "attach_disk",
    "create_server",
    "delete_server",
    "detach_disk",
    "start_server",
    "stop_server",
]

CREATE_SERVER_JOB = "evs.create_server"
SYSTEM_DEVICE = "/dev/vda"
_DEVICES = [f"/dev/vd{letter}" for letter in string.ascii_lowercase[1:24]]


@dataclass(frozen=True)
class DiskChoice:
    """An existing disk (`disk_id`) or a new one (`size_gb`, type, encryption)."""

    disk_id: str | None = None
    size_gb: int | None = None
    volume_type: str = "SAS"
    encrypted: bool | None = None
    kms_key_id: str | None = None
    name: str = ""


@dataclass(frozen=True)
class ServerSpec:
    name: str
    system_disk: DiskChoice
    data_disks: list[DiskChoice] = field(default_factory=list)
    availability_zone: str = "az1"
    flavor: str = "s1.small"
    metadata: dict[str, str] = field(default_factory=dict)


def _check(spec: ServerSpec) -> None:
    if not 1 <= len(spec.name) <= 255:
        raise EvsValidationFailed(reason="server.name must be 1-255 characters")
    if len(spec.data_disks) > len(_DEVICES):
        raise EvsValidationFailed(reason=f"a server has at most {len(_DEVICES)} data disks")
    if not 1 <= len(spec.availability_zone) <= 64 or not 1 <= len(spec.flavor) <= 64:
        raise EvsValidationFailed(reason="availability_zone and flavor must be 1-64 characters")
    chosen = [c.disk_id for c in [spec.system_disk, *spec.data_disks] if c.disk_id]
    if len(chosen) != len(set(chosen)):
        raise EvsValidationFailed(reason="a disk is named twice")


def _take_disk(
    session: Session,
    runtime: Runtime,
    actor: Actor,
    spec: ServerSpec,
    choice: DiskChoice,
    system: bool,
) -> Disk:
    assert actor.project_id is not None
    if choice.disk_id is not None:
        disk = get_disk(session, actor.project_id, choice.disk_id, lock=True)
        if disk.server_id is not None:
            raise DiskInUse(id=disk.id, server_id=disk.server_id)
        if disk.availability_zone != spec.availability_zone:
            raise EvsValidationFailed(
                reason=f"disk {disk.id} is in {disk.availability_zone}, "
                f"the server in {spec.availability_zone}"
            )
        transition_disk(session, disk, [DiskStatus.AVAILABLE], DiskStatus.IN_USE)
        disk.bootable = disk.bootable or system
        return disk
    disk_spec = DiskSpec(
        name=choice.name or f"{spec.name}-{'system' if system else 'data'}",
        size_gb=choice.size_gb,
        availability_zone=spec.availability_zone,
        volume_type=choice.volume_type,
        encrypted=choice.encrypted,
        kms_key_id=choice.kms_key_id,
        bootable=system,
    )
    return create_disk_record(session, runtime, actor, disk_spec)


def new_server_record(
    session: Session,
    actor: Actor,
    spec: ServerSpec,
    system: Disk,
    data: list[Disk],
    *,
    status: str = ServerStatus.BUILD,
    source_backup_id: str | None = None,
) -> Server:
    """Insert a server owning these disks (already in this project, statuses handled by the
    caller) and give them their devices. Used by `create_server` and by the backup service."""
    assert actor.project_id is not None
    assert actor.region is not None
    server = Server(
        id=new_uuid(),
        project_id=actor.project_id,
        region=actor.region,
        name=spec.name,
        status=status,
        availability_zone=spec.availability_zone,
        flavor=spec.flavor,
        source_backup_id=source_backup_id,
        metadata_=dict(spec.metadata),
    )
    session.add(server)
    session.flush()
    for disk, device in [(system, SYSTEM_DEVICE), *zip(data, _DEVICES, strict=False)]:
        disk.server_id, disk.device = server.id, device
    session.flush()
    return server


def create_server(
    session: Session, runtime: Runtime, actor: Actor, spec: ServerSpec
) -> tuple[Server, Job]:
    """A server in `BUILD` with its disks attached, and the job that provisions new disks."""
    _check(spec)
    system = _take_disk(session, runtime, actor, spec, spec.system_disk, system=True)
    data = [_take_disk(session, runtime, actor, spec, c, system=False) for c in spec.data_disks]
    server = new_server_record(session, actor, spec, system, data)
    job = enqueue(
        session,
        CREATE_SERVER_JOB,
        {"server_id": server.id, "disk_ids": [d.id for d in [system, *data]]},
        project_id=actor.project_id,
    )
    return server, job


def _usable_server(session: Session, actor: Actor, server_id: str) -> Server:
    assert actor.project_id is not None
    server = get_server(session, actor.project_id, server_id)
    if server.status not in (ServerStatus.ACTIVE, ServerStatus.SHUTOFF):
        raise ServerStatusConflict(id=server.id, status=server.status, expected="ACTIVE or SHUTOFF")
    return server


def attach_disk(session: Session, actor: Actor, server_id: str, disk_id: str) -> Disk:
    """Attach an available disk as the server's next free data device."""
    assert actor.project_id is not None
    server = _usable_server(session, actor, server_id)
    disk = get_disk(session, actor.project_id, disk_id, lock=True)
    if disk.server_id is not None:
        raise DiskInUse(id=disk.id, server_id=disk.server_id)
    if disk.availability_zone != server.availability_zone:
        raise EvsValidationFailed(
            reason=f"disk {disk.id} is in {disk.availability_zone}, "
            f"the server in {server.availability_zone}"
        )
    used = {d.device for d in server_disks(session, server.id)}
    free = [device for device in _DEVICES if device not in used]
    if not free:
        raise EvsValidationFailed(reason=f"server {server.id} has no free device")
    transition_disk(session, disk, [DiskStatus.AVAILABLE], DiskStatus.IN_USE)
    disk.server_id, disk.device = server.id, free[0]
    session.flush()
    return disk


def detach_disk(session: Session, actor: Actor, server_id: str, disk_id: str) -> Disk:
    """Detach a disk; the system disk only from a stopped server."""
    assert actor.project_id is not None
    server = _usable_server(session, actor, server_id)
    disk = get_disk(session, actor.project_id, disk_id, lock=True)
    if disk.server_id != server.id:
        raise DiskNotAttached(id=disk.id, server_id=server.id)
    if disk.device == SYSTEM_DEVICE and server.status != ServerStatus.SHUTOFF:
        raise SystemDiskDetach(id=disk.id, server_id=server.id)
    transition_disk(session, disk, [DiskStatus.IN_USE], DiskStatus.AVAILABLE)
    disk.server_id, disk.device = None, ""
    session.flush()
    return disk


def stop_server(session: Session, actor: Actor, server_id: str) -> Server:
    assert actor.project_id is not None
    server = get_server(session, actor.project_id, server_id)
    transition_server(session, server, [ServerStatus.ACTIVE], ServerStatus.SHUTOFF)
    return server


def start_server(session: Session, actor: Actor, server_id: str) -> Server:
    assert actor.project_id is not None
    server = get_server(session, actor.project_id, server_id)
    transition_server(session, server, [ServerStatus.SHUTOFF], ServerStatus.ACTIVE)
    return server


def delete_server(
    session: Session, actor: Actor, server_id: str, *, delete_disks: bool = False
) -> list[Job]:
    """Remove the server; its disks are detached (`available`) or deleted with it."""
    assert actor.project_id is not None
    server = get_server(session, actor.project_id, server_id)
    transition_server(
        session,
        server,
        [ServerStatus.ACTIVE, ServerStatus.SHUTOFF, ServerStatus.ERROR],
        ServerStatus.DELETED,
    )
    jobs = []
    for disk in server_disks(session, server.id):
        allowed = [DiskStatus.IN_USE, DiskStatus.ERROR]
        target = DiskStatus.DELETING if delete_disks else DiskStatus.AVAILABLE
        if disk.status == DiskStatus.ERROR and not delete_disks:
            target = DiskStatus.ERROR
        transition_disk(session, disk, allowed, target)
        disk.server_id, disk.device = None, ""
        if delete_disks:
            payload = {"disk_id": disk.id}
            jobs.append(
                enqueue(
                    session,
                    DELETE_DISK_JOB,
                    payload,
                    project_id=disk.project_id,
                    max_attempts=DELETE_ATTEMPTS,
                )
            )
    session.flush()
    session.delete(server)
    session.flush()
    return jobs
