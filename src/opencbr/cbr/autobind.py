"""Automatic association (S13): a vault with `auto_bind` takes in the unprotected resources of
its type in its project.

Which resources: disks (disk vault) or servers (server vault) of the vault's project and region
that no vault protects, in a usable status; for a disk vault also not a disk of a server that a
vault protects (a server backup already includes its disks). When `bind_rules.tags` is set, a
resource must carry at least one of those tags (`{"key": k, "value": v}`; an empty value matches
any value of `k`); disks are matched on their tags, servers on their metadata.

A resource lives in one vault only: the primary key of `cbr_vault_resources` decides when two
vaults race for the same resource; the loser skips it. The vault's resource limit holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opencbr.evs.models import Disk, DiskStatus, Server, ServerStatus

from .models import ResourceType, Vault, VaultResource
from .vaults import MAX_RESOURCES

__all__ = ["auto_associate", "matches_bind_rules"]

_UNUSABLE_DISK = (
    DiskStatus.CREATING,
    DiskStatus.ERROR,
    DiskStatus.ERROR_RESTORING,
    DiskStatus.DELETING,
    DiskStatus.ERROR_DELETING,
    DiskStatus.RECYCLED,
)
_UNUSABLE_SERVER = (ServerStatus.BUILD, ServerStatus.ERROR, ServerStatus.DELETED)


def matches_bind_rules(tags: Mapping[str, Any], bind_rules: Mapping[str, Any] | None) -> bool:
    wanted: Sequence[Mapping[str, Any]] = (bind_rules or {}).get("tags") or []
    if not wanted:
        return True
    for rule in wanted:
        key, value = str(rule.get("key", "")), rule.get("value")
        if key in tags and (not value or str(tags[key]) == str(value)):
            return True
    return False


def _candidates(session: Session, vault: Vault) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, name, tags) of the unprotected resources of the vault's type, oldest first."""
    protected = select(VaultResource.resource_id)
    if vault.object_type == "disk":
        disks = select(Disk).where(
            Disk.project_id == vault.project_id,
            Disk.region == vault.region,
            Disk.status.not_in(_UNUSABLE_DISK),
            Disk.id.not_in(protected),
            or_(Disk.server_id.is_(None), Disk.server_id.not_in(protected)),
        )
        found = session.scalars(disks.order_by(Disk.created_at, Disk.id))
        return [(d.id, d.name, dict(d.tags or {})) for d in found]
    servers = select(Server).where(
        Server.project_id == vault.project_id,
        Server.region == vault.region,
        Server.status.not_in(_UNUSABLE_SERVER),
        Server.id.not_in(protected),
    )
    found_servers = session.scalars(servers.order_by(Server.created_at, Server.id))
    return [(s.id, s.name, dict(s.metadata_ or {})) for s in found_servers]


def auto_associate(session: Session, vault: Vault) -> list[str]:
    """Associate the vault's unprotected resources (see the module doc); the ids it took."""
    held = session.scalar(
        select(func.count()).select_from(VaultResource).where(VaultResource.vault_id == vault.id)
    )
    room = MAX_RESOURCES - int(held or 0)
    resource_type = ResourceType.DISK if vault.object_type == "disk" else ResourceType.SERVER
    taken: list[str] = []
    for resource_id, name, tags in _candidates(session, vault):
        if len(taken) >= room:
            break
        if not matches_bind_rules(tags, vault.bind_rules):
            continue
        try:
            with session.begin_nested():
                session.add(
                    VaultResource(
                        resource_id=resource_id,
                        vault_id=vault.id,
                        resource_type=resource_type.value,
                        name=name,
                        extra_info={},
                        auto_protect=True,
                    )
                )
        except IntegrityError:  # another vault took it meanwhile
            continue
        taken.append(resource_id)
    return taken
