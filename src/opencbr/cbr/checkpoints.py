"""Checkpoints: one backup run of a vault, taking one backup per resource as a job.

A checkpoint makes one backup per resource (a server backup has one child disk backup per disk)
in status `protecting` and enqueues one job per resource in the same transaction. The job (see
`jobs/backup.py`) moves it to `available` or `error`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor
from opencbr.core.errors import ValidationFailed
from opencbr.core.ids import is_uuid, new_uuid
from opencbr.evs import service as evs

from .errors import (
    CheckpointNotFound,
    NothingToBackup,
    ResourceNotFound,
    VaultCapacityInsufficient,
    VaultStatusForbids,
)
from .jobs.payloads import BackupPayload, start_logged
from .models import Backup, BackupStatus, Checkpoint, ResourceType, Vault, VaultStatus
from .resources import describe_resource
from .vault_space import free_bytes
from .vaults import get_vault, vault_resources

__all__ = ["CheckpointSpec", "create_checkpoint", "get_checkpoint", "show_checkpoint"]


@dataclass(frozen=True)
class CheckpointSpec:
    vault_id: str
    name: str | None = None
    description: str = ""
    incremental: bool = True
    resources: Sequence[str] | None = None
    auto_trigger: bool = False
    policy_id: str | None = None
    retention_days: int = -1


def create_checkpoint(session: Session, actor: Actor, spec: CheckpointSpec) -> Checkpoint:
    vault = get_vault(session, actor, spec.vault_id, lock=True)
    if vault.status != VaultStatus.AVAILABLE:  # a locked vault keeps taking backups
        raise VaultStatusForbids(vault_id=vault.id, status=vault.status)
    if free_bytes(vault) <= 0:
        raise VaultCapacityInsufficient(
            vault_name=vault.name, vault_id=vault.id, free_mb=0, needed_mb=1
        )
    held = vault_resources(session, vault.id)
    if spec.resources is not None:
        if not spec.resources and held:
            raise ValidationFailed(reason=f"choose at least one {vault.object_type} to back up")
        wanted = set(spec.resources)
        unknown = wanted - {r.resource_id for r in held}
        if unknown:
            raise ResourceNotFound(id=", ".join(sorted(unknown)))
        held = [r for r in held if r.resource_id in wanted]
    if spec.auto_trigger:  # a policy's run leaves suspended resources out (vault_admin)
        held = [r for r in held if not r.suspended]
    if not held:
        raise NothingToBackup(vault_id=vault.id)
    now = utcnow()
    name = spec.name or f"manual_{now:%Y%m%d%H%M%S}"
    if not 1 <= len(name) <= 64:
        raise ValidationFailed(reason="checkpoint name must be 1-64 characters")
    checkpoint = Checkpoint(
        id=new_uuid(),
        project_id=vault.project_id,
        vault_id=vault.id,
        name=name,
        description=spec.description,
        status="protecting",
        incremental=spec.incremental,
        auto_trigger=spec.auto_trigger,
        policy_id=spec.policy_id,
        retention_days=spec.retention_days,
        skipped=[],
    )
    session.add(checkpoint)
    session.flush()
    for resource in held:
        if _busy(session, resource.resource_id):
            checkpoint.skipped = [
                *checkpoint.skipped,
                {
                    "id": resource.resource_id,
                    "type": resource.resource_type,
                    "name": resource.name,
                    "code": "BackupService.6125",
                    "reason": "a backup of this resource is running",
                },
            ]
            continue
        _start_backup(session, vault, checkpoint, resource.resource_id, resource.resource_type)
    session.flush()
    return checkpoint


def _busy(session: Session, resource_id: str) -> bool:
    running = select(Backup.id).where(
        Backup.resource_id == resource_id, Backup.status == BackupStatus.PROTECTING
    )
    return session.scalar(running.limit(1)) is not None


def _new_backup(vault: Vault, checkpoint: Checkpoint, **fields: object) -> Backup:
    backup = Backup(
        id=new_uuid(),
        project_id=vault.project_id,
        region=vault.region,
        vault_id=vault.id,
        checkpoint_id=checkpoint.id,
        status=BackupStatus.PROTECTING,
        incremental=checkpoint.incremental,
        auto_trigger=checkpoint.auto_trigger,
        policy_id=checkpoint.policy_id,
        **fields,
    )
    if checkpoint.retention_days > 0:
        backup.expired_at = utcnow() + timedelta(days=checkpoint.retention_days)
    return backup


def _start_backup(
    session: Session, vault: Vault, checkpoint: Checkpoint, resource_id: str, resource_type: str
) -> Backup:
    info = describe_resource(session, vault.project_id, resource_id, resource_type)
    stamp = f"{checkpoint.name}"
    parent = _new_backup(
        vault,
        checkpoint,
        name=stamp,
        resource_id=info.id,
        resource_name=info.name,
        resource_type=info.type,
        resource_az=info.availability_zone,
        resource_size_gb=info.size_gb,
    )
    session.add(parent)
    disks = (
        [evs.get_disk(session, vault.project_id, resource_id)]
        if resource_type == ResourceType.DISK
        else evs.server_disks(session, resource_id)
    )
    parent.encrypted = any(d.encrypted for d in disks)
    parent.bootable = any(d.bootable for d in disks)
    if resource_type == ResourceType.DISK:
        parent.kms_key_id = disks[0].kms_key_id
    else:
        for disk in disks:
            session.add(
                _new_backup(
                    vault,
                    checkpoint,
                    name=f"{stamp}-{disk.device or disk.id[:8]}",
                    parent_id=parent.id,
                    resource_id=disk.id,
                    resource_name=disk.name,
                    resource_type=ResourceType.DISK,
                    resource_az=disk.availability_zone,
                    resource_size_gb=disk.size_gb,
                    encrypted=disk.encrypted,
                    kms_key_id=disk.kms_key_id,
                    bootable=disk.bootable,
                    device=disk.device,
                )
            )
    session.flush()
    start_logged(
        session,
        BackupPayload(backup_id=parent.id),
        vault.project_id,
        "backup",
        vault=vault,
        checkpoint_id=checkpoint.id,
        policy_id=checkpoint.policy_id or "",
        resource=(info.id, info.type, info.name),
        extra={"backup": {"backup_id": parent.id, "backup_name": parent.name}},
    )
    return parent


def get_checkpoint(session: Session, actor: Actor, checkpoint_id: str) -> Checkpoint:
    checkpoint = None
    if is_uuid(checkpoint_id):
        checkpoint = session.scalar(
            select(Checkpoint).where(
                Checkpoint.id == checkpoint_id, Checkpoint.project_id == actor.project_id
            )
        )
    if checkpoint is None:
        raise CheckpointNotFound(id=checkpoint_id)
    return checkpoint


def show_checkpoint(
    session: Session, actor: Actor, checkpoint_id: str
) -> tuple[Checkpoint, Vault, list[Backup]]:
    """A checkpoint of the caller's, its vault and the top-level backups it made."""
    checkpoint = get_checkpoint(session, actor, checkpoint_id)
    vault = session.get(Vault, checkpoint.vault_id)
    assert vault is not None
    made = session.scalars(
        select(Backup).where(Backup.checkpoint_id == checkpoint.id, Backup.parent_id.is_(None))
    )
    return checkpoint, vault, list(made)
