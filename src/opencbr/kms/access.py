"""Who may do what with a key: the one place that checks region, ownership, grants and state.

Rules (every KMS call, the wire's and other slices'):

- A key lives in one project, so in one domain and one region. It is looked up only in the
  caller's region; another region's key answers KMS.0207 like a missing one.
- The **owner** is the key's project (calls made in that project). It may do everything.
- A key is **visible** to its owner and to a caller that holds at least one grant on it whose
  grantee is the caller's domain (`grantee_principal_type=domain`, the Account ID) or the
  caller's user (`user`). To anyone else it answers KMS.0207 exactly like a key that does not
  exist (S14 applied to keys): every call, lifecycle and grant calls too, so a key id is no
  oracle of another account's keys.
- A caller that sees a key it does not own may perform the operations its grants list; any
  other operation answers KMS.0306 naming the key, the grantee and the missing operation (S10):
  the grant already told it the key exists.
- Using a key (data-key operations, creating grants) needs it enabled: a disabled key answers
  KMS.0209, a key pending deletion KMS.0210 — for owner and grantees alike, checked after
  access so an outsider learns nothing about the state.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from opencbr.core.context import Actor
from opencbr.core.ids import is_uuid
from opencbr.core.secrets import RootKey

from .errors import (
    InvalidKeyId,
    KeyAccessDenied,
    KeyDisabled,
    KeyNotFound,
    KeyPendingDeletion,
    MissingParameter,
)
from .models import Grant, GranteeType, Key, KeyState

__all__ = [
    "DATA_OPERATIONS",
    "OPERATIONS",
    "check_key_usable",
    "ensure_enabled",
    "find_key",
    "grants_of_caller",
    "is_owner",
    "key_in_region",
    "master_key",
    "material_purpose",
    "may_see",
    "owned_key",
]

OPERATIONS = (
    "create-datakey",
    "create-datakey-without-plaintext",
    "encrypt-datakey",
    "decrypt-datakey",
    "describe-key",
    "create-grant",
    "retire-grant",
    "encrypt-data",
    "decrypt-data",
)
DATA_OPERATIONS = (
    "create-datakey",
    "create-datakey-without-plaintext",
    "encrypt-datakey",
    "decrypt-datakey",
)


def material_purpose(key_id: str) -> str:
    """The root-key sealing purpose of a key's material: binds the material to its key id."""
    return f"kms.key-material:{key_id}"


def master_key(root_key: RootKey, key: Key) -> bytes:
    return root_key.unseal(key.material_sealed, material_purpose(key.id))


def key_in_region(session: Session, actor: Actor, key_id: str | None, lock: bool = False) -> Key:
    """The key with this id in the caller's region, *whoever owns it*; KMS.0205/0207 otherwise.

    Only for a caller that proves its right another way (retiring a grant by its id); every
    other lookup is `find_key`."""
    if not key_id:
        raise MissingParameter(name="key_id")
    if not is_uuid(key_id):
        raise InvalidKeyId(key_id=key_id)
    query = select(Key).where(Key.id == key_id, Key.region == (actor.region or ""))
    if lock:
        query = query.with_for_update()
    key = session.scalar(query)
    if key is None:
        raise KeyNotFound(key_id=key_id)
    return key


def find_key(session: Session, actor: Actor, key_id: str | None, lock: bool = False) -> Key:
    """The key, if visible to the caller (the module rules); KMS.0205/0207 otherwise."""
    key = key_in_region(session, actor, key_id, lock=lock)
    if not may_see(session, key, actor):
        raise KeyNotFound(key_id=key.id)
    return key


def is_owner(key: Key, actor: Actor) -> bool:
    return key.domain_id == actor.domain_id and key.project_id == actor.project_id


def may_see(session: Session, key: Key, actor: Actor) -> bool:
    """The caller owns the key or holds a grant on it."""
    return is_owner(key, actor) or bool(grants_of_caller(session, key, actor))


def grants_of_caller(session: Session, key: Key, actor: Actor) -> list[Grant]:
    """The key's grants whose grantee is the caller's domain or user."""
    return list(
        session.scalars(
            select(Grant).where(
                Grant.key_id == key.id,
                or_(
                    and_(
                        Grant.grantee_type == GranteeType.DOMAIN,
                        Grant.grantee_principal == actor.domain_id,
                    ),
                    and_(
                        Grant.grantee_type == GranteeType.USER,
                        Grant.grantee_principal == actor.user_id,
                    ),
                ),
            )
        )
    )


def _denied(key: Key, actor: Actor, operation: str) -> KeyAccessDenied:
    whose = (
        "of another account"
        if key.domain_id != actor.domain_id
        else f"of another project ({key.project_id})"
    )
    return KeyAccessDenied(
        key_id=key.id, whose=whose, grantee=f"account {actor.domain_id}", operation=operation
    )


def ensure_enabled(key: Key, operation: str) -> None:
    if key.state == KeyState.DISABLED:
        raise KeyDisabled(key_id=key.id, operation=operation)
    if key.state == KeyState.PENDING_DELETION:
        raise KeyPendingDeletion(key_id=key.id, operation=operation)


def check_key_usable(
    session: Session, actor: Actor, key_id: str | None, operation: str, need_enabled: bool = True
) -> Key:
    """The key, if the caller may perform `operation` on it now (see the module rules).

    `operation` is one of `OPERATIONS`. `need_enabled=False` skips the state check (describing
    a key works in every state).
    """
    key = key_in_region(session, actor, key_id)
    if not is_owner(key, actor):
        held = grants_of_caller(session, key, actor)
        if not held:
            raise KeyNotFound(key_id=key.id)
        if not any(operation in grant.operation_list for grant in held):
            raise _denied(key, actor, operation)
    if need_enabled:
        ensure_enabled(key, operation)
    return key


def owned_key(
    session: Session, actor: Actor, key_id: str | None, operation: str, lock: bool = False
) -> Key:
    """The key, if the caller's project owns it; lifecycle calls (enable, list grants, ...)."""
    key = find_key(session, actor, key_id, lock=lock)
    if not is_owner(key, actor):
        raise _denied(key, actor, operation)
    return key
