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
  (`vaults.reserve`), so concurrent accepts of different backups never overfill a vault (S6).
Lock order is always backup -> member -> vault, the same as deleting a backup.

Refusals use the reference's codes: 6700-6714, 6105 (vault not visible), 6114 (no room),
9900 (malformed request). A refused call changes nothing: the caller's transaction rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor
from opencbr.core.db import rows_of
from opencbr.core.errors import ValidationFailed
from opencbr.core.ids import is_hex32, is_uuid, new_uuid
from opencbr.iam.models import Project

from . import oplogs
from .backups import visible_backup
from .catalogue import enqueue_catalogue
from .errors import (
    AcceptVaultTypeMismatch,
    MemberExists,
    MemberLimitReached,
    MemberNotFound,
    MemberUpdateFailed,
    MemberValueInvalid,
    ReceivedBackupNotShareable,
    RecipientProjectInvalid,
    ShareNotAllowed,
    ShareStatusForbidden,
    ShareTypeUnsupported,
    VaultStatusForbidsShare,
)
from .models import Backup, BackupStatus, Member, MemberStatus, ResourceType, Vault, VaultStatus
from .resources import OBJECT_TYPES
from .vaults import free_bytes, get_vault, has_room, lock_vaults, release, reserve

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
# A backup that is being restored from still holds all its data: it can be accepted.
ACCEPTABLE = {BackupStatus.AVAILABLE.value, BackupStatus.RESTORING.value}

TRANSITIONS: dict[str, frozenset[str]] = {
    MemberStatus.PENDING: frozenset({MemberStatus.ACCEPTED, MemberStatus.REJECTED}),
    MemberStatus.ACCEPTED: frozenset(
        {MemberStatus.ACCEPTED, MemberStatus.REJECTED, MemberStatus.PENDING}
    ),
    MemberStatus.REJECTED: frozenset({MemberStatus.ACCEPTED, MemberStatus.PENDING}),
}
LOG_ACTIONS: dict[str, str] = {
    MemberStatus.ACCEPTED: "accept",
    MemberStatus.REJECTED: "reject",
    MemberStatus.PENDING: "reset",
}


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


# Lookups of every share call, built once: building a statement (as `Session.get` does at
# each call) took longer than running it (a vault: 360-420 us of CPU against 210-250).
_VAULT = select(Vault).where(Vault.id == bindparam("id"))
_PROJECT = select(Project.id, Project.enabled, Project.region).where(Project.id == bindparam("id"))
_RECIPIENTS = select(Member.dest_project_id).where(Member.backup_id == bindparam("backup_id"))
_RECIPIENT_MEMBER_FOR_UPDATE = (
    select(Member)
    .where(
        Member.backup_id == bindparam("backup_id"),
        Member.dest_project_id == bindparam("project_id"),
    )
    .with_for_update()
)


def _vault(session: Session, vault_id: str) -> Vault | None:
    return session.scalar(_VAULT, {"id": vault_id})


def _refuse_if_vault_deleting(session: Session, backup: Backup) -> Vault | None:
    """A backup whose vault is being deleted is about to go (with its shares): refuse to share
    or accept it, as for a backup being deleted. Returns the vault, for the owner's log (the
    session holds what it reads only as long as the caller does)."""
    vault = _vault(session, backup.vault_id)
    if vault is not None and vault.status == VaultStatus.DELETING:
        raise ShareStatusForbidden(backup_id=backup.id, status="in a vault being deleted")
    return vault


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
    owner_vault = _refuse_if_vault_deleting(session, backup)
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
        _log_both(session, backup, member, "add", owner_vault=owner_vault)
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
    vault = _vault(session, member.vault_id) if member.vault_id else None
    _release(session, member)
    _log_both(session, backup, member, action, vault)
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


def update_member_status(
    session: Session,
    actor: Actor,
    backup_id: str,
    member_id: str,
    status: str,
    vault_id: str | None = None,
    auto_bind: bool = False,
) -> Member:
    """The recipient accepts (into its own vault with room), rejects or resets (S5, S6, S13).

    `member_id` is the recipient's project id, which must be the caller's. Accepting reserves
    the backup's full size in the vault (no data is copied, S7) and may switch on the vault's
    automatic association (`auto_bind`, S13).
    """
    backup = visible_backup(session, actor, backup_id, lock=True)
    if member_id != actor.project_id:
        if backup.project_id == actor.project_id:
            raise ShareNotAllowed(
                reason=f"only the recipient project {member_id} can change its member status"
            )
        raise MemberNotFound(id=member_id)
    if status not in set(MemberStatus):
        raise MemberValueInvalid(
            reason=f"status must be accepted, rejected or pending, not {status!r}"
        )
    values = {"backup_id": backup.id, "project_id": actor.project_id}
    member = session.scalar(_RECIPIENT_MEMBER_FOR_UPDATE, values)
    if member is None:
        raise MemberNotFound(id=member_id)
    if status == MemberStatus.ACCEPTED:
        accepted = _accept(session, actor, backup, member, vault_id, auto_bind)
        enqueue_catalogue(session, backup.id)
        return accepted
    if member.status == status:
        return member
    _transition(session, backup, member, status, None, 0)
    enqueue_catalogue(session, backup.id)
    return member


def _accept(
    session: Session,
    actor: Actor,
    backup: Backup,
    member: Member,
    vault_id: str | None,
    auto_bind: bool,
) -> Member:
    if backup.status not in ACCEPTABLE:
        raise ShareStatusForbidden(backup_id=backup.id, status=backup.status)
    owner_vault = _refuse_if_vault_deleting(session, backup)
    if member.status == MemberStatus.ACCEPTED:  # a move between vaults changes both
        lock_vaults(session, [member.vault_id, vault_id if is_uuid(vault_id or "") else None])
    vault = _accepting_vault(session, actor, backup, vault_id)
    if member.status == MemberStatus.ACCEPTED and member.vault_id == vault.id:
        if auto_bind and not vault.auto_bind:
            vault.auto_bind = True
            session.flush()
        return member  # accepting again into the same vault changes nothing
    size = share_size(session, backup)
    _release(session, member)  # moving from another vault frees the space there
    reserve(session, vault, size, strictly_more=True)
    if auto_bind and not vault.auto_bind:
        vault.auto_bind = True
    _transition(
        session, backup, member, MemberStatus.ACCEPTED, vault, size, owner_vault=owner_vault
    )
    return member


def _accepting_vault(session: Session, actor: Actor, backup: Backup, vault_id: str | None) -> Vault:
    """The caller's vault that may take the backup (S6); another project's is not found."""
    wanted = OBJECT_TYPES[backup.resource_type]
    if not vault_id:
        has_vault = session.scalar(
            select(Vault.id)
            .where(Vault.project_id == actor.project_id, Vault.object_type == wanted)
            .limit(1)
        )
        hint = "" if has_vault else f"; this project has no {wanted} vault yet, create one first"
        raise MemberValueInvalid(reason=f"choose a {wanted} vault (vault_id) to accept into{hint}")
    vault = get_vault(session, actor, vault_id, lock=True)
    if vault.object_type != wanted:
        raise AcceptVaultTypeMismatch(object_type=wanted)
    if vault.status != VaultStatus.AVAILABLE or vault.region != backup.region:
        raise VaultStatusForbidsShare(vault_id=vault.id, status=vault.status)
    return vault


@dataclass(frozen=True)
class AcceptChoice:
    vault: Vault
    free: int
    fits: bool  # the vault may take the backup now (S6)


def accept_choices(session: Session, actor: Actor, backup: Backup) -> list[AcceptChoice]:
    """The caller's available vaults of the backup's type, oldest first, each with whether it
    has room for the backup (S6: free space greater than the backup's size)."""
    size = share_size(session, backup)
    query = (
        select(Vault)
        .where(
            Vault.project_id == actor.project_id,
            Vault.object_type == OBJECT_TYPES[backup.resource_type],
            Vault.status == VaultStatus.AVAILABLE,
        )
        .order_by(Vault.created_at, Vault.id)
    )
    return [
        AcceptChoice(vault, free_bytes(vault), has_room(vault, size, strictly_more=True))
        for vault in session.scalars(query)
    ]


def share_size(session: Session, backup: Backup) -> int:
    """What an accepted share counts in the recipient's vault: the backup's full size (S7);
    for a server backup, the larger of its own size and the sum of its disks' backups."""
    if backup.resource_type != ResourceType.SERVER:  # only a server backup has children
        return backup.size_bytes
    children = session.scalar(
        select(func.coalesce(func.sum(Backup.size_bytes), 0)).where(Backup.parent_id == backup.id)
    )
    return max(backup.size_bytes, int(children or 0))


def _transition(
    session: Session,
    backup: Backup,
    member: Member,
    status: str,
    vault: Vault | None,
    reserved: int,
    *,
    owner_vault: Vault | None = None,
) -> None:
    """Move a member along `TRANSITIONS` with a compare-and-swap on its current status."""
    expected = member.status
    if status not in TRANSITIONS[expected]:
        raise MemberUpdateFailed(backup_id=backup.id, status=expected)
    if expected == MemberStatus.ACCEPTED and vault is None:
        _release(session, member)
    values = {
        "member_id": member.id,
        "expected": expected,
        "new_status": status,
        "new_vault_id": vault.id if vault else None,
        "reserved": reserved,
        "now": utcnow(),
    }
    if session.execute(_MEMBER_STATUS_SWAP, values).scalar_one_or_none() is None:
        session.refresh(member)
        raise MemberUpdateFailed(backup_id=backup.id, status=member.status)
    _log_both(session, backup, member, LOG_ACTIONS[status], vault, owner_vault=owner_vault)


# Built once (see `_VAULT`). RETURNING refreshes the member in the same statement.
_MEMBER_STATUS_SWAP = (
    update(Member)
    .where(Member.id == bindparam("member_id"), Member.status == bindparam("expected"))
    .values(
        status=bindparam("new_status"),
        vault_id=bindparam("new_vault_id"),
        reserved_bytes=bindparam("reserved"),
        updated_at=bindparam("now"),
    )
    .returning(Member)
    .execution_options(synchronize_session=False, populate_existing=True)
)


def _release(session: Session, member: Member) -> None:
    """Give back what an accepted member holds in its vault, once per call: the member's next
    change (`_transition`'s compare-and-swap, or its deletion) sets what it holds anew, in the
    same statement (marking it here was one more UPDATE of the member)."""
    if member.status == MemberStatus.ACCEPTED and member.vault_id and member.reserved_bytes:
        release(session, member.vault_id, member.reserved_bytes)


# --- the audit trail (S15) --------------------------------------------------------------------


def _log_both(
    session: Session,
    backup: Backup,
    member: Member,
    action: str,
    vault: Vault | None = None,
    *,
    owner_vault: Vault | None = None,
) -> None:
    """One operation log in the owner's project and one in the recipient's (S15). `vault` is
    the recipient's, `owner_vault` the backup's (read here unless the caller has it). Only the
    recipient's log names the recipient's vault: the owner learns that a project accepted,
    never into which of its vaults."""
    owner_share = {
        "action": action,
        "backup_id": backup.id,
        "backup_name": backup.name,
        "owner_project_id": backup.project_id,
        "dest_project_id": member.dest_project_id,
        "member_id": member.id,
        "member_status": member.status,
    }
    share = {**owner_share, "vault_id": vault.id if vault else (member.vault_id or "")}
    resource = (backup.resource_id, backup.resource_type, backup.resource_name)
    owner_vault = owner_vault or _vault(session, backup.vault_id)
    oplogs.record(
        session,
        oplogs.completed(
            backup.project_id,
            "share",
            vault=owner_vault,
            resource=resource,
            extra={"share": owner_share},
        ),
        oplogs.completed(
            member.dest_project_id, "share", vault=vault, resource=resource, extra={"share": share}
        ),
    )
