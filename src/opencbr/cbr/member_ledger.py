"""What every change of a share does besides the member row: the vault space an accepted
share holds, the share's audit trail (S15), and the vault a share is refused in."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from . import oplogs
from .errors import ShareStatusForbidden
from .models import Backup, Member, MemberStatus, Vault, VaultStatus
from .vault_space import release

__all__ = ["log_share", "refuse_if_vault_deleting", "release_share", "vault_of"]

# Built once: building a statement (as `Session.get` does at each call) took longer than
# running it.
_VAULT = select(Vault).where(Vault.id == bindparam("id"))


def vault_of(session: Session, vault_id: str) -> Vault | None:
    return session.scalar(_VAULT, {"id": vault_id})


def refuse_if_vault_deleting(session: Session, backup: Backup) -> Vault | None:
    """A backup whose vault is being deleted is about to go (with its shares): refuse to share
    or accept it, as for a backup being deleted. Returns the vault, for the owner's log (the
    session holds what it reads only as long as the caller does)."""
    vault = vault_of(session, backup.vault_id)
    if vault is not None and vault.status == VaultStatus.DELETING:
        raise ShareStatusForbidden(backup_id=backup.id, status="in a vault being deleted")
    return vault


def release_share(session: Session, member: Member) -> None:
    """Give back what an accepted member holds in its vault, once per call: the member's next
    change (`member_status`'s compare-and-swap, or its deletion) sets what it holds anew, in the
    same statement (marking it here was one more UPDATE of the member)."""
    if member.status == MemberStatus.ACCEPTED and member.vault_id and member.reserved_bytes:
        release(session, member.vault_id, member.reserved_bytes)


# --- the audit trail (S15) --------------------------------------------------------------------


def log_share(
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
    owner_vault = owner_vault or vault_of(session, backup.vault_id)
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
