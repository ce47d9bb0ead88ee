"""Who may see a backup: the one place that says so (S14).

A project sees the backups it owns and those shared with it (any member status); it may
restore or build from a shared one only once it accepted it. Every call on one backup, the
listing's rows and restore read a backup through here.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVarTuple

from sqlalchemy import Select, bindparam, or_, select
from sqlalchemy.orm import Session

from opencbr.core.context import Actor
from opencbr.core.db import rows_of
from opencbr.core.ids import is_uuid

from .errors import BackupNotFound, ShareNotAllowed
from .models import Backup, BackupRecord, Member, MemberStatus

__all__ = [
    "RECORD_FIELDS",
    "ListedRecord",
    "Membership",
    "as_record",
    "memberships",
    "owned_backup",
    "require_accepted",
    "visible_backup",
    "visible_backup_record",
]


class Membership(NamedTuple):
    """A recipient's share of a backup: its member status and the vault it accepted it into."""

    status: str
    vault_id: str | None


# A backup's columns, and the caller's member status and vault of it (NULL for the owner):
# what a listing (see `_side`) and ShowBackup (an outer join on the member's unique (backup,
# recipient) key) show. They are read as rows, not ORM objects (see `BackupRecord`).
_RECORD_COLUMNS = (
    *Backup.__table__.c,
    Member.__table__.c.status.label("member_status"),
    Member.__table__.c.vault_id.label("member_vault_id"),
)


# Each view reads about 25 of its fields, and a named tuple's field reads many times faster
# than a `Row`'s (bench/README.md).
RECORD_FIELDS = [column.key for column in _RECORD_COLUMNS]
_RecordTuple = namedtuple("_RecordTuple", RECORD_FIELDS)  # type: ignore[misc]
# A listed record also carries the count of the whole listing (the same in every row).
ListedRecord = namedtuple("ListedRecord", [*RECORD_FIELDS, "listing_count"])  # type: ignore[misc]


def as_record(
    row: Sequence[Any], kind: Any = _RecordTuple
) -> tuple[BackupRecord, Membership | None]:
    record: Any = kind._make(row)  # its fields are the statement's: a BackupRecord
    status = record.member_status
    share = None if status is None else Membership(status, record.member_vault_id)
    return record, share


_Ts = TypeVarTuple("_Ts")


def _visible_by_id(query: Select[*_Ts]) -> Select[*_Ts]:
    """`query` narrowed to the backup `:id` if the project `:project_id` owns it or it was
    shared with that project (S14), through an outer join on the member's unique (backup,
    recipient) key: an IN over the recipient's members made PostgreSQL hash all of them for
    each call."""
    mine = (Member.backup_id == Backup.id) & (Member.dest_project_id == bindparam("project_id"))
    return query.outerjoin(Member, mine).where(
        Backup.id == bindparam("id"),
        or_(Backup.project_id == bindparam("project_id"), Member.id.is_not(None)),
    )


# Built once (every call on a backup runs one): building a statement and its cache key costs
# about as much as running it. The lock is on the backup alone.
_VISIBLE_BACKUP = _visible_by_id(select(Backup))
_VISIBLE_BACKUP_FOR_UPDATE = _VISIBLE_BACKUP.with_for_update(of=Backup)
_VISIBLE_RECORD = _visible_by_id(select(*_RECORD_COLUMNS))
_MEMBERSHIPS = select(Member.backup_id, Member.status, Member.vault_id).where(
    Member.backup_id.in_(bindparam("backup_ids", expanding=True)),
    Member.dest_project_id == bindparam("project_id"),
)


def memberships(
    session: Session, project_id: str, backup_ids: Sequence[str]
) -> dict[str, Membership]:
    """The project's shares of backups shared with it, by backup id, from a statement built
    once: building an IN query and its cache key costs about as much as running it."""
    if not backup_ids:
        return {}
    values = {"backup_ids": backup_ids, "project_id": project_id}
    rows = rows_of(session).execute(_MEMBERSHIPS, values)
    return {backup_id: Membership(status, vault_id) for backup_id, status, vault_id in rows}


def visible_backup(session: Session, actor: Actor, backup_id: str, *, lock: bool = False) -> Backup:
    """A backup the caller owns or was shared with it (any member status); else 6200 (S14)."""
    backup = None
    if is_uuid(backup_id):
        query = _VISIBLE_BACKUP_FOR_UPDATE if lock else _VISIBLE_BACKUP
        backup = session.scalar(query, {"id": backup_id, "project_id": actor.project_id})
    if backup is None:
        raise BackupNotFound(id=backup_id)
    return backup


def visible_backup_record(
    session: Session, actor: Actor, backup_id: str
) -> tuple[BackupRecord, Membership | None]:
    """A backup as `visible_backup` finds it, to show, with the caller's share of it (None for
    its owner), in one statement."""
    row = None
    if is_uuid(backup_id):
        parameters = {"id": backup_id, "project_id": actor.project_id}
        row = rows_of(session).execute(_VISIBLE_RECORD, parameters).first()
    if row is None:
        raise BackupNotFound(id=backup_id)
    return as_record(row)


def owned_backup(session: Session, actor: Actor, backup_id: str, *, lock: bool = False) -> Backup:
    backup = visible_backup(session, actor, backup_id, lock=lock)
    if backup.project_id != actor.project_id:
        raise BackupNotFound(id=backup_id)
    return backup


def require_accepted(session: Session, actor: Actor, backup: Backup) -> None:
    """A visible backup the caller may restore or build from: its own, or one it accepted
    into one of its vaults (S5); else 6707."""
    if backup.project_id == actor.project_id:
        return
    share = memberships(session, actor.project_id or "", [backup.id]).get(backup.id)
    if share is None or share.status != MemberStatus.ACCEPTED:
        raise ShareNotAllowed(reason=f"accept backup {backup.id} into one of your vaults first")
