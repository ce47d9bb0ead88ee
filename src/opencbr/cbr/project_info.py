"""What a project can learn about its backup service: storage used per resource, the
features this deployment has, where it could replicate to (nowhere yet), external vaults
(none), and the metadata recorded with a backup. Every read is scoped by the caller."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opencbr.core.context import Actor
from opencbr.core.errors import NotFound

from .backups import children_of, visible_backup
from .models import Backup, BackupStatus, ResourceType

__all__ = [
    "FEATURES",
    "ResourceUsage",
    "backup_metadata",
    "feature",
    "replication_destinations",
    "storage_usage",
]

MiB = 1024 * 1024

# The feature switches of this deployment (ListFeatures / ShowFeature), as the vendor names
# them. Replication is off until the replication work lands: there is nowhere to copy to.
FEATURES: dict[str, Any] = {
    "replication.enable": False,
    "backup.share.enable": True,
    "backup.encryption.enable": True,
    "vault.lock.enable": True,
    "vault.tag.enable": True,
    "policy.retention.enable": True,
    "restore.disk.enable": True,
    "restore.server.enable": True,
}


class FeatureNotFound(NotFound):
    template = "Feature {id} not found; ListFeatures lists the known ones."


def feature(key: str) -> Any:
    if key not in FEATURES:
        raise FeatureNotFound(id=key)
    return FEATURES[key]


def replication_destinations(actor: Actor) -> list[dict[str, Any]]:
    """The caller's region and the regions it can replicate to: none yet."""
    return [{"name": actor.region, "replication_destinations": []}]


@dataclass(frozen=True)
class ResourceUsage:
    resource_id: str
    resource_name: str
    resource_type: str
    backup_count: int
    backup_size_mb: int


def storage_usage(
    session: Session,
    actor: Actor,
    *,
    resource_id: str | None,
    resource_type: str | None,
    limit: int,
    offset: int,
) -> tuple[list[ResourceUsage], int]:
    """The caller's own available backups per resource (server backups counted once, with
    their disks' data): how many, and the data they hold (MB, rounded up); one page of them
    (by resource id) and how many resources in all."""
    query = (
        select(
            Backup.resource_id,
            func.max(Backup.resource_name),
            func.max(Backup.resource_type),
            func.count(),
            func.coalesce(func.sum(Backup.stored_bytes), 0),
        )
        .where(
            Backup.project_id == actor.project_id,
            Backup.parent_id.is_(None),
            Backup.status == BackupStatus.AVAILABLE,
        )
        .group_by(Backup.resource_id)
    )
    if resource_id:
        query = query.where(Backup.resource_id == resource_id)
    if resource_type:
        query = query.where(Backup.resource_type == resource_type)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(Backup.resource_id).limit(limit).offset(offset)).all()
    found = [
        ResourceUsage(rid, name, kind, int(count), -(-int(stored) // MiB))
        for rid, name, kind, count, stored in rows
    ]
    return found, total


def backup_metadata(session: Session, actor: Actor, backup_id: str) -> dict[str, Any]:
    """What was recorded about the backed-up resource (ShowMetadata): the vendor's answer is
    JSON documents in strings; fields this service does not record (flavor, ports, IPs) are
    empty. The owner and the projects it is shared with may read it (S14: others get 6200)."""
    backup = visible_backup(session, actor, backup_id)
    disks = children_of(session, backup.id) if backup.parent_id is None else []
    if backup.resource_type != ResourceType.SERVER:
        disks = [backup]
    volumes = [
        json.dumps(
            {
                "id": disk.resource_id,
                "name": disk.resource_name,
                "size": disk.resource_size_gb,
                "bootable": "true" if disk.bootable else "false",
                "availability_zone": disk.resource_az,
                "encrypted": disk.encrypted,
                "backup_id": disk.id,
            }
        )
        for disk in disks
    ]
    server = ""
    if backup.resource_type == ResourceType.SERVER:
        server = json.dumps(
            {
                "id": backup.resource_id,
                "name": backup.resource_name,
                "availability_zone": backup.resource_az,
            }
        )
    backups = [
        {"id": d.id, "resource_id": d.resource_id, "size": d.resource_size_gb} for d in disks
    ]
    return {
        "backup_id": backup.id,
        "backups": json.dumps(backups),
        "server": server,
        "volumes": volumes,
        "flavor": "",
        "floatingips": [],
        "interface": "",
        "ports": [],
        "workspace": "",
    }
