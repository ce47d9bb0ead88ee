"""A backup's own life: its disk backups, renaming it (deleting it: `deletion.py`).

Taking backups is `checkpoints.py`, listing them `listing.py`, who may see one
`visibility.py`; their public names are also reachable from here.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.core.context import Actor
from opencbr.core.errors import ValidationFailed

from .catalogue import enqueue_catalogue
from .checkpoints import CheckpointSpec, create_checkpoint, get_checkpoint
from .listing import BackupFilters, BackupPage, list_backups
from .models import Backup, BackupRecord
from .visibility import (
    Membership,
    memberships,
    owned_backup,
    visible_backup,
    visible_backup_record,
)

__all__ = [
    "BackupFilters",
    "BackupPage",
    "CheckpointSpec",
    "Membership",
    "children_by_parent",
    "children_of",
    "create_checkpoint",
    "get_checkpoint",
    "list_backups",
    "memberships",
    "owned_backup",
    "rename_backup",
    "visible_backup",
    "visible_backup_record",
]


def children_of(session: Session, backup_id: str) -> list[Backup]:
    query = select(Backup).where(Backup.parent_id == backup_id).order_by(Backup.device, Backup.id)
    return list(session.scalars(query))


def children_by_parent(
    session: Session, parent_ids: Sequence[str]
) -> dict[str, list[BackupRecord]]:
    """The disk backups of several server backups, in one query, by server backup."""
    children: dict[str, list[BackupRecord]] = {}
    if not parent_ids:
        return children
    query = (
        select(Backup).where(Backup.parent_id.in_(parent_ids)).order_by(Backup.device, Backup.id)
    )
    for child in session.scalars(query):
        children.setdefault(child.parent_id or "", []).append(child)
    return children


def rename_backup(session: Session, actor: Actor, backup_id: str, name: str) -> Backup:
    backup = owned_backup(session, actor, backup_id, lock=True)
    if not 1 <= len(name) <= 64:
        raise ValidationFailed(reason="backup name must be 1-64 characters")
    backup.name = name
    session.flush()
    enqueue_catalogue(session, backup.id)
    return backup
