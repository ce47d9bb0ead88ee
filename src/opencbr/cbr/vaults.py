"""Vaults: create, read, update, delete, associate resources. Their capacity accounting is
`vault_space.py` (its names are also reachable from here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opencbr.core.context import Actor
from opencbr.core.errors import ValidationFailed
from opencbr.core.ids import is_uuid, new_uuid

from .errors import (
    PolicyNotFound,
    ResourceAlreadyProtected,
    ResourceNotFound,
    VaultCapacityInvalid,
    VaultNotEmpty,
    VaultNotFound,
    VaultResourceLimit,
    VaultTypeMismatch,
)
from .jobs.payloads import DeleteVaultPayload
from .models import (
    Backup,
    BackupStatus,
    GiB,
    Member,
    MemberStatus,
    Policy,
    Vault,
    VaultResource,
    VaultStatus,
)
from .resources import OBJECT_TYPES, describe_resource
from .vault_lock import check_lock_change, check_vault_removable
from .vault_space import free_bytes, has_room, lock_vaults, release, reserve

__all__ = [
    "ResourceSpec",
    "VaultFilters",
    "VaultSpec",
    "VaultUpdate",
    "add_resources",
    "create_vault",
    "delete_vault",
    "free_bytes",
    "get_vault",
    "has_room",
    "list_vaults",
    "lock_vaults",
    "release",
    "remove_resources",
    "reserve",
    "update_vault",
    "vault_resources",
]

MAX_RESOURCES = 256
MIN_SIZE_GB, MAX_SIZE_GB = 1, 10_485_760


@dataclass(frozen=True)
class ResourceSpec:
    id: str
    type: str
    name: str = ""
    extra_info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VaultSpec:
    name: str
    object_type: str
    size_gb: int
    protect_type: str = "backup"
    consistent_level: str = "crash_consistent"
    charging_mode: str = "post_paid"
    description: str = ""
    resources: Sequence[ResourceSpec] = ()
    auto_bind: bool = False
    bind_rules: dict[str, Any] = field(default_factory=dict)
    auto_expand: bool = False
    tags: Sequence[dict[str, str]] = ()
    policy_id: str | None = None
    enterprise_project_id: str = "0"


@dataclass(frozen=True)
class VaultUpdate:
    name: str | None = None
    size_gb: int | None = None
    auto_bind: bool | None = None
    bind_rules: dict[str, Any] | None = None
    auto_expand: bool | None = None
    smn_notify: bool | None = None
    threshold: int | None = None
    locked: bool | None = None


@dataclass(frozen=True)
class VaultFilters:
    name: str | None = None
    object_type: str | None = None
    protect_type: str | None = None
    status: str | None = None
    ids: Sequence[str] = ()
    policy_id: str | None = None
    resource_ids: Sequence[str] = ()
    limit: int = 1000
    offset: int = 0


def _check_size(size_gb: int, used_bytes: int = 0) -> None:
    if not MIN_SIZE_GB <= size_gb <= MAX_SIZE_GB:
        raise VaultCapacityInvalid(size=size_gb, reason=f"must be {MIN_SIZE_GB}..{MAX_SIZE_GB} GB")
    if size_gb * GiB < used_bytes:
        raise VaultCapacityInvalid(size=size_gb, reason="smaller than the space already used")


def _check_name(name: str) -> None:
    if not 1 <= len(name) <= 64 or any(c in name for c in "<>&'\"\\"):
        raise ValidationFailed(reason="vault name must be 1-64 characters without <>&'\"\\")


def _check_policy(session: Session, actor: Actor, policy_id: str) -> None:
    """A vault may be created following only a backup policy of its own project: another
    project's policy answers like a missing one, 404 6401, as AssociateVaultPolicy does (S14)."""
    operation_type = None
    if is_uuid(policy_id):
        operation_type = session.scalar(
            select(Policy.operation_type).where(
                Policy.id == policy_id, Policy.project_id == actor.project_id
            )
        )
    if operation_type is None:
        raise PolicyNotFound(id=policy_id)
    if operation_type != "backup":
        raise ValidationFailed(reason="only backup policies apply to backup vaults")


def create_vault(session: Session, actor: Actor, spec: VaultSpec) -> Vault:
    _check_name(spec.name)
    if spec.object_type not in OBJECT_TYPES.values():
        raise ValidationFailed(
            reason=f"billing.object_type must be server or disk, not {spec.object_type!r}"
        )
    if spec.protect_type != "backup":
        raise ValidationFailed(reason="billing.protect_type must be backup")
    _check_size(spec.size_gb)
    if spec.policy_id:
        _check_policy(session, actor, spec.policy_id)
    vault = Vault(
        id=new_uuid(),
        project_id=actor.project_id,
        region=actor.region,
        user_id=actor.user_id,
        name=spec.name,
        description=spec.description,
        object_type=spec.object_type,
        protect_type=spec.protect_type,
        consistent_level=spec.consistent_level,
        charging_mode=spec.charging_mode,
        size_gb=spec.size_gb,
        used_bytes=0,
        auto_bind=spec.auto_bind,
        bind_rules=dict(spec.bind_rules),
        auto_expand=spec.auto_expand,
        tags=list(spec.tags),
        policy_id=spec.policy_id or None,
        enterprise_project_id=spec.enterprise_project_id,
    )
    session.add(vault)
    session.flush()
    if spec.resources:
        add_resources(session, actor, vault.id, spec.resources)
    return vault


# Built once: building a statement takes about as long as running it.
_OWN_VAULT = select(Vault).where(
    Vault.id == bindparam("id"), Vault.project_id == bindparam("project_id")
)
_OWN_VAULT_FOR_UPDATE = _OWN_VAULT.with_for_update()


def get_vault(session: Session, actor: Actor, vault_id: str, *, lock: bool = False) -> Vault:
    """The caller's vault; another project's vault answers like a missing one (S14)."""
    vault = None
    if is_uuid(vault_id):
        query = _OWN_VAULT_FOR_UPDATE if lock else _OWN_VAULT
        vault = session.scalar(query, {"id": vault_id, "project_id": actor.project_id})
    if vault is None or vault.status == VaultStatus.DELETING:
        raise VaultNotFound(id=vault_id)
    return vault


def list_vaults(session: Session, actor: Actor, filters: VaultFilters) -> tuple[list[Vault], int]:
    query = select(Vault).where(
        Vault.project_id == actor.project_id, Vault.status != VaultStatus.DELETING
    )
    if filters.name:
        query = query.where(Vault.name.contains(filters.name, autoescape=True))
    if filters.object_type:
        query = query.where(Vault.object_type == filters.object_type)
    if filters.protect_type:
        query = query.where(Vault.protect_type == filters.protect_type)
    if filters.status:
        query = query.where(Vault.status == filters.status)
    if filters.ids:
        query = query.where(Vault.id.in_(list(filters.ids)))
    if filters.policy_id:
        query = query.where(Vault.policy_id == filters.policy_id)
    if filters.resource_ids:
        holding = select(VaultResource.vault_id).where(
            VaultResource.resource_id.in_(list(filters.resource_ids))
        )
        query = query.where(Vault.id.in_(holding))
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = (
        query.order_by(Vault.created_at.desc(), Vault.id)
        .limit(filters.limit)
        .offset(filters.offset)
    )
    return list(session.scalars(page)), count


def update_vault(session: Session, actor: Actor, vault_id: str, changes: VaultUpdate) -> Vault:
    vault = get_vault(session, actor, vault_id, lock=True)
    check_lock_change(vault, changes.locked)
    if changes.name is not None:
        _check_name(changes.name)
        vault.name = changes.name
    if changes.size_gb is not None:
        _check_size(changes.size_gb, vault.used_bytes)
        vault.size_gb = changes.size_gb
    if changes.threshold is not None and not 1 <= changes.threshold <= 100:
        raise ValidationFailed(reason="threshold must be 1-100")
    for name in ("auto_bind", "bind_rules", "auto_expand", "smn_notify", "threshold", "locked"):
        value = getattr(changes, name)
        if value is not None:
            setattr(vault, name, value)
    session.flush()
    return vault


def vault_resources(session: Session, vault_id: str) -> list[VaultResource]:
    query = select(VaultResource).where(VaultResource.vault_id == vault_id)
    return list(
        session.scalars(query.order_by(VaultResource.created_at, VaultResource.resource_id))
    )


def add_resources(
    session: Session, actor: Actor, vault_id: str, resources: Sequence[ResourceSpec]
) -> list[str]:
    """Associate resources (all or nothing); each resource can be in one vault only."""
    vault = get_vault(session, actor, vault_id, lock=True)
    existing = len(vault_resources(session, vault.id))
    if existing + len(resources) > MAX_RESOURCES or not resources:
        raise VaultResourceLimit(limit=MAX_RESOURCES)
    if len({r.id for r in resources}) != len(resources):
        raise ValidationFailed(reason="a resource is listed twice")
    for spec in resources:
        if OBJECT_TYPES.get(spec.type) != vault.object_type:
            raise VaultTypeMismatch(object_type=vault.object_type, resource_type=spec.type)
        info = describe_resource(session, vault.project_id, spec.id, spec.type)
        if session.get(VaultResource, spec.id) is not None:
            raise ResourceAlreadyProtected(resource_id=spec.id)
        session.add(
            VaultResource(
                resource_id=spec.id,
                vault_id=vault.id,
                resource_type=spec.type,
                name=spec.name or info.name,
                extra_info=dict(spec.extra_info),
            )
        )
    try:
        session.flush()
    except IntegrityError as exc:
        raise ResourceAlreadyProtected(resource_id=", ".join(r.id for r in resources)) from exc
    return [r.id for r in resources]


def remove_resources(
    session: Session, actor: Actor, vault_id: str, resource_ids: Sequence[str]
) -> list[str]:
    vault = get_vault(session, actor, vault_id, lock=True)
    held = {r.resource_id: r for r in vault_resources(session, vault.id)}
    missing = [rid for rid in resource_ids if rid not in held]
    if missing or not resource_ids:
        raise ResourceNotFound(id=", ".join(missing) or "(none given)")
    for rid in resource_ids:
        session.delete(held[rid])
    session.flush()
    return list(resource_ids)


def delete_vault(session: Session, actor: Actor, vault_id: str) -> Vault:
    """Refused while backups in it are busy or it holds accepted shares; else removed by a job."""
    vault = get_vault(session, actor, vault_id, lock=True)
    busy = session.scalar(
        select(func.count())
        .select_from(Backup)
        .where(
            Backup.vault_id == vault.id,
            Backup.status.in_([BackupStatus.PROTECTING, BackupStatus.RESTORING]),
        )
    )
    if busy:
        raise VaultNotEmpty(vault_id=vault.id, reason="backups in it are being made or restored")
    accepted = session.scalar(
        select(func.count())
        .select_from(Member)
        .where(Member.vault_id == vault.id, Member.status == MemberStatus.ACCEPTED)
    )
    if accepted:
        raise VaultNotEmpty(
            vault_id=vault.id, reason="it holds accepted shared backups; reject them first"
        )
    check_vault_removable(session, vault)
    vault.status = VaultStatus.DELETING
    for resource in vault_resources(session, vault.id):
        session.delete(resource)
    session.flush()
    # Backups that turn busy meanwhile are waited for: ten attempts back off over ~13 minutes.
    DeleteVaultPayload(vault_id=vault.id).enqueue(session, vault.project_id, max_attempts=10)
    return vault
