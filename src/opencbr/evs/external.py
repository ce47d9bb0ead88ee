"""Registering external disks: disks that live in a hypervisor, reached by an NBD URI.

Registration checks the URI, connects once to learn the size (and that the named dirty bitmap
is offered, so a typo is refused now rather than turning every backup into a full read), then
inserts an ordinary `Disk` row (`available`, unencrypted — the bytes are the hypervisor's)
and its `ExternalDisk` row in the caller's transaction. Over the CBR API the disk is an
`OS::Cinder::Volume` like any other. A bad URI, an unreachable server or a missing bitmap is a
400 and nothing is written.

The TLS PSK file is a path on the OpenCBR server's machine (libnbd reads it at each connect);
its content is never stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.core.context import Actor, Runtime

from .errors import ExternalSourceInvalid
from .external_models import ExternalDisk, ExternalRead
from .models import Disk, DiskStatus
from .service import DiskSpec, GiB, create_disk_record
from .volumes.errors import NbdSourceFailed, NbdUriInvalid
from .volumes.nbd_source import NbdConnection, NbdSource, check_source

__all__ = [
    "ExternalDiskSpec",
    "backup_reads",
    "external_sources",
    "list_external_disks",
    "probe_target",
    "register_external_disk",
]


@dataclass(frozen=True)
class ExternalDiskSpec:
    name: str
    uri: str
    bitmap: str = ""
    tls_psk_file: str = ""
    description: str = ""
    availability_zone: str = "az1"


def _connect(source: NbdSource) -> NbdConnection:
    """A connection to a source a caller names, every failure a 400 naming it."""
    try:
        return NbdConnection.open(check_source(source))
    except NbdUriInvalid as exc:
        raise ExternalSourceInvalid(uri=source.uri, reason=exc.params["reason"]) from exc
    except NbdSourceFailed as exc:
        raise ExternalSourceInvalid(uri=source.uri, reason=exc.params["reason"]) from exc


def register_external_disk(
    session: Session, runtime: Runtime, actor: Actor, spec: ExternalDiskSpec
) -> Disk:
    source = NbdSource(spec.uri, spec.bitmap, spec.tls_psk_file)
    connection = _connect(source)
    try:
        if spec.bitmap and not connection.has_bitmap:
            raise ExternalSourceInvalid(
                uri=spec.uri, reason=f"the server offers no dirty bitmap {spec.bitmap}"
            )
        size = connection.size
    finally:
        connection.close()
    if size <= 0:
        raise ExternalSourceInvalid(uri=spec.uri, reason="the export is empty")
    disk_spec = DiskSpec(
        name=spec.name,
        size_gb=-(-size // GiB),
        availability_zone=spec.availability_zone,
        volume_type="SAS",
        description=spec.description,
        encrypted=False,
    )
    disk = create_disk_record(session, runtime, actor, disk_spec, status=DiskStatus.AVAILABLE)
    session.add(
        ExternalDisk(
            disk_id=disk.id,
            uri=spec.uri,
            bitmap=spec.bitmap,
            tls_psk_file=spec.tls_psk_file,
            size_bytes=size,
        )
    )
    session.flush()
    return disk


def probe_target(uri: str, tls_psk_file: str, min_size: int) -> None:
    """Refuse (400) an NBD restore target that is unreachable, read-only or too small."""
    connection = _connect(NbdSource(uri, "", tls_psk_file))
    try:
        if connection.read_only:
            raise ExternalSourceInvalid(uri=uri, reason="the export is read-only")
        if connection.size < min_size:
            raise ExternalSourceInvalid(
                uri=uri, reason=f"the export has {connection.size} bytes, the backup {min_size}"
            )
    finally:
        connection.close()


def external_sources(session: Session, disk_ids: list[str]) -> dict[str, ExternalDisk]:
    """The external-source rows of those of `disk_ids` that are external disks."""
    if not disk_ids:
        return {}
    rows = session.scalars(select(ExternalDisk).where(ExternalDisk.disk_id.in_(disk_ids)))
    return {row.disk_id: row for row in rows}


def list_external_disks(session: Session, project_id: str) -> list[tuple[Disk, ExternalDisk]]:
    """The project's external disks with their sources, newest first (scoped in SQL)."""
    query = (
        select(Disk, ExternalDisk)
        .join(ExternalDisk, ExternalDisk.disk_id == Disk.id)
        .where(Disk.project_id == project_id)
        .order_by(Disk.created_at.desc(), Disk.id)
    )
    return [(disk, row) for disk, row in session.execute(query)]


def backup_reads(session: Session, backup_ids: list[str]) -> dict[str, ExternalRead]:
    """What the given disk backups of external disks read (bitmap, mode, reason, extents)."""
    if not backup_ids:
        return {}
    rows = session.scalars(select(ExternalRead).where(ExternalRead.backup_id.in_(backup_ids)))
    return {row.backup_id: row for row in rows}
