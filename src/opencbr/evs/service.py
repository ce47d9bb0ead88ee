"""Disk records and their volumes: project-scoped lookups, compare-and-swap status transitions,
creation (plain and encrypted), deletion and the data path.

Every lookup takes the acting project and filters by it in SQL: another project's disk answers
exactly like a missing one.

Encryption (S10): an encrypted disk has its own random 512-bit data key (AES-XTS in the volume
driver). The key is generated and wrapped by KMS under the disk's KMS key (the one asked for,
the one of the source backup, or the project's `evs/default`) and only the wrapped form is
stored (`Disk.wrapped_key`). It is unwrapped through KMS — which checks the key is still
usable by the acting domain — each time a volume is opened, and handed to the driver, which
keeps it in memory only. Creating an encrypted disk needs the domain's `EVSAccessKMS` agency.

Contract with the backup service (which may import this module; this one never imports it):
creating a disk from a backup goes through the callable that the backup service registers as
`VOLUME_FROM_BACKUP` in `runtime.parts` (`VolumeFromBackup`); it uses `create_disk_record`,
`provision_image` and `open_volume` from here.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor, Part, Runtime
from opencbr.core.errors import AppError
from opencbr.core.ids import is_uuid, new_uuid
from opencbr.core.jobs import Job, enqueue
from opencbr.iam.agencies import EVS_KMS_AGENCY, has_agency
from opencbr.iam.models import Project
from opencbr.kms import service as kms

from .errors import (
    AgencyMissing,
    DiskHasSnapshots,
    DiskInUse,
    DiskNotFound,
    DiskRangeInvalid,
    DiskStatusConflict,
    EvsValidationFailed,
    ExternalDiskDataPath,
    FromBackupUnavailable,
    ServerNotFound,
    ServerStatusConflict,
)
from .external_volumes import external_source, external_volume
from .models import Disk, DiskStatus, NbdExport, Server, Snapshot
from .volumes import (
    DiskKey,
    LocalVolumeDriver,
    ProgressCallback,
    RangeError,
    StreamLengthMismatch,
    VolumeNotFound,
    WriteData,
)
from .volumes.nbd_source import NbdVolume
from .volumes.protocol import BackupView, Extent

__all__ = [
    "CMK_META",
    "CREATE_DISK_JOB",
    "DATA_STATUSES",
    "DELETABLE_STATUSES",
    "DELETE_ATTEMPTS",
    "DELETE_DISK_JOB",
    "ENCRYPTED_META",
    "MAX_SIZE_GB",
    "VOLUME_FROM_BACKUP",
    "VOLUME_TYPES",
    "DiskFilter",
    "DiskSpec",
    "DiskVolume",
    "GiB",
    "VolumeFromBackup",
    "count_disks",
    "create_disk_record",
    "create_disks",
    "data_volume",
    "delete_disk",
    "get_disk",
    "get_server",
    "list_disks",
    "open_volume",
    "owner_actor",
    "provision_image",
    "remove_disk",
    "server_disks",
    "transition_disk",
    "transition_server",
    "volume_driver",
]

GiB = 1 << 30
MAX_SIZE_GB = 16384  # a sparse file on ext4 (4 KiB blocks) stops at 16 TiB
VOLUME_TYPES = ("SATA", "SAS", "GPSSD", "SSD", "ESSD", "GPSSD2", "ESSD2")
DATA_STATUSES = (DiskStatus.AVAILABLE, DiskStatus.IN_USE, DiskStatus.BACKING_UP)
"""Statuses in which a disk's bytes may be read and written through the API."""
DELETABLE_STATUSES = (DiskStatus.AVAILABLE, DiskStatus.ERROR, DiskStatus.ERROR_RESTORING)
CREATE_DISK_JOB = "evs.create_disk"
DELETE_DISK_JOB = "evs.delete_disk"
DELETE_ATTEMPTS = 10  # a deletion waits (with backoff) for a running backup to finish
ENCRYPTED_META = "__system__encrypted"
CMK_META = "__system__cmkid"
_VOLUME_DRIVER: Part[LocalVolumeDriver] = Part("evs.volume_driver")
_driver_lock = threading.Lock()


@dataclass(frozen=True)
class DiskSpec:
    """What a caller asks for. `size_gb` may be None only when the backup service fills it."""

    name: str
    size_gb: int | None
    availability_zone: str
    volume_type: str
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    encrypted: bool | None = None
    kms_key_id: str | None = None
    backup_id: str | None = None
    bootable: bool = False
    multiattach: bool = False


class VolumeFromBackup(Protocol):
    """Registered by the backup service as `VOLUME_FROM_BACKUP`: creates the disk record
    (status `restoring-backup` or `creating`) and the job that fills it, in the caller's
    transaction."""

    def __call__(
        self, session: Session, runtime: Runtime, actor: Actor, spec: DiskSpec
    ) -> tuple[Disk, Job]: ...


VOLUME_FROM_BACKUP: Part[VolumeFromBackup] = Part("evs.volume_from_backup")


def volume_from_backup(runtime: Runtime) -> VolumeFromBackup:
    """The backup service's way to make a disk from a backup; 400 when none is installed."""
    make = runtime.parts.get(VOLUME_FROM_BACKUP)
    if make is None:
        raise FromBackupUnavailable()
    return make


# ---------------------------------------------------------------------------- lookups


def get_disk(session: Session, project_id: str, disk_id: str, *, lock: bool = False) -> Disk:
    """The project's disk; one in the recycle bin answers like a missing one (recycle.py)."""
    query = select(Disk).where(
        Disk.id == disk_id, Disk.project_id == project_id, Disk.status != DiskStatus.RECYCLED
    )
    if lock:
        query = query.with_for_update()
    disk = session.scalar(query) if is_uuid(disk_id) else None
    if disk is None:
        raise DiskNotFound(id=disk_id)
    return disk


def get_server(session: Session, project_id: str, server_id: str) -> Server:
    query = select(Server).where(Server.id == server_id, Server.project_id == project_id)
    server = session.scalar(query) if is_uuid(server_id) else None
    if server is None:
        raise ServerNotFound(id=server_id)
    return server


def server_disks(session: Session, server_id: str) -> list[Disk]:
    """The server's disks, system (bootable) disk first, then by device name."""
    disks = session.scalars(select(Disk).where(Disk.server_id == server_id))
    return sorted(disks, key=lambda d: (not d.bootable, d.device, d.id))


@dataclass(frozen=True)
class DiskFilter:
    name: str | None = None
    status: str | None = None
    availability_zone: str | None = None
    server_id: str | None = None
    ids: tuple[str, ...] = ()


def _filtered(query: Any, project_id: str, where: DiskFilter) -> Any:
    query = query.where(Disk.project_id == project_id, Disk.status != DiskStatus.RECYCLED)
    if where.name is not None:
        query = query.where(Disk.name == where.name)
    if where.status is not None:
        query = query.where(Disk.status == where.status)
    if where.availability_zone is not None:
        query = query.where(Disk.availability_zone == where.availability_zone)
    if where.server_id is not None:
        query = query.where(Disk.server_id == where.server_id)
    if where.ids:
        query = query.where(Disk.id.in_(where.ids))
    return query


def list_disks(
    session: Session,
    project_id: str,
    where: DiskFilter | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> list[Disk]:
    """The project's disks, newest first."""
    query = _filtered(select(Disk), project_id, where or DiskFilter())
    query = query.order_by(Disk.created_at.desc(), Disk.id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def count_disks(session: Session, project_id: str, where: DiskFilter | None = None) -> int:
    query = _filtered(select(func.count()).select_from(Disk), project_id, where or DiskFilter())
    return int(session.scalar(query) or 0)


# ---------------------------------------------------------------------------- transitions


def swap_status(
    session: Session,
    row: Disk | Server | Snapshot,
    allowed_from: Iterable[str],
    to: str,
    conflict: type[AppError],
) -> None:
    """Move `row` to `to` only if it is still in one of `allowed_from` (compare-and-swap);
    otherwise raise `conflict` naming the status it has now."""
    model = type(row)
    allowed = list(allowed_from)
    changed = session.execute(
        update(model)
        .where(model.id == row.id, model.status.in_(allowed))
        .values(status=to, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    session.refresh(row)
    if not changed:
        raise conflict(id=row.id, status=row.status, expected=" or ".join(allowed))


def transition_disk(session: Session, disk: Disk, allowed_from: Iterable[str], to: str) -> None:
    swap_status(session, disk, allowed_from, to, DiskStatusConflict)


def transition_server(
    session: Session, server: Server, allowed_from: Iterable[str], to: str
) -> None:
    swap_status(session, server, allowed_from, to, ServerStatusConflict)


# ---------------------------------------------------------------------------- creation


def _check_spec(spec: DiskSpec) -> int:
    """The validated size in GB; raises EvsValidationFailed naming the first bad field."""
    if spec.size_gb is None:
        raise EvsValidationFailed(reason="volume.size is required")
    if not 1 <= spec.size_gb <= MAX_SIZE_GB:
        raise EvsValidationFailed(reason=f"volume.size must be 1-{MAX_SIZE_GB} GB")
    if spec.volume_type not in VOLUME_TYPES:
        raise EvsValidationFailed(reason=f"volume.volume_type must be one of {VOLUME_TYPES}")
    if not 1 <= len(spec.availability_zone) <= 64:
        raise EvsValidationFailed(reason="volume.availability_zone must be 1-64 characters")
    if len(spec.name) > 255 or len(spec.description) > 255:
        raise EvsValidationFailed(reason="volume.name and description are at most 255 characters")
    if len(spec.tags) > 10:
        raise EvsValidationFailed(reason="a disk has at most 10 tags")
    return spec.size_gb


def _wanted_encryption(spec: DiskSpec, inherit_kms_key_id: str | None) -> tuple[bool, str | None]:
    """(encrypted, KMS key id or None for the project default) from the spec, its
    `__system__*` metadata and the source backup's key (a disk from an encrypted backup is
    encrypted too, S10)."""
    encrypted = spec.encrypted
    flag = spec.metadata.get(ENCRYPTED_META)
    if flag is not None:
        if flag not in ("0", "1"):
            raise EvsValidationFailed(reason=f"metadata.{ENCRYPTED_META} must be '0' or '1'")
        if encrypted is not None and encrypted != (flag == "1"):
            raise EvsValidationFailed(reason=f"metadata.{ENCRYPTED_META} contradicts encrypted")
        encrypted = flag == "1"
    key_id = spec.kms_key_id or spec.metadata.get(CMK_META) or None
    if inherit_kms_key_id:
        if encrypted is False:
            raise EvsValidationFailed(reason="a disk made from an encrypted backup is encrypted")
        encrypted, key_id = True, key_id or inherit_kms_key_id
    if key_id and encrypted is False:
        raise EvsValidationFailed(reason="a KMS key was given for an unencrypted disk")
    return bool(encrypted or key_id), key_id


def _new_disk_key(
    session: Session, runtime: Runtime, actor: Actor, key_id: str | None
) -> tuple[str, bytes]:
    """(KMS key id, wrapped per-disk key), after the agency and key checks (S10)."""
    if not has_agency(session, actor.domain_id, EVS_KMS_AGENCY):
        raise AgencyMissing(agency=EVS_KMS_AGENCY, domain_id=actor.domain_id)
    if key_id is None:
        key_id = kms.default_disk_key(session, runtime.root_key, actor).id
    data_key = kms.generate_data_key(session, runtime.root_key, actor, key_id, length=DiskKey.SIZE)
    DiskKey(data_key.plaintext)  # a valid XTS key (the two halves differ)
    return data_key.key_id, data_key.wrapped


def create_disk_record(
    session: Session,
    runtime: Runtime,
    actor: Actor,
    spec: DiskSpec,
    *,
    source_backup_id: str | None = None,
    inherit_kms_key_id: str | None = None,
    status: str = DiskStatus.CREATING,
) -> Disk:
    """Validate, check agency and key for encryption, wrap a new per-disk key and insert the
    row in the caller's transaction. No image yet: `provision_image` makes it."""
    assert actor.project_id is not None
    assert actor.region is not None
    size_gb = _check_spec(spec)
    encrypted, key_id = _wanted_encryption(spec, inherit_kms_key_id)
    kms_key_id, wrapped = "", None
    if encrypted:
        kms_key_id, wrapped = _new_disk_key(session, runtime, actor, key_id)
    metadata = {k: v for k, v in spec.metadata.items() if k not in (ENCRYPTED_META, CMK_META)}
    disk = Disk(
        id=new_uuid(),
        project_id=actor.project_id,
        region=actor.region,
        user_id=actor.user_id,
        name=spec.name,
        description=spec.description,
        size_gb=size_gb,
        status=status,
        availability_zone=spec.availability_zone,
        volume_type=spec.volume_type,
        bootable=spec.bootable,
        multiattach=spec.multiattach,
        encrypted=encrypted,
        kms_key_id=kms_key_id,
        wrapped_key=wrapped,
        source_backup_id=source_backup_id,
        metadata_=metadata,
        tags=dict(spec.tags),
        error_message="",
    )
    session.add(disk)
    session.flush()
    return disk


def create_disks(
    session: Session, runtime: Runtime, actor: Actor, spec: DiskSpec, count: int = 1
) -> tuple[list[Disk], Job]:
    """`count` new empty disks (status `creating`) and the job that makes their images."""
    if not 1 <= count <= 100:
        raise EvsValidationFailed(reason="volume.count must be 1-100")
    disks = [create_disk_record(session, runtime, actor, spec) for _ in range(count)]
    job = enqueue(
        session, CREATE_DISK_JOB, {"disk_ids": [d.id for d in disks]}, project_id=actor.project_id
    )
    return disks, job


def owner_actor(session: Session, disk: Disk) -> Actor:
    """The disk's own project acting through the disk service (what jobs use for KMS)."""
    domain_id = session.scalar(select(Project.domain_id).where(Project.id == disk.project_id))
    assert domain_id is not None
    return Actor(domain_id, "", disk.project_id, disk.region)


def _disk_key(
    runtime: Runtime, session: Session, disk: Disk, actor: Actor | None
) -> DiskKey | None:
    if not disk.encrypted:
        return None
    assert disk.wrapped_key is not None
    acting = actor if actor is not None else owner_actor(session, disk)
    raw = kms.unwrap_data_key(session, runtime.root_key, acting, disk.kms_key_id, disk.wrapped_key)
    return DiskKey(raw)


def volume_driver(runtime: Runtime) -> LocalVolumeDriver:
    """The runtime's one volume driver, rooted at `<data_dir>/volumes`."""
    with _driver_lock:
        root = Path(runtime.settings.data_dir) / "volumes"
        return runtime.parts.setdefault(_VOLUME_DRIVER, lambda: LocalVolumeDriver(root))


def provision_image(
    runtime: Runtime, disk: Disk, *, session: Session | None = None, actor: Actor | None = None
) -> None:
    """Create the disk's sparse image if it does not exist yet (idempotent).

    An encrypted disk's key is unwrapped through KMS with `session` (as `actor`, else as the
    disk's owner); without a session one is opened, which must not happen while the caller
    holds a write transaction on SQLite.
    """
    driver = volume_driver(runtime)
    if driver.exists(disk.id):
        return
    if session is None and disk.encrypted:
        with runtime.database.unit_of_work() as own:
            key = _disk_key(runtime, own, disk, actor)
    else:
        key = None if session is None else _disk_key(runtime, session, disk, actor)
    driver.create(disk.id, disk.size_gb * GiB, encryption=key)


# ---------------------------------------------------------------------------- volumes


@dataclass(frozen=True)
class DiskVolume:
    """An opened disk image (key loaded in the driver). Range errors come out as EVS errors."""

    driver: LocalVolumeDriver
    disk_id: str
    size: int

    def write(self, offset: int, data: WriteData, length: int | None = None) -> int:
        try:
            return self.driver.write(self.disk_id, offset, data, length)
        except (RangeError, StreamLengthMismatch) as exc:
            raise DiskRangeInvalid(id=self.disk_id, reason=exc.message) from exc

    def write_zeroes(self, offset: int, length: int) -> int:
        try:
            return self.driver.write_zeroes(self.disk_id, offset, length)
        except RangeError as exc:
            raise DiskRangeInvalid(id=self.disk_id, reason=exc.message) from exc

    def read(self, offset: int, length: int) -> Iterator[bytes]:
        try:
            return self.driver.read(self.disk_id, offset, length)
        except RangeError as exc:
            raise DiskRangeInvalid(id=self.disk_id, reason=exc.message) from exc

    def flush(self) -> None:
        self.driver.flush(self.disk_id)

    def changed_extents(self) -> list[Extent]:
        return self.driver.changed_extents(self.disk_id)

    def allocated_extents(self) -> list[Extent]:
        return self.driver.allocated_extents(self.disk_id)

    def begin_backup(self) -> BackupView:
        return self.driver.begin_backup(self.disk_id)

    def import_file(self, path: Path, progress: ProgressCallback | None = None) -> int:
        return self.driver.import_file(self.disk_id, path, progress)

    def export_file(self, path: Path, progress: ProgressCallback | None = None) -> int:
        return self.driver.export_file(self.disk_id, path, progress)


def open_volume(
    runtime: Runtime, session: Session, disk: Disk, actor: Actor | None = None
) -> DiskVolume | NbdVolume:
    """The disk's volume, ready for data and `begin_backup()`; an external disk's is its NBD
    source (`external_volumes`).

    An encrypted disk's key is unwrapped through KMS as `actor` (the caller, or by default the
    disk's owner project): a disabled or no longer granted key refuses here with its KMS error.
    """
    external = external_volume(session, disk)
    if external is not None:
        return external
    return _local_volume(runtime, session, disk, actor)


def _local_volume(
    runtime: Runtime, session: Session, disk: Disk, actor: Actor | None = None
) -> DiskVolume:
    driver = volume_driver(runtime)
    key = _disk_key(runtime, session, disk, actor)
    driver.open(disk.id, key)
    return DiskVolume(driver, disk.id, disk.size_gb * GiB)


def data_volume(runtime: Runtime, session: Session, actor: Actor, disk_id: str) -> DiskVolume:
    """A disk of the caller's project whose bytes the API may read and write now."""
    assert actor.project_id is not None
    disk = get_disk(session, actor.project_id, disk_id)
    if disk.status not in DATA_STATUSES:
        raise DiskStatusConflict(
            id=disk.id, status=disk.status, expected=" or ".join(DATA_STATUSES)
        )
    return stored_volume(runtime, session, disk, actor)


def stored_volume(
    runtime: Runtime, session: Session, disk: Disk, actor: Actor | None = None
) -> DiskVolume:
    """The volume of a disk whose bytes OpenCBR stores: an external disk's bytes live in its
    NBD source, so its data path (and an NBD export of it) is refused, naming the source."""
    source = external_source(session, disk.id)
    if source is not None:
        raise ExternalDiskDataPath(id=disk.id, uri=source.uri)
    return _local_volume(runtime, session, disk, actor)


# ---------------------------------------------------------------------------- deletion


def delete_disk(session: Session, actor: Actor, disk_id: str) -> Job:
    """Mark the disk `deleting` and enqueue the job that removes its image and record.
    An attached disk is refused (detach it or delete the server with its disks), and so is
    one with a read-write NBD export (it is `in-use`); a read-only export ends here."""
    assert actor.project_id is not None
    disk = get_disk(session, actor.project_id, disk_id, lock=True)
    if disk.server_id is not None:
        raise DiskInUse(id=disk.id, server_id=disk.server_id)
    snapshots = session.scalar(select(func.count()).where(Snapshot.volume_id == disk.id))
    if snapshots:
        raise DiskHasSnapshots(id=disk.id, count=snapshots)
    transition_disk(session, disk, DELETABLE_STATUSES, DiskStatus.DELETING)
    session.execute(delete(NbdExport).where(NbdExport.disk_id == disk.id))
    return enqueue(
        session,
        DELETE_DISK_JOB,
        {"disk_id": disk.id},
        project_id=disk.project_id,
        max_attempts=DELETE_ATTEMPTS,
    )


def remove_disk(runtime: Runtime, session: Session, disk: Disk) -> None:
    """Delete the image (if any), snapshots (a disk deleted with its server) and the record of
    a disk in `deleting` (idempotent)."""
    driver = volume_driver(runtime)
    for snapshot in list(session.scalars(select(Snapshot).where(Snapshot.volume_id == disk.id))):
        driver.delete_snapshot(snapshot.id)
        session.delete(snapshot)
    session.flush()
    with contextlib.suppress(VolumeNotFound):
        driver.delete(disk.id)
    session.execute(delete(NbdExport).where(NbdExport.disk_id == disk.id))
    session.delete(disk)
    session.flush()
