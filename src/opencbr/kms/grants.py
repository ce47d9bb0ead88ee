"""Grants: let another domain (Account ID) or a user use a key for named operations.

- create: the owner, or a grantee holding `create-grant` (who can pass on only operations it
  holds itself). 1-10 known operations, not `create-grant` alone (KMS.2401); the grantee must
  exist (KMS.2403); at most 100 grants per key, counted under a lock on the key row
  (KMS.2404); never on a service default key (KMS.0211); the key must be enabled.
- list: the owner. revoke: the owner only (KMS.0307 for anyone else who can see the key).
- retire: the grant's issuer, its retiring principal, or its grantee when the grant includes
  `retire-grant`. A caller that can neither see the key nor retire the grant it names gets
  KMS.0207, as for a missing key (a retiring principal may hold no grant: the grant id, 64
  random hex characters, is its proof).
A revoked or retired grant is deleted in the same unit of work: it stops working at once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from opencbr.core.context import Actor
from opencbr.iam.models import Domain, User

from .access import (
    OPERATIONS,
    ensure_enabled,
    find_key,
    grants_of_caller,
    is_owner,
    key_in_region,
    may_see,
    owned_key,
)
from .access import check_key_usable as _check
from .errors import (
    DefaultKeyRefused,
    GrantCreateFailed,
    GrantNotFound,
    GrantOperationsInvalid,
    GrantRefused,
    InvalidGrantId,
    KeyNotFound,
    KmsValidationFailed,
    MissingParameter,
    TooManyGrants,
)
from .models import Grant, GranteeType, Key

__all__ = [
    "MAX_GRANTS_PER_KEY",
    "create_grant",
    "list_grants",
    "list_retirable_grants",
    "retire_grant",
    "revoke_grant",
]

MAX_GRANTS_PER_KEY = 100
# Used with fullmatch only: "^...$" with match() also takes a trailing newline.
_PRINCIPAL = re.compile(r"[a-zA-Z0-9]{1,64}")
_GRANT_NAME = re.compile(r"[a-zA-Z0-9:/_-]{1,255}")
_GRANT_ID = re.compile(r"[0-9a-f]{64}")


def _check_operations(operations: Sequence[str] | None) -> list[str]:
    if not operations:
        raise MissingParameter(name="operations")
    unknown = sorted(set(operations) - set(OPERATIONS))
    if unknown:
        raise GrantOperationsInvalid(reason=f"unknown operations {', '.join(unknown)}")
    if not 1 <= len(operations) <= 10:
        raise GrantOperationsInvalid(reason="a grant lists 1-10 operations")
    if set(operations) == {"create-grant"}:
        raise GrantOperationsInvalid(reason="operations must include more than create-grant")
    return list(dict.fromkeys(operations))


def _check_grantee(session: Session, principal: str | None, kind: str | None) -> GranteeType:
    if not principal:
        raise MissingParameter(name="grantee_principal")
    if not _PRINCIPAL.fullmatch(principal):
        raise KmsValidationFailed(reason="grantee_principal must be 1-64 letters or digits")
    if kind not in (None, "", GranteeType.USER, GranteeType.DOMAIN):
        raise KmsValidationFailed(reason="grantee_principal_type must be user or domain")
    grantee_type = GranteeType(kind or GranteeType.USER)
    model = Domain if grantee_type == GranteeType.DOMAIN else User
    if session.get(model, principal) is None:
        raise GrantCreateFailed(reason=f"no {grantee_type.value} {principal} exists")
    return grantee_type


def _check_name(name: str | None) -> str:
    if name and not _GRANT_NAME.fullmatch(name):
        raise KmsValidationFailed(reason="grant name must be 1-255 of letters, digits, ':/_-'")
    return name or ""


def create_grant(
    session: Session,
    actor: Actor,
    key_id: str | None,
    grantee_principal: str | None,
    operations: Sequence[str] | None,
    grantee_type: str | None = None,
    name: str | None = None,
    retiring_principal: str | None = None,
) -> Grant:
    key = _check(session, actor, key_id, "create-grant", need_enabled=False)
    if key.default_key:
        raise DefaultKeyRefused(key_id=key.id, operation="create-grant")
    ops = _check_operations(operations)
    kind = _check_grantee(session, grantee_principal, grantee_type)
    if retiring_principal and not _PRINCIPAL.fullmatch(retiring_principal):
        raise KmsValidationFailed(reason="retiring_principal must be 1-64 letters or digits")
    _check_subset(session, key, actor, ops)
    ensure_enabled(key, "create-grant")
    locked = key_in_region(session, actor, key.id, lock=True)  # `_check` decided who may
    count = session.scalar(select(func.count()).where(Grant.key_id == locked.id)) or 0
    if count >= MAX_GRANTS_PER_KEY:
        raise TooManyGrants(key_id=key.id, limit=MAX_GRANTS_PER_KEY)
    grant = Grant(
        id=secrets.token_hex(32),
        key_id=key.id,
        name=_check_name(name),
        grantee_type=kind,
        grantee_principal=grantee_principal,
        operations=",".join(ops),
        issuing_principal=actor.user_id,
        retiring_principal=retiring_principal or None,
    )
    session.add(grant)
    session.flush()
    return grant


def _check_subset(session: Session, key: Key, actor: Actor, ops: list[str]) -> None:
    """A grantee re-granting passes on only operations it holds itself."""
    if is_owner(key, actor):
        return
    held = {op for grant in grants_of_caller(session, key, actor) for op in grant.operation_list}
    missing = sorted(set(ops) - held)
    if missing:
        raise GrantOperationsInvalid(
            reason=f"the caller holds no grant for {', '.join(missing)} on key {key.id}"
        )


def list_grants(
    session: Session, actor: Actor, key_id: str | None, offset: int = 0, limit: int | None = None
) -> tuple[list[Grant], int]:
    key = owned_key(session, actor, key_id, "list-grants")
    query = select(Grant).where(Grant.key_id == key.id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.order_by(Grant.created_at, Grant.id).offset(offset)
    if limit is not None:
        page = page.limit(limit)
    return list(session.scalars(page)), total


def _find_grant(session: Session, key: Key, grant_id: str | None) -> Grant:
    if not grant_id:
        raise MissingParameter(name="grant_id")
    if not _GRANT_ID.fullmatch(grant_id):
        raise InvalidGrantId(grant_id=grant_id)
    grant = session.scalar(select(Grant).where(Grant.id == grant_id, Grant.key_id == key.id))
    if grant is None:
        raise GrantNotFound(grant_id=grant_id, key_id=key.id)
    return grant


def revoke_grant(session: Session, actor: Actor, key_id: str | None, grant_id: str | None) -> None:
    key = find_key(session, actor, key_id)
    if not is_owner(key, actor):
        raise GrantRefused(
            operation="revoke",
            grant_id=grant_id,
            key_id=key.id,
            reason="only the key's owner may revoke grants",
        )
    session.delete(_find_grant(session, key, grant_id))
    session.flush()


def _may_retire(grant: Grant, actor: Actor) -> bool:
    me = {actor.user_id, actor.domain_id}
    if grant.issuing_principal in me or (grant.retiring_principal or "") in me:
        return True
    grantee = actor.domain_id if grant.grantee_type == GranteeType.DOMAIN else actor.user_id
    return grant.grantee_principal == grantee and "retire-grant" in grant.operation_list


def _retirable_unseen(session: Session, key: Key, actor: Actor, grant_id: str | None) -> bool:
    """The caller cannot see the key but names a grant on it that it may retire."""
    if not grant_id or not _GRANT_ID.fullmatch(grant_id):
        return False
    grant = session.scalar(select(Grant).where(Grant.id == grant_id, Grant.key_id == key.id))
    return grant is not None and _may_retire(grant, actor)


def retire_grant(session: Session, actor: Actor, key_id: str | None, grant_id: str | None) -> None:
    key = key_in_region(session, actor, key_id)
    if not may_see(session, key, actor) and not _retirable_unseen(session, key, actor, grant_id):
        raise KeyNotFound(key_id=key.id)
    grant = _find_grant(session, key, grant_id)
    if not _may_retire(grant, actor):
        raise GrantRefused(
            operation="retire",
            grant_id=grant.id,
            key_id=key.id,
            reason="only its issuer, its retiring principal or a grantee holding retire-grant",
        )
    session.delete(grant)
    session.flush()


def list_retirable_grants(
    session: Session, actor: Actor, offset: int = 0, limit: int | None = None
) -> tuple[list[Grant], int]:
    """Grants on keys of the caller's region that the caller may retire."""
    mine = [actor.user_id, actor.domain_id]
    as_grantee = or_(
        and_(Grant.grantee_type == GranteeType.DOMAIN, Grant.grantee_principal == actor.domain_id),
        and_(Grant.grantee_type == GranteeType.USER, Grant.grantee_principal == actor.user_id),
    )
    query = (
        select(Grant)
        .join(Key, Key.id == Grant.key_id)
        .where(
            Key.region == (actor.region or ""),
            or_(
                Grant.issuing_principal.in_(mine),
                Grant.retiring_principal.in_(mine),
                and_(as_grantee, Grant.operations.contains("retire-grant")),
            ),
        )
    )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.order_by(Grant.created_at, Grant.id).offset(offset)
    if limit is not None:
        page = page.limit(limit)
    return list(session.scalars(page)), total
