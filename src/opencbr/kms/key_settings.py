"""A key's alias and description (update-key-alias, update-key-description): the owner's
calls. A service default key keeps its alias (KMS.0211); a key pending deletion changes
nothing (KMS.0210); an alias is unique within the project (the database says so)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opencbr.core.context import Actor

from .access import owned_key
from .errors import AliasTaken, DefaultKeyRefused, KeyPendingDeletion, KmsValidationFailed
from .keys import _check_alias
from .models import Key, KeyState

__all__ = ["MAX_DESCRIPTION", "describe_key", "rename_key"]

MAX_DESCRIPTION = 255


def _changeable(session: Session, actor: Actor, key_id: str | None, operation: str) -> Key:
    key = owned_key(session, actor, key_id, operation, lock=True)
    if key.state == KeyState.PENDING_DELETION:
        raise KeyPendingDeletion(key_id=key.id, operation=operation)
    return key


def rename_key(session: Session, actor: Actor, key_id: str | None, alias: str | None) -> Key:
    key = _changeable(session, actor, key_id, "update-key-alias")
    if key.default_key:
        raise DefaultKeyRefused(key_id=key.id, operation="update-key-alias")
    key.alias = _check_alias(alias)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise AliasTaken(alias=alias) from exc
    return key


def describe_key(
    session: Session, actor: Actor, key_id: str | None, description: str | None
) -> Key:
    key = _changeable(session, actor, key_id, "update-key-description")
    if description is None or len(description) > MAX_DESCRIPTION:
        raise KmsValidationFailed(
            reason=f"key_description is required, at most {MAX_DESCRIPTION} characters"
        )
    key.description = description
    session.flush()
    return key
