"""Opening and closing NBD exports of disks: the rules.

* A project exports only its own disks (another project's disk answers like a missing one,
  S14); a disk being deleted, restored onto or in error cannot be exported, nor a new empty
  one being created. A disk made from a backup can be, at once, while its copy runs
  (instant restore, evs/instant.py): it stays `creating` until the copy ends.
* A disk has at most one export (the database enforces it). Opening again in the same mode
  answers the open export; in the other mode it is refused until the first is closed.
* A read-write export of a detached disk makes it `in-use` until it is closed: a restore onto
  it and its deletion are refused as for an attached disk. An attached disk stays `in-use`.
* The export name is 32 random bytes (URL-safe base64); it exists only while the export does.
* The URI names an NBD server (registry.py) and its TLS: `nbds://` when the client must
  start TLS first.
* Deleting a disk ends its read-only export (service.delete_disk).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.core.context import Actor, Runtime
from opencbr.core.ids import new_uuid

from ..errors import (
    DiskStatusConflict,
    ExternalDiskDataPath,
    NbdExportConflict,
    NbdExportNotFound,
    NbdServerMissing,
)
from ..external_volumes import external_source
from ..models import Disk, DiskStatus, NbdExport
from ..service import get_disk, get_server, server_disks, transition_disk
from .lookup import SERVABLE_STATUSES, servable
from .registry import live_server
from .server import nbd_server

__all__ = [
    "ExportView",
    "close_export",
    "close_server_exports",
    "open_export",
    "open_server_exports",
    "show_export",
]


@dataclass(frozen=True)
class ExportView:
    """What a caller is told about an open export."""

    volume_id: str
    uri: str
    export_name: str
    host: str
    port: int
    read_only: bool
    tls: str | None
    """None, or what the client's TLS credentials are: "psk" (a pre-shared key of the
    server's PSK file) or "x509" (trusting the CA that signed the server's certificate)."""

    @classmethod
    def of(cls, export: NbdExport) -> ExportView:
        host, _, port = export.address.rpartition(":")
        scheme = "nbds" if export.tls else "nbd"
        return cls(
            volume_id=export.disk_id,
            uri=f"{scheme}://{export.address}/{export.name}",
            export_name=export.name,
            host=host.strip("[]"),
            port=int(port),
            read_only=export.read_only,
            tls=export.tls or None,
        )


def _export_of(session: Session, disk_id: str) -> NbdExport | None:
    return session.scalar(select(NbdExport).where(NbdExport.disk_id == disk_id))


def _mode(read_only: bool) -> str:
    return "read-only" if read_only else "read-write"


def open_export(
    session: Session, runtime: Runtime, actor: Actor, disk_id: str, *, read_only: bool
) -> ExportView:
    """Export the caller's disk over NBD (rules in the module docstring)."""
    assert actor.project_id is not None
    disk = get_disk(session, actor.project_id, disk_id, lock=True)
    return ExportView.of(_open_locked(session, runtime, disk, read_only))


def _open_locked(session: Session, runtime: Runtime, disk: Disk, read_only: bool) -> NbdExport:
    existing = _export_of(session, disk.id)
    if existing is not None:
        if existing.read_only != read_only:
            raise NbdExportConflict(id=disk.id, mode=_mode(existing.read_only))
        return existing
    source = external_source(session, disk.id)
    if source is not None:  # a hypervisor's disk: its own NBD server already serves it
        raise ExternalDiskDataPath(id=disk.id, uri=source.uri)
    if not servable(disk):
        raise DiskStatusConflict(
            id=disk.id, status=disk.status, expected=" or ".join(SERVABLE_STATUSES)
        )
    address, tls = _serving_server(session, runtime)
    if not read_only and disk.server_id is None and disk.status != DiskStatus.CREATING:
        transition_disk(session, disk, [DiskStatus.AVAILABLE], DiskStatus.IN_USE)
    export = NbdExport(
        id=new_uuid(),
        disk_id=disk.id,
        project_id=disk.project_id,
        name=secrets.token_urlsafe(32),
        read_only=read_only,
        address=address,
        tls=tls,
    )
    session.add(export)
    session.flush()
    return export


def _serving_server(session: Session, runtime: Runtime) -> tuple[str, str]:
    """The address and TLS of the NBD server a new export names: this process's own, or (an
    API process without one, `Settings.nbd_embedded` false) a running one of the deployment."""
    if runtime.settings.nbd_embedded:
        server = nbd_server(runtime)
        return server.address, server.tls
    record = live_server(session)
    if record is None:
        raise NbdServerMissing()
    return record.address, record.tls


def show_export(session: Session, actor: Actor, disk_id: str) -> ExportView | None:
    """The open export of the caller's disk, if any."""
    assert actor.project_id is not None
    disk = get_disk(session, actor.project_id, disk_id)
    export = _export_of(session, disk.id)
    return None if export is None else ExportView.of(export)


def close_export(session: Session, actor: Actor, disk_id: str) -> None:
    """End the export of the caller's disk; a read-write one frees a detached disk."""
    assert actor.project_id is not None
    disk = get_disk(session, actor.project_id, disk_id, lock=True)
    if not _close_locked(session, disk):
        raise NbdExportNotFound(id=disk.id)


def _close_locked(session: Session, disk: Disk) -> bool:
    export = _export_of(session, disk.id)
    if export is None:
        return False
    session.delete(export)
    session.flush()
    if not export.read_only and disk.server_id is None and disk.status == DiskStatus.IN_USE:
        transition_disk(session, disk, [DiskStatus.IN_USE], DiskStatus.AVAILABLE)
    return True


def open_server_exports(
    session: Session, runtime: Runtime, actor: Actor, server_id: str, *, read_only: bool
) -> list[ExportView]:
    """Export every disk of the caller's server, in boot order (system disk first)."""
    assert actor.project_id is not None
    server = get_server(session, actor.project_id, server_id)
    views = []
    for listed in server_disks(session, server.id):
        disk = get_disk(session, actor.project_id, listed.id, lock=True)
        views.append(ExportView.of(_open_locked(session, runtime, disk, read_only)))
    return views


def close_server_exports(session: Session, actor: Actor, server_id: str) -> int:
    """End the exports of the caller's server's disks; how many there were."""
    assert actor.project_id is not None
    server = get_server(session, actor.project_id, server_id)
    closed = 0
    for listed in server_disks(session, server.id):
        disk = get_disk(session, actor.project_id, listed.id, lock=True)
        closed += _close_locked(session, disk)
    return closed
