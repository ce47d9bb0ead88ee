"""Restoring backups and making new disks and servers from them (the control-plane half).

Each call checks the rules, moves the target resources to a busy status with compare-and-swap
updates and enqueues the job that moves the bytes (`jobs/restore.py`, `jobs/disk_from_backup.py`,
`jobs/server_from_backup.py`), all in one transaction.

Who may use a backup: its owner, or a project that accepted it (S7). A pending or rejected
share is visible but not usable. An encrypted backup additionally needs the KMS permission
on its key; for another account that is a grant (S10), checked here so that the refusal is
immediate and names the key and the missing grant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor, Runtime
from opencbr.core.errors import AppError, ValidationFailed
from opencbr.core.jobs import Job
from opencbr.evs import service as evs
from opencbr.evs.errors import DiskNotFound, DiskStatusConflict, ServerNotFound
from opencbr.evs.models import Disk, DiskStatus, Server, ServerStatus
from opencbr.evs.servers import DiskChoice, ServerSpec, new_server_record
from opencbr.evs.service import DiskSpec

from .backups import children_of
from .dataplane import open_scope
from .errors import (
    BackupNotRestorable,
    EncryptedBackupNeedsGrant,
    RestoreDiskNotFound,
    RestoreServerNotFound,
    RestoreTargetInvalid,
    RestoreTargetTooSmall,
    ShareNotAllowed,
    VaultStatusForbids,
)
from .jobs.payloads import (
    DiskFromBackupPayload,
    DiskTarget,
    RestoredDisk,
    RestorePayload,
    ServerFromBackupPayload,
    start_logged,
)
from .models import (
    Backup,
    BackupStatus,
    ResourceType,
    StoreScope,
    Vault,
    VaultStatus,
)
from .visibility import require_accepted, visible_backup

__all__ = [
    "RestoreTarget",
    "disk_from_backup",
    "restore_backup",
    "server_from_backup",
    "usable_backup",
]


@dataclass(frozen=True)
class RestoreTarget:
    backup_id: str
    volume_id: str


def usable_backup(session: Session, runtime: Runtime, actor: Actor, backup_id: str) -> Backup:
    """A backup the caller may restore or build from: owned or accepted, available, and (if
    encrypted) with the KMS permission on its key."""
    backup = visible_backup(session, actor, backup_id)
    require_accepted(session, actor, backup)
    if backup.status != BackupStatus.AVAILABLE:
        raise BackupNotRestorable(backup_id=backup.id, status=backup.status)
    if backup.encrypted:
        _check_key_access(session, runtime, actor, backup)
    return backup


def _check_key_access(session: Session, runtime: Runtime, actor: Actor, backup: Backup) -> None:
    rows = [backup, *children_of(session, backup.id)]
    for row in rows:
        if not row.scope_id:
            continue
        scope = session.get(StoreScope, row.scope_id)
        assert scope is not None
        try:
            open_scope(session, runtime, actor, scope)
        except AppError as exc:
            if exc.code.startswith("KMS."):
                raise EncryptedBackupNeedsGrant(
                    backup_id=backup.id,
                    key_id=scope.kms_key_id,
                    domain_id=actor.domain_id,
                    operation="decrypt-datakey",
                ) from exc
            raise


def _inherited_key(actor: Actor, backup: Backup, row: Backup, named: str | None) -> str | None:
    """The KMS key a new disk from an encrypted backup inherits, if any (S9, S10).

    The owner's new disk stays under the backup's key. A recipient's does not: a disk it makes
    holds its own data, so it is encrypted under the key the recipient names, else its
    project's default disk key. The grant on the owner's key is needed only to read the backup;
    revoking it later stops further use of the backup, never the disks already made."""
    if not row.encrypted or named or backup.project_id != actor.project_id:
        return None
    return row.kms_key_id or None


def _disk_rows(session: Session, backup: Backup) -> list[Backup]:
    return (
        [backup] if backup.resource_type == ResourceType.DISK else children_of(session, backup.id)
    )


def restore_backup(
    session: Session,
    runtime: Runtime,
    actor: Actor,
    backup_id: str,
    targets: Sequence[RestoreTarget] = (),
    server_id: str | None = None,
) -> Job:
    """RestoreBackup onto the original disk(s) or the given ones; they must be detached or the
    server stopped, and each at least as large as what it receives."""
    backup = usable_backup(session, runtime, actor, backup_id)
    if backup.project_id != actor.project_id:
        raise ShareNotAllowed(
            reason="a shared backup is used by creating new disks or servers from it"
        )
    vault = session.get(Vault, backup.vault_id)
    if vault is None or vault.status == VaultStatus.DELETING:
        # The vault's deletion job drops every backup in it; a restore must not hold one.
        raise VaultStatusForbids(
            vault_id=backup.vault_id, status=vault.status if vault else "deleted"
        )
    rows = _disk_rows(session, backup)
    by_backup = {t.backup_id: t.volume_id for t in targets}
    server = None
    if backup.resource_type == ResourceType.SERVER:
        server = _target_server(session, actor, server_id or backup.resource_id)
        if server.status != ServerStatus.SHUTOFF:
            raise RestoreTargetInvalid(
                backup_id=backup.id, reason=f"server {server.id} must be stopped first"
            )
    pairs = []
    for row in rows:
        volume_id = by_backup.get(row.id) or (
            targets[0].volume_id if targets and len(rows) == 1 else row.resource_id
        )
        if server is not None and server.id != backup.resource_id and row.id not in by_backup:
            raise RestoreTargetInvalid(
                backup_id=backup.id,
                reason=f"server {server.id} is not the backed-up server; give a mapping of "
                f"disk backup {row.id} to one of its disks",
            )
        disk = _target_disk(session, actor, volume_id)
        _check_target_disk(backup, disk, server)
        if disk.size_gb < row.resource_size_gb:
            raise RestoreTargetTooSmall(
                volume_id=disk.id, target_gb=disk.size_gb, backup_gb=row.resource_size_gb
            )
        allowed = [DiskStatus.AVAILABLE, DiskStatus.ERROR_RESTORING]
        if backup.resource_type == ResourceType.SERVER:
            allowed.append(DiskStatus.IN_USE)
        try:
            evs.transition_disk(session, disk, allowed, DiskStatus.RESTORING_BACKUP)
        except DiskStatusConflict as exc:
            reason = f"disk {disk.id} is {disk.status}"
            raise RestoreTargetInvalid(backup_id=backup.id, reason=reason) from exc
        pairs.append(
            {
                "backup_id": row.id,
                "disk_id": disk.id,
                "previous": "in-use" if disk.server_id else "available",
            }
        )
    _mark(session, backup, BackupStatus.AVAILABLE, BackupStatus.RESTORING)
    payload = RestorePayload(
        backup_id=backup.id,
        project_id=actor.project_id or "",
        targets=[RestoredDisk(**pair) for pair in pairs],
    )
    return start_logged(
        session,
        payload,
        actor.project_id or "",
        "restore",
        vault=vault,
        checkpoint_id=backup.checkpoint_id,
        resource=(backup.resource_id, backup.resource_type, backup.resource_name),
        extra={
            "restore": {
                "backup_id": backup.id,
                "backup_name": backup.name,
                "target_resource_ids": [p["disk_id"] for p in pairs],
            }
        },
    )


def _target_server(session: Session, actor: Actor, server_id: str) -> Server:
    """The caller's server to restore onto, in the CBR error family (7100)."""
    try:
        return evs.get_server(session, actor.project_id or "", server_id)
    except ServerNotFound:
        raise RestoreServerNotFound(id=server_id) from None


def _target_disk(session: Session, actor: Actor, volume_id: str) -> Disk:
    """The caller's disk to restore onto, locked, in the CBR error family (7000)."""
    try:
        return evs.get_disk(session, actor.project_id or "", volume_id, lock=True)
    except DiskNotFound:
        raise RestoreDiskNotFound(id=volume_id) from None


def _check_target_disk(backup: Backup, disk: Disk, server: Server | None) -> None:
    """A restore writes only to detached disks or, for a server backup, the stopped server's."""
    if disk.server_id is None or (server is not None and disk.server_id == server.id):
        return
    reason = f"disk {disk.id} is attached to server {disk.server_id}; detach it first"
    if server is not None:
        reason = (
            f"disk {disk.id} is attached to server {disk.server_id}, not to server {server.id}; "
            "detach it or map another disk"
        )
    raise RestoreTargetInvalid(backup_id=backup.id, reason=reason)


def _mark(session: Session, backup: Backup, expected: str, to: str) -> None:
    changed = session.execute(
        update(Backup)
        .where(Backup.id == backup.id, Backup.status == expected)
        .values(status=to, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not changed:
        session.refresh(backup)
        raise BackupNotRestorable(backup_id=backup.id, status=backup.status)
    session.refresh(backup)


def disk_from_backup(
    session: Session, runtime: Runtime, actor: Actor, spec: DiskSpec
) -> tuple[Disk, Job]:
    """EVS CreateVolume with `backup_id`: a new disk holding the backup's bytes (S7, S10).

    The new disk's size defaults to the backup's; an encrypted backup gives an encrypted disk,
    under the key the caller names, else the backup's own key for its owner and the caller's
    default disk key for a recipient (`_inherited_key`)."""
    backup = usable_backup(session, runtime, actor, spec.backup_id or "")
    if backup.resource_type != ResourceType.DISK:
        raise ValidationFailed(
            reason=f"backup {backup.id} is a server backup; create a server from it"
        )
    size = spec.size_gb or backup.resource_size_gb
    if size < backup.resource_size_gb:
        raise RestoreTargetTooSmall(
            volume_id="(new)", target_gb=size, backup_gb=backup.resource_size_gb
        )
    inherit = _inherited_key(actor, backup, backup, spec.kms_key_id)
    disk_spec = DiskSpec(
        **{
            **spec.__dict__,
            "size_gb": size,
            "encrypted": backup.encrypted or spec.encrypted,
            "bootable": backup.bootable,
        }
    )
    disk = evs.create_disk_record(
        session, runtime, actor, disk_spec, source_backup_id=backup.id, inherit_kms_key_id=inherit
    )
    payload = DiskFromBackupPayload(
        backup_id=backup.id, disk_id=disk.id, project_id=actor.project_id or ""
    )
    return disk, payload.enqueue(session, actor.project_id)


def server_from_backup(
    session: Session,
    runtime: Runtime,
    actor: Actor,
    backup_id: str,
    name: str,
    availability_zone: str | None = None,
    kms_key_id: str | None = None,
) -> tuple[Server, Job]:
    """A new server from a server backup: one new disk per disk backed up, same devices."""
    backup = usable_backup(session, runtime, actor, backup_id)
    if backup.resource_type != ResourceType.SERVER:
        raise ValidationFailed(reason=f"backup {backup.id} is a disk backup; create a disk from it")
    rows = children_of(session, backup.id)
    zone = availability_zone or backup.resource_az or "az1"
    disks = []
    for row in rows:
        inherit = _inherited_key(actor, backup, row, kms_key_id)
        spec = DiskSpec(
            name=f"{name}-{(row.device or '/dev/vd?').rsplit('/', 1)[-1]}",
            size_gb=row.resource_size_gb,
            availability_zone=zone,
            volume_type="SAS",
            encrypted=row.encrypted or None,
            kms_key_id=kms_key_id if row.encrypted else None,
            bootable=row.bootable,
        )
        disks.append(
            evs.create_disk_record(
                session, runtime, actor, spec, source_backup_id=row.id, inherit_kms_key_id=inherit
            )
        )
    if not disks:
        raise BackupNotRestorable(backup_id=backup.id, status="empty")
    system = next((d for d in disks if d.bootable), disks[0])
    data = [d for d in disks if d is not system]
    server = new_server_record(
        session,
        actor,
        ServerSpec(name=name, system_disk=DiskChoice(), availability_zone=zone),
        system,
        data,
        source_backup_id=backup.id,
    )
    payload = ServerFromBackupPayload(
        backup_id=backup.id,
        server_id=server.id,
        project_id=actor.project_id or "",
        targets=[
            DiskTarget(backup_id=row.id, disk_id=disk.id)
            for row, disk in zip(rows, disks, strict=True)
        ],
    )
    return server, payload.enqueue(session, actor.project_id)
