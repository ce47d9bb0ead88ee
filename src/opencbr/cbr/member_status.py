"""The recipient's side of a share: accept (into its own vault with room), reject, reset
(S5, S6, S13). The state machine and the locking are described in `members.py`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor
from opencbr.core.ids import is_uuid

from .catalogue import enqueue_catalogue
from .errors import (
    AcceptVaultTypeMismatch,
    MemberNotFound,
    MemberUpdateFailed,
    MemberValueInvalid,
    ShareNotAllowed,
    ShareStatusForbidden,
    VaultStatusForbidsShare,
)
from .member_ledger import log_share, refuse_if_vault_deleting, release_share
from .models import Backup, BackupStatus, Member, MemberStatus, ResourceType, Vault, VaultStatus
from .resources import OBJECT_TYPES
from .vault_space import free_bytes, has_room, lock_vaults, reserve
from .vaults import get_vault
from .visibility import visible_backup

__all__ = [
    "TRANSITIONS",
    "AcceptChoice",
    "accept_choices",
    "share_size",
    "update_member_status",
]

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

_RECIPIENT_MEMBER_FOR_UPDATE = (
    select(Member)
    .where(
        Member.backup_id == bindparam("backup_id"),
        Member.dest_project_id == bindparam("project_id"),
    )
    .with_for_update()
)


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
    owner_vault = refuse_if_vault_deleting(session, backup)
    if member.status == MemberStatus.ACCEPTED:  # a move between vaults changes both
        lock_vaults(session, [member.vault_id, vault_id if is_uuid(vault_id or "") else None])
    vault = _accepting_vault(session, actor, backup, vault_id)
    if member.status == MemberStatus.ACCEPTED and member.vault_id == vault.id:
        if auto_bind and not vault.auto_bind:
            vault.auto_bind = True
            session.flush()
        return member  # accepting again into the same vault changes nothing
    size = share_size(session, backup)
    release_share(session, member)  # moving from another vault frees the space there
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
        release_share(session, member)
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
    log_share(session, backup, member, LOG_ACTIONS[status], vault, owner_vault=owner_vault)


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
