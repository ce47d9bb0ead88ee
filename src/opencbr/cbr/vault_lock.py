"""The vault lock (`UpdateVault` with `locked: true`, the WORM switch governance tools set).

One rule: a locked vault keeps working (it takes backups and accepts shares) but nothing
removes one of **its own** backups before that backup's retention ends: not a user's delete,
not the policy's retention, not deleting the vault. A backup's retention ends at its
`expired_at`; a backup without one (kept "forever", or by a count of backups) is kept for as
long as the vault is locked, and a lock cannot be lifted. Shares the vault accepted are the
owner's data: they still leave it when the owner cancels or deletes them.

`deletion.delete_backup` is the one way a backup is removed (the user's call, retention and
expiry go through it), so the check there covers them all; `vaults.delete_vault` refuses a
locked vault that still keeps backups.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from opencbr.core.clock import api_time, utcnow

from .errors import BackupKeptByLock, VaultLockPermanent, VaultNotEmpty, VaultStatusForbids
from .models import Backup, BackupStatus, Vault, VaultStatus

__all__ = ["check_backup_removable", "check_lock_change", "check_vault_removable"]


def _kept(backup: Backup, now: datetime) -> bool:
    return backup.expired_at is None or backup.expired_at > now


def check_backup_removable(session: Session, backup: Backup, now: datetime | None = None) -> None:
    """Refuse to remove a backup its own locked vault still keeps (BackupService.6220)."""
    vault = session.get(Vault, backup.vault_id)
    if vault is None or not vault.locked or backup.project_id != vault.project_id:
        return
    if _kept(backup, now or utcnow()):
        until = api_time(backup.expired_at) if backup.expired_at else "the vault is unlocked"
        raise BackupKeptByLock(backup_id=backup.id, vault_id=vault.id, until=until)


def check_vault_removable(session: Session, vault: Vault, now: datetime | None = None) -> None:
    """Refuse to delete a locked vault that still keeps backups of its own (6111)."""
    if not vault.locked:
        return
    kept = session.scalar(
        select(func.count())
        .select_from(Backup)
        .where(
            Backup.vault_id == vault.id,
            Backup.project_id == vault.project_id,
            Backup.parent_id.is_(None),
            Backup.status != BackupStatus.DELETING,
            or_(Backup.expired_at.is_(None), Backup.expired_at > (now or utcnow())),
        )
    )
    if kept:
        raise VaultNotEmpty(
            vault_id=vault.id,
            reason=f"it is locked and keeps {kept} backup(s) whose retention has not ended",
        )


def check_lock_change(vault: Vault, locked: bool | None) -> None:
    """A lock is for good (6112); a vault being deleted cannot be locked (6113)."""
    if locked is None or locked == vault.locked:
        return
    if not locked:
        raise VaultLockPermanent(vault_id=vault.id)
    if vault.status == VaultStatus.DELETING:
        raise VaultStatusForbids(vault_id=vault.id, status=vault.status)
