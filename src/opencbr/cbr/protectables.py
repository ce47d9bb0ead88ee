"""Protectable resources (ListProtectable / ShowProtectable): the caller's disks or servers,
each with whether it can be backed up and the vault that protects it, if one does.

A resource can be backed up unless it is being created, deleted or is in error; one that a
vault already protects says which (a resource lives in one vault only). A server's children
are its disks. Only the caller's project is read (S14: another's resource is not found).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.core.context import Actor
from opencbr.core.errors import ValidationFailed
from opencbr.evs.models import Disk, DiskStatus, Server

from .errors import ResourceNotFound
from .models import ResourceType, Vault, VaultResource, VaultStatus

__all__ = ["PROTECTABLE_TYPES", "Protectable", "ProtectableFilter", "find", "list_protectables"]

PROTECTABLE_TYPES = {"server": ResourceType.SERVER, "disk": ResourceType.DISK}
_NOT_PROTECTABLE = {"creating", "deleting", "error", "error_deleting", "error_restoring"}


@dataclass(frozen=True)
class ProtectableFilter:
    name: str | None = None
    status: str | None = None
    id: str | None = None
    server_id: str | None = None


@dataclass(frozen=True)
class Protectable:
    id: str
    name: str
    type: str
    size_gb: int
    status: str
    detail: dict[str, Any]
    children: list[dict[str, Any]]
    vault: Vault | None

    @property
    def blocked_reason(self) -> str | None:
        if self.status in _NOT_PROTECTABLE:
            return f"the resource is {self.status}"
        return None


def _kind(protectable_type: str) -> ResourceType:
    kind = PROTECTABLE_TYPES.get(protectable_type)
    if kind is None:
        raise ValidationFailed(reason="protectable_type must be server or disk")
    return kind


def _disk_detail(disk: Disk) -> dict[str, Any]:
    return {
        "id": disk.id,
        "name": disk.name,
        "size": disk.size_gb,
        "status": disk.status,
        "availability_zone": disk.availability_zone,
        "volume_type": disk.volume_type,
        "bootable": "true" if disk.bootable else "false",
        "encrypted": disk.encrypted,
        "server_id": disk.server_id,
    }


def _vaults(session: Session, actor: Actor, resource_ids: list[str]) -> dict[str, Vault]:
    if not resource_ids:
        return {}
    rows = session.execute(
        select(VaultResource.resource_id, Vault)
        .join(Vault, Vault.id == VaultResource.vault_id)
        .where(
            VaultResource.resource_id.in_(resource_ids),
            Vault.project_id == actor.project_id,
            Vault.status != VaultStatus.DELETING,
        )
    ).all()
    return {str(resource_id): vault for resource_id, vault in rows}


def _disks(session: Session, actor: Actor, where: ProtectableFilter) -> Any:
    query = select(Disk).where(
        Disk.project_id == actor.project_id, Disk.status != DiskStatus.RECYCLED
    )
    if where.name:
        query = query.where(Disk.name.contains(where.name, autoescape=True))
    if where.status:
        query = query.where(Disk.status == where.status)
    if where.id:
        query = query.where(Disk.id == where.id)
    if where.server_id:
        query = query.where(Disk.server_id == where.server_id)
    return query.order_by(Disk.created_at.desc(), Disk.id)


def _servers(session: Session, actor: Actor, where: ProtectableFilter) -> Any:
    query = select(Server).where(Server.project_id == actor.project_id)
    if where.name:
        query = query.where(Server.name.contains(where.name, autoescape=True))
    if where.status:
        query = query.where(Server.status == where.status)
    if where.id:
        query = query.where(Server.id == where.id)
    return query.order_by(Server.created_at.desc(), Server.id)


def _server_protectable(session: Session, server: Server, vault: Vault | None) -> Protectable:
    disks = list(session.scalars(select(Disk).where(Disk.server_id == server.id)))
    disks.sort(key=lambda d: (not d.bootable, d.device, d.id))
    children = [
        {
            "id": d.id,
            "name": d.name,
            "type": ResourceType.DISK.value,
            "size": d.size_gb,
            "status": d.status,
            "detail": _disk_detail(d),
        }
        for d in disks
    ]
    detail = {
        "id": server.id,
        "name": server.name,
        "status": server.status,
        "availability_zone": server.availability_zone,
        "flavor": server.flavor,
    }
    size = sum(d.size_gb for d in disks)
    return Protectable(
        server.id, server.name, ResourceType.SERVER, size, server.status, detail, children, vault
    )


def list_protectables(
    session: Session,
    actor: Actor,
    protectable_type: str,
    where: ProtectableFilter,
    limit: int,
    offset: int,
) -> list[Protectable]:
    """One page of the caller's resources of the type, newest first."""
    kind = _kind(protectable_type)
    if kind == ResourceType.DISK:
        disks = list(session.scalars(_disks(session, actor, where).limit(limit).offset(offset)))
        vaults = _vaults(session, actor, [d.id for d in disks])
        return [
            Protectable(
                d.id, d.name, kind, d.size_gb, d.status, _disk_detail(d), [], vaults.get(d.id)
            )
            for d in disks
        ]
    if where.server_id:
        raise ValidationFailed(reason="server_id filters disks, not servers")
    servers = list(session.scalars(_servers(session, actor, where).limit(limit).offset(offset)))
    vaults = _vaults(session, actor, [s.id for s in servers])
    return [_server_protectable(session, s, vaults.get(s.id)) for s in servers]


def find(session: Session, actor: Actor, protectable_type: str, instance_id: str) -> Protectable:
    found = list_protectables(
        session, actor, protectable_type, ProtectableFilter(id=instance_id), 1, 0
    )
    if not found:
        raise ResourceNotFound(id=instance_id)
    return found[0]
