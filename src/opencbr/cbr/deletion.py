"""Deleting backups: the backup leaves every recipient at once (S9); its data goes later.

`delete_backup` marks the backup (and a server backup's children) `deleting` with a
compare-and-swap, removes every share member in the same transaction (freeing recipients'
vault space), and enqueues the job that drops the manifests and frees the owner's space.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor

from .errors import BackupCannotBeDeleted, SharedBackupNotDeletable
from .jobs.payloads import DeleteBackupPayload, start_logged
from .members import revoke_all_members
from .models import Backup, BackupStatus, Vault
from .vault_lock import check_backup_removable
from .visibility import visible_backup

__all__ = ["delete_backup", "mark_deleting"]


def delete_backup(session: Session, actor: Actor, backup_id: str) -> Backup:
    """Start deleting an owned backup: it leaves every recipient now (S9), its data later.

    A project the backup was shared with (any member status) is refused with 6711: it lets
    go of the backup by rejecting the share; anyone else learns nothing (6200, S14)."""
    backup = visible_backup(session, actor, backup_id, lock=True)
    if backup.project_id != actor.project_id:
        raise SharedBackupNotDeletable(backup_id=backup.id)
    if backup.parent_id is not None:
        raise BackupCannotBeDeleted(backup_id=backup.id, reason="it is part of a server backup")
    if backup.status not in (BackupStatus.AVAILABLE, BackupStatus.ERROR):
        raise BackupCannotBeDeleted(backup_id=backup.id, reason=f"it is {backup.status}")
    check_backup_removable(session, backup)
    mark_deleting(session, backup)
    vault = session.get(Vault, backup.vault_id)
    start_logged(
        session,
        DeleteBackupPayload(backup_id=backup.id),
        backup.project_id,
        "delete",
        vault=vault,
        checkpoint_id=backup.checkpoint_id,
        resource=(backup.resource_id, backup.resource_type, backup.resource_name),
        extra={"backup": {"backup_id": backup.id, "backup_name": backup.name}},
    )
    return backup


def mark_deleting(session: Session, backup: Backup) -> None:
    """Compare-and-swap the backup (and its children) to `deleting` and take it from recipients."""
    changed = session.execute(
        update(Backup)
        .where(
            Backup.id == backup.id, Backup.status.in_([BackupStatus.AVAILABLE, BackupStatus.ERROR])
        )
        .values(status=BackupStatus.DELETING, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not changed:
        session.refresh(backup)
        raise BackupCannotBeDeleted(backup_id=backup.id, reason=f"it is {backup.status}")
    session.execute(
        update(Backup)
        .where(Backup.parent_id == backup.id)
        .values(status=BackupStatus.DELETING)
        .execution_options(synchronize_session=False)
    )
    session.refresh(backup)
    revoke_all_members(session, backup, reason="delete")
