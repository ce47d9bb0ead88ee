"""Key aliases: `alias/<name>` names for a key, unique in the account and region, made,
moved and deleted by the key's owner (its project). A key has at most 10; listing shows the
caller's project's aliases (of one key when asked). An alias of a key that is gone is gone
with it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor
from opencbr.core.ids import new_uuid

from .access import owned_key
from .errors import AliasNotFound, AliasTaken, KmsValidationFailed
from .models import Key, KeyAlias

__all__ = ["MAX_PER_KEY", "associate", "create_alias", "delete_aliases", "list_aliases", "urn"]

MAX_PER_KEY = 10
_ALIAS = re.compile(r"alias/[a-zA-Z0-9:/_-]{1,249}")  # fullmatch; "alias/" + 1-249 = 255


def urn(alias: KeyAlias) -> str:
    return f"kms:{alias.region}:{alias.domain_id}:{alias.alias}"


def _check(alias: str | None) -> str:
    if not alias or not _ALIAS.fullmatch(alias):
        raise KmsValidationFailed(
            reason="alias must be alias/ then 1-249 of letters, digits, ':', '/', '_', '-'"
        )
    return alias


def _count(session: Session, key_id: str) -> int:
    return int(session.scalar(select(func.count()).where(KeyAlias.key_id == key_id)) or 0)


def create_alias(session: Session, actor: Actor, key_id: str | None, alias: str | None) -> KeyAlias:
    name = _check(alias)
    key = owned_key(session, actor, key_id, "create-alias", lock=True)
    if _count(session, key.id) >= MAX_PER_KEY:
        raise KmsValidationFailed(reason=f"a key has at most {MAX_PER_KEY} aliases")
    now = utcnow()
    made = KeyAlias(
        id=new_uuid(),
        domain_id=key.domain_id,
        region=key.region,
        project_id=key.project_id,
        key_id=key.id,
        alias=name,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(made)
    except IntegrityError as exc:
        raise AliasTaken(alias=name) from exc
    return made


def _own_alias(session: Session, actor: Actor, alias: str) -> KeyAlias:
    found = session.scalar(
        select(KeyAlias)
        .join(Key, Key.id == KeyAlias.key_id)
        .where(
            KeyAlias.alias == alias,
            KeyAlias.project_id == actor.project_id,
            KeyAlias.region == (actor.region or ""),
        )
        .with_for_update()
    )
    if found is None:
        raise AliasNotFound(alias=alias)
    return found


def associate(
    session: Session, actor: Actor, alias: str | None, target_key_id: str | None
) -> KeyAlias:
    """Point the caller's alias at another key of its own."""
    found = _own_alias(session, actor, _check(alias))
    target = owned_key(session, actor, target_key_id, "associate-alias", lock=True)
    if found.key_id != target.id:
        if _count(session, target.id) >= MAX_PER_KEY:
            raise KmsValidationFailed(reason=f"a key has at most {MAX_PER_KEY} aliases")
        found.key_id, found.updated_at = target.id, utcnow()
        session.flush()
    return found


def delete_aliases(
    session: Session, actor: Actor, key_id: str | None, aliases: Sequence[str]
) -> None:
    """Delete aliases of the key, all or nothing: each must name this key."""
    key = owned_key(session, actor, key_id, "delete-alias", lock=True)
    if not aliases:
        raise KmsValidationFailed(reason="aliases lists at least one alias")
    found = [_own_alias(session, actor, _check(a)) for a in aliases]
    for alias in found:
        if alias.key_id != key.id:
            raise AliasNotFound(alias=alias.alias)
    for alias in found:
        session.delete(alias)
    session.flush()


def list_aliases(
    session: Session, actor: Actor, key_id: str | None, offset: int, limit: int
) -> tuple[list[KeyAlias], int]:
    """The caller's project's aliases (of `key_id` when given, which must be its own)."""
    query = (
        select(KeyAlias)
        .join(Key, Key.id == KeyAlias.key_id)
        .where(KeyAlias.project_id == actor.project_id, KeyAlias.region == (actor.region or ""))
    )
    if key_id:
        query = query.where(KeyAlias.key_id == owned_key(session, actor, key_id, "list-aliases").id)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    page = query.order_by(KeyAlias.created_at, KeyAlias.id).offset(offset).limit(limit)
    return list(session.scalars(page)), total
