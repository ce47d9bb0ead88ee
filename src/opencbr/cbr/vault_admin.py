"""Vault operations over many vaults, backups or resources at once: notification settings for
every vault of a project (BatchUpdateVault), the expiry of a vault's backups
(UpdateExpirationTime), pausing automatic backups of resources (SetVaultResource) and moving
resources to another vault (MigrateVaultResource).

Rules:
- An expiry date is a whole day in the caller's time zone: backups expire at the end of it
  (stored in UTC). It must be a future day. In a locked vault it may only lengthen each
  backup's retention (`vault_lock`): a request that would shorten one changes nothing (6220).
- A suspended resource is left out of the vault's policy backups (a manual backup still takes
  it); `unsuspend` puts it back.
- Migrating moves the resources' association, all or nothing, to another vault of the caller
  of the same type with room for them in its count; the backups already made stay in the
  source vault (nothing is copied or deleted, so a locked source keeps its backups).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor
from opencbr.core.errors import ValidationFailed

from . import oplogs
from .catalogue import enqueue_catalogue
from .errors import BackupKeptByLock, ResourceNotFound, VaultResourceLimit, VaultTypeMismatch
from .models import Backup, BackupStatus, Vault, VaultResource, VaultStatus
from .vaults import MAX_RESOURCES, get_vault, vault_resources

__all__ = [
    "ExpiryChange",
    "batch_update",
    "migrate_resources",
    "set_suspended",
    "update_expiration",
]

_ZONE = re.compile(r"^UTC([+-])(\d{2}):(\d{2})$")


def batch_update(
    session: Session, actor: Actor, *, smn_notify: bool | None, threshold: int | None
) -> list[str]:
    """Set notification and threshold on every vault of the caller's project."""
    if threshold is not None and not 1 <= threshold <= 100:
        raise ValidationFailed(reason="threshold must be 1-100")
    values: dict[str, object] = {}
    if smn_notify is not None:
        values["smn_notify"] = smn_notify
    if threshold is not None:
        values["threshold"] = threshold
    query = select(Vault.id).where(
        Vault.project_id == actor.project_id, Vault.status != VaultStatus.DELETING
    )
    ids = list(session.scalars(query.order_by(Vault.created_at, Vault.id)))
    if values and ids:
        session.execute(
            update(Vault).where(Vault.id.in_(ids)).values(**values),
            execution_options={"synchronize_session": False},
        )
    return ids


def _end_of_day(day: str, zone: str) -> datetime:
    """The end of `day` (YYYY-MM-DD) in `zone` (UTC+08:00), as naive UTC."""
    try:
        parsed = date.fromisoformat(day) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", day) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed == date.max:  # the day after it has no date
        raise ValidationFailed(reason="expect_expiration_date must be a date YYYY-MM-DD")
    match = _ZONE.match(zone)
    if match is None or int(match.group(2)) > 14 or int(match.group(3)) > 59:
        raise ValidationFailed(reason="time_zone must look like UTC+08:00")
    sign = 1 if match.group(1) == "+" else -1
    offset = sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
    local_end = datetime.combine(parsed + timedelta(days=1), time())
    return local_end - offset


@dataclass(frozen=True)
class ExpiryChange:
    count: int
    day: str
    oplog_id: str


def update_expiration(
    session: Session, actor: Actor, vault_id: str, day: str, zone: str
) -> ExpiryChange:
    """Every available backup of the vault's own expires at the end of `day` in `zone`."""
    vault = get_vault(session, actor, vault_id, lock=True)
    expires = _end_of_day(day, zone)
    if expires <= utcnow():
        raise ValidationFailed(reason="expect_expiration_date must be a future day")
    own = (
        Backup.vault_id == vault.id,
        Backup.project_id == vault.project_id,
        Backup.parent_id.is_(None),
        Backup.status == BackupStatus.AVAILABLE,
    )
    if vault.locked:
        shortened = session.scalar(
            select(Backup.id)
            .where(*own, or_(Backup.expired_at.is_(None), Backup.expired_at > expires))
            .limit(1)
        )
        if shortened is not None:
            raise BackupKeptByLock(
                backup_id=shortened, vault_id=vault.id, until="its current expiry"
            )
    ids = list(session.scalars(select(Backup.id).where(*own)))
    if ids:
        session.execute(
            update(Backup)
            .where(or_(Backup.id.in_(ids), Backup.parent_id.in_(ids)))
            .values(expired_at=expires, updated_at=utcnow()),
            execution_options={"synchronize_session": False},
        )
    for backup_id in ids:  # a recovery must bring back the expiry a vault lock keeps to
        enqueue_catalogue(session, backup_id)
    extra = {"update_expiration_time": {"affected_backups_count": len(ids), "expiration_day": day}}
    log = oplogs.completed(vault.project_id, "update_expiration_time", vault=vault, extra=extra)
    oplogs.record(session, log)
    return ExpiryChange(len(ids), day, str(log["id"]))


def _held(session: Session, vault: Vault, resource_ids: Sequence[str]) -> list[VaultResource]:
    if not resource_ids or len(set(resource_ids)) != len(resource_ids):
        raise ValidationFailed(reason="resource_ids must name each resource once")
    held = {r.resource_id: r for r in vault_resources(session, vault.id)}
    missing = [rid for rid in resource_ids if rid not in held]
    if missing:
        raise ResourceNotFound(id=", ".join(missing))
    return [held[rid] for rid in resource_ids]


def set_suspended(
    session: Session, actor: Actor, vault_id: str, resource_ids: Sequence[str], action: str
) -> list[str]:
    """`suspend` leaves the resources out of policy backups; `unsuspend` takes them back."""
    if action not in ("suspend", "unsuspend"):
        raise ValidationFailed(reason="action must be suspend or unsuspend")
    vault = get_vault(session, actor, vault_id, lock=True)
    for resource in _held(session, vault, resource_ids):
        resource.suspended = action == "suspend"
    session.flush()
    return list(resource_ids)


def migrate_resources(
    session: Session,
    actor: Actor,
    vault_id: str,
    destination_vault_id: str,
    resource_ids: Sequence[str],
) -> list[str]:
    """Move the resources' association to another vault of the caller (all or nothing)."""
    if destination_vault_id == vault_id:
        raise ValidationFailed(reason="destination_vault_id is the vault itself")
    # Both vaults locked in one order, so two opposite migrations cannot deadlock.
    first, second = sorted((vault_id, destination_vault_id))
    locked = {v: get_vault(session, actor, v, lock=True) for v in (first, second)}
    source, destination = locked[vault_id], locked[destination_vault_id]
    moving = _held(session, source, resource_ids)
    if destination.object_type != source.object_type:
        raise VaultTypeMismatch(
            object_type=destination.object_type, resource_type=moving[0].resource_type
        )
    if len(vault_resources(session, destination.id)) + len(moving) > MAX_RESOURCES:
        raise VaultResourceLimit(limit=MAX_RESOURCES)
    for resource in moving:
        resource.vault_id = destination.id
    session.flush()
    return list(resource_ids)
