"""Sharing a backup with other projects of the same region (rules S1-S9, S12-S15).

State machine of a member (one share of one backup with one destination project):

    (none) --add (owner)--> pending
    pending  --accept (recipient, own vault with room)--> accepted
    pending  --reject (recipient)--> rejected
    accepted --reject / reset to pending (recipient)--> rejected / pending   (frees the space)
    accepted --accept into another vault (recipient)--> accepted             (moves the space)
    rejected --accept / reset to pending (recipient)--> accepted / pending
    any --cancel (owner) or backup deleted--> (none); an accepted one frees its vault space

`TRANSITIONS` is that table; asking for the status a member already has is a no-op.

Concurrency (one unit of work per call, nothing commits here):
- every call locks the backup row first (`SELECT ... FOR UPDATE` on PostgreSQL; on SQLite
  transactions begin IMMEDIATE and run one at a time), so adding members, accepting,
  cancelling and deleting the backup never interleave for one backup; the 10-member count is
  read under that lock, and a unique constraint on (backup, project) holds uniqueness anyway;
- a status change is a compare-and-swap on the member's current status;
- capacity is reserved with a conditional update of the recipient's vault row
  (`vault_space.reserve`), so concurrent accepts of different backups never overfill a vault (S6).
Lock order is always backup -> member -> vault, the same as deleting a backup.

The owner's side is here, the recipient's in `member_status.py`, what both record and hold in
`member_ledger.py`.

Refusals use the reference's codes: 6700-6714, 6105 (vault not visible), 6114 (no room),
9900 (malformed request). A refused call changes nothing: the caller's transaction rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opencbr.core.context import Actor
from opencbr.core.db import rows_of
from opencbr.core.errors import ValidationFailed
from opencbr.core.ids import is_hex32, new_uuid
from opencbr.iam.models import Project

from .catalogue import enqueue_catalogue
from .errors import (
    MemberExists,
    MemberLimitReached,
    MemberNotFound,
    ReceivedBackupNotShareable,
    RecipientProjectInvalid,
    ShareNotAllowed,
    ShareStatusForbidden,
    ShareTypeUnsupported,
)
from .member_ledger import log_share, refuse_if_vault_deleting, release_share, vault_of
from .member_status import (
    TRANSITIONS,
    AcceptChoice,
    accept_choices,
    share_size,
    update_member_status,
)
from .models import Backup, BackupStatus, Member, MemberStatus, ResourceType
from .vault_space import lock_vaults
from .visibility import visible_backup

__all__ = [
    "MALFORMED_RECIPIENT",
    "MAX_MEMBERS",
    "TRANSITIONS",
    "AcceptChoice",
    "MemberFilters",
    "accept_choices",
    "add_members",
    "check_recipient_format",
    "delete_member",
    "find_member",
    "list_members",
    "revoke_all_members",
    "share_size",
    "update_member_status",
]

MAX_MEMBERS = 10
SHAREABLE = {ResourceType.SERVER.value, ResourceType.DISK.value}


# --- the owner's side: add, list, cancel ------------------------------------------------------


def _owned_for_sharing(
    session: Session, actor: Actor, backup_id: str, action: str, lock: bool = True
) -> Backup:
    """The caller's own backup, locked unless only read (S1). A backup it only received
    answers 6714 when it tries to share it on and 6707 for the owner's other calls; others'
    backups answer 6200."""
    backup = visible_backup(session, actor, backup_id, lock=lock)
    if backup.project_id != actor.project_id:
        if action == "share":
            raise ReceivedBackupNotShareable(backup_id=backup.id)
        raise ShareNotAllowed(reason=f"only the project that owns backup {backup.id} can {action}")
    return backup


# Lookups of every share call, built once (see `member_ledger._VAULT`).
_PROJECT = select(Project.id, Project.enabled, Project.region).where(Project.id == bindparam("id"))
_RECIPIENTS = select(Member.dest_project_id).where(Member.backup_id == bindparam("backup_id"))


# Why a project named as a recipient is refused (code 6704); the format is checked first, so
# that a form can check it at once, before anything is read.
MALFORMED_RECIPIENT = "a project ID is 32 lower-case hexadecimal characters"


def check_recipient_format(project_id: str) -> None:
    """Refuse a recipient whose ID is malformed (6704), as `add_members` would, without
    reading anything: a form checks each ID as it is entered. Whether the project exists
    and is in the backup's region is known only when the members are added."""
    if not is_hex32(project_id):
        raise RecipientProjectInvalid(project_id=project_id, reason=MALFORMED_RECIPIENT)


def _refusal(session: Session, backup: Backup, project_id: str) -> str | None:
    """Why `project_id` cannot receive the backup, or None if it can."""
    if not is_hex32(project_id):
        return MALFORMED_RECIPIENT
    project = rows_of(session).execute(_PROJECT, {"id": project_id}).first()
    if project is None or not project.enabled or project.region != backup.region:
        return f"no such project in region {backup.region}"
    if project_id == backup.project_id:
        return "it owns the backup"
    return None


def _cannot_receive(refused: list[tuple[str, str]]) -> RecipientProjectInvalid:
    """One 6704 naming every refused project (or account), each with its reason, so that a
    caller can mend them all at once; a single one reads as the error's own template."""
    names = ", ".join(name for name, _ in refused)
    by_reason: dict[str, list[str]] = {}
    for name, reason in refused:
        by_reason.setdefault(reason, []).append(name)
    if len(by_reason) == 1:
        reason = refused[0][1]
    else:
        reason = "; ".join(f"{', '.join(group)}: {why}" for why, group in by_reason.items())
    if len(refused) == 1:
        return RecipientProjectInvalid(project_id=names, reason=reason)
    return RecipientProjectInvalid(
        f"Projects {names} cannot receive this backup: {reason}.", project_id=names, reason=reason
    )


def _account_projects(session: Session, backup: Backup, domain_id: str) -> list[str]:
    """Every enabled project of an account in the backup's region, but the owner's."""
    if not is_hex32(domain_id):
        return []
    return list(
        session.scalars(
            select(Project.id)
            .where(
                Project.domain_id == domain_id,
                Project.region == backup.region,
                Project.enabled.is_(True),
                Project.id != backup.project_id,
            )
            .order_by(Project.id)
        )
    )


def _recipients(
    session: Session,
    backup: Backup,
    project_ids: Sequence[str],
    domain_ids: Sequence[str],
    existing: set[str],
) -> list[str]:
    """New destination projects (S4): each named project must be new; an account adds those
    of its projects in the region that are not members yet (at least one). A refusal names
    every project (6704), else every member already (6703), not only the first."""
    if len(set(project_ids)) != len(project_ids) or len(set(domain_ids)) != len(domain_ids):
        raise ValidationFailed(reason="a project or account is listed twice")
    refused = [(p, why) for p in project_ids if (why := _refusal(session, backup, p))]
    accounts = {d: _account_projects(session, backup, d) for d in domain_ids}
    refused += [
        (d, f"no project of that account in region {backup.region}")
        for d, found in accounts.items()
        if not found
    ]
    if refused:
        raise _cannot_receive(refused)
    already = [p for p in project_ids if p in existing]
    already += [f"(every project of {d})" for d, got in accounts.items() if set(got) <= existing]
    if already:
        raise MemberExists(backup_id=backup.id, project_id=", ".join(already))
    targets = list(project_ids)
    for found in accounts.values():
        targets.extend(p for p in found if p not in existing and p not in targets)
    return targets


def add_members(
    session: Session,
    actor: Actor,
    backup_id: str,
    project_ids: Sequence[str],
    domain_ids: Sequence[str] = (),
) -> list[Member]:
    """Share an available server or disk backup with 1-10 projects, all or nothing (S1-S4).

    `domain_ids` (Account IDs) share with every project of that account in the backup's
    region that exists now; each becomes a pending member that may accept on its own.
    """
    asked = len(project_ids) + len(domain_ids)
    if asked == 0:
        raise ValidationFailed(reason=f"name 1 to {MAX_MEMBERS} projects or accounts")
    backup = _owned_for_sharing(session, actor, backup_id, "share")
    if backup.resource_type not in SHAREABLE or backup.parent_id is not None:
        raise ShareTypeUnsupported(resource_type=backup.resource_type)
    if backup.status != BackupStatus.AVAILABLE:
        raise ShareStatusForbidden(backup_id=backup.id, status=backup.status)
    owner_vault = refuse_if_vault_deleting(session, backup)
    # Read under the backup's row lock: no other add for this backup can run meanwhile.
    existing = set(rows_of(session).scalars(_RECIPIENTS, {"backup_id": backup.id}))
    if len(existing) + asked > MAX_MEMBERS:
        raise MemberLimitReached(limit=MAX_MEMBERS, current=len(existing), adding=asked)
    targets = _recipients(session, backup, project_ids, domain_ids, existing)
    if len(existing) + len(targets) > MAX_MEMBERS:
        raise MemberLimitReached(limit=MAX_MEMBERS, current=len(existing), adding=len(targets))
    members = [
        Member(
            id=new_uuid(),
            backup_id=backup.id,
            backup_created_at=backup.created_at,
            dest_project_id=p,
            status=MemberStatus.PENDING,
        )
        for p in targets
    ]
    session.add_all(members)
    try:
        session.flush()
    except IntegrityError as exc:  # the unique constraint, should the lock ever be bypassed
        raise MemberExists(backup_id=backup.id, project_id=", ".join(targets)) from exc
    for member in members:
        log_share(session, backup, member, "add", owner_vault=owner_vault)
    enqueue_catalogue(session, backup.id)
    return members


@dataclass(frozen=True)
class MemberFilters:
    dest_project_id: str | None = None
    image_id: str | None = None
    status: str | None = None
    vault_id: str | None = None
    sort: str | None = None
    limit: int = 1000
    offset: int = 0
    marker: str | None = None


def _member_order(query: Select[Any], sort: str | None) -> Select[Any]:
    keys = []
    for part in (sort or "created_at:desc").split(","):
        key, _, direction = part.strip().partition(":")
        if key not in ("created_at", "updated_at", "status", "id") or direction not in (
            "",
            "asc",
            "desc",
        ):
            raise ValidationFailed(reason=f"cannot sort members by {part!r}")
        column = getattr(Member, key)
        keys.append(column.asc() if direction == "asc" else column.desc())
    return query.order_by(*keys, Member.id)


def list_members(
    session: Session, actor: Actor, backup_id: str, filters: MemberFilters
) -> tuple[list[Member], int]:
    """The members of the caller's own backup (S1), filtered; `count` ignores paging."""
    if filters.status and filters.status not in set(MemberStatus):
        raise ValidationFailed(reason="status must be pending, accepted or rejected")
    backup = _owned_for_sharing(session, actor, backup_id, "list its members", lock=False)
    query = select(Member).where(Member.backup_id == backup.id)
    for column in ("dest_project_id", "image_id", "status", "vault_id"):
        value = getattr(filters, column)
        if value:
            query = query.where(getattr(Member, column) == value)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    ordered = list(session.scalars(_member_order(query, filters.sort)))
    start = filters.offset
    if filters.marker:
        ids = [m.id for m in ordered]
        if filters.marker not in ids:
            raise ValidationFailed(reason=f"marker {filters.marker!r} is not a member here")
        start = ids.index(filters.marker) + 1
    return ordered[start : start + filters.limit], count


def delete_member(session: Session, actor: Actor, backup_id: str, member_id: str) -> None:
    """Cancel sharing with one project (S8): an accepted copy leaves its vault, freeing space.

    `member_id` is the recipient's project id (as the SDK sends it) or the member's own id.
    """
    backup = _owned_for_sharing(session, actor, backup_id, "cancel its sharing")
    member = session.scalar(
        select(Member)
        .where(
            Member.backup_id == backup.id,
            or_(Member.dest_project_id == member_id, Member.id == member_id),
        )
        .with_for_update()
    )
    if member is None:
        raise MemberNotFound(id=member_id)
    _remove(session, backup, member, "cancel")
    enqueue_catalogue(session, backup.id)


def revoke_all_members(session: Session, backup: Backup, reason: str) -> int:
    """Take a backup from every recipient, freeing their space (delete cascade, S9).

    The caller holds the backup's row lock (and has marked it `deleting`)."""
    members = list(
        session.scalars(
            select(Member)
            .where(Member.backup_id == backup.id)
            .order_by(Member.id)
            .with_for_update()
        )
    )
    lock_vaults(session, [member.vault_id for member in members])
    for member in members:
        _remove(session, backup, member, f"cascade-{reason}")
    return len(members)


def _remove(session: Session, backup: Backup, member: Member, action: str) -> None:
    vault = vault_of(session, member.vault_id) if member.vault_id else None
    release_share(session, member)
    log_share(session, backup, member, action, vault)
    session.delete(member)
    session.flush()


# --- both sides: reading one member -----------------------------------------------------------


def find_member(session: Session, actor: Actor, backup_id: str, member_id: str) -> Member:
    """The owner sees any member of its backup; a recipient sees only its own (S14)."""
    backup = visible_backup(session, actor, backup_id)
    query = select(Member).where(
        Member.backup_id == backup.id,
        or_(Member.dest_project_id == member_id, Member.id == member_id),
    )
    if backup.project_id != actor.project_id:
        query = query.where(Member.dest_project_id == actor.project_id)
    member = session.scalar(query)
    if member is None:
        raise MemberNotFound(id=member_id)
    return member


# --- the recipient's side: accept, reject, reset ----------------------------------------------
