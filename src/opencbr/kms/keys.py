"""Key lifecycle: create, list, enable, disable, schedule and cancel deletion, default keys.

States and transitions (compare-and-swap on `state`)::

    enabled --disable--> disabled --enable--> enabled
    enabled|disabled --schedule deletion (7-1096 days)--> pending deletion
    pending deletion --cancel deletion--> disabled
    pending deletion --its deletion date passes--> destroyed (`purge_due_keys`)

Destroying a key deletes its grants and its row, with the sealed material: from then on it is
unknown (KMS.0207) and every data key it wrapped, for disks and backups too, can never be
unwrapped again. That is what the pending window (7-1096 days) is for.

A service default key (`evs/default`, one per project, made on first need) is never disabled,
scheduled for deletion or granted (KMS.0211).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor
from opencbr.core.ids import new_uuid
from opencbr.core.numbers import whole_number
from opencbr.core.secrets import RootKey

from . import envelope
from .access import find_key, material_purpose, owned_key
from .errors import (
    AliasTaken,
    DefaultKeyRefused,
    KeyDisabled,
    KeyPendingDeletion,
    KeyStateInvalid,
    KmsValidationFailed,
    MissingParameter,
)
from .models import Grant, Key, KeyState

__all__ = [
    "DEFAULT_DISK_ALIAS",
    "cancel_deletion",
    "create_key",
    "default_key",
    "disable_key",
    "enable_key",
    "list_keys",
    "purge_due_keys",
    "schedule_deletion",
]

DEFAULT_DISK_ALIAS = "evs/default"
_ALIAS = re.compile(r"[a-zA-Z0-9:/_-]{1,255}")  # fullmatch: "$" would let "k\n" through
MIN_PENDING_DAYS, MAX_PENDING_DAYS = 7, 1096


def _check_alias(alias: str | None) -> str:
    if not alias:
        raise MissingParameter(name="key_alias")
    if not _ALIAS.fullmatch(alias):
        raise KmsValidationFailed(
            reason="key_alias must be 1-255 of letters, digits, ':', '/', '_', '-'"
        )
    if alias.endswith("/default"):
        raise KmsValidationFailed(reason="aliases ending in /default are reserved for services")
    return alias


def _insert(session: Session, root_key: RootKey, actor: Actor, alias: str, **fields: object) -> Key:
    key_id = new_uuid()
    sealed = root_key.seal(envelope.new_master_key(), material_purpose(key_id))
    key = Key(
        id=key_id,
        domain_id=actor.domain_id,
        project_id=actor.project_id,
        region=actor.region,
        alias=alias,
        material_sealed=sealed,
        state=KeyState.ENABLED,
        **fields,
    )
    try:
        with session.begin_nested():
            session.add(key)
    except IntegrityError as exc:
        raise AliasTaken(alias=alias) from exc
    return key


def create_key(
    session: Session,
    root_key: RootKey,
    actor: Actor,
    alias: str | None,
    description: str = "",
    key_spec: str | None = None,
    origin: str | None = None,
) -> Key:
    """A new enabled AES-256 master key of the caller's project."""
    alias = _check_alias(alias)
    if key_spec not in (None, "", "AES_256"):
        raise KmsValidationFailed(reason="only key_spec AES_256 is supported")
    if origin not in (None, "", "kms"):
        raise KmsValidationFailed(reason="only origin kms is supported (no imported keys)")
    if len(description) > 255:
        raise KmsValidationFailed(reason="key_description must be at most 255 characters")
    if session.scalar(select(Key.id).where(Key.project_id == actor.project_id, Key.alias == alias)):
        raise AliasTaken(alias=alias)
    return _insert(session, root_key, actor, alias, description=description)


def default_key(session: Session, root_key: RootKey, actor: Actor, alias: str) -> Key:
    """The project's service default key with this alias, created on first need.

    Two first calls at once both try to insert; the unique (project, alias) constraint lets one
    win and the other reads the winner's key.
    """
    query = select(Key).where(Key.project_id == actor.project_id, Key.alias == alias)
    found = session.scalar(query)
    if found is not None:
        return found
    try:
        return _insert(
            session,
            root_key,
            actor,
            alias,
            description="Default key of the disk service",
            default_key=True,
        )
    except AliasTaken:
        winner = session.scalar(query)
        assert winner is not None
        return winner


def list_keys(
    session: Session,
    actor: Actor,
    states: Sequence[str] = (),
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[Key], int]:
    """The caller's project's keys (optionally in some states), oldest first, and the total."""
    query = select(Key).where(Key.project_id == actor.project_id)
    if states:
        query = query.where(Key.state.in_(list(states)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.order_by(Key.created_at, Key.id).offset(offset)
    if limit is not None:
        page = page.limit(limit)
    return list(session.scalars(page)), total


def _transition(
    session: Session,
    actor: Actor,
    key_id: str | None,
    operation: str,
    allowed: Sequence[KeyState],
    target: KeyState,
    deletion_days: int | None = None,
) -> Key:
    key = owned_key(session, actor, key_id, operation)
    if key.default_key:
        raise DefaultKeyRefused(key_id=key.id, operation=operation)
    deletion_at = utcnow() + timedelta(days=deletion_days) if deletion_days else None
    changed = session.execute(
        update(Key)
        .where(Key.id == key.id, Key.state.in_([s.value for s in allowed]))
        .values(state=target, deletion_at=deletion_at)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        session.refresh(key)
        raise _state_error(key, operation)
    session.refresh(key)
    return key


def _state_error(key: Key, operation: str) -> Exception:
    if key.state == KeyState.PENDING_DELETION:
        return KeyPendingDeletion(key_id=key.id, operation=operation)
    if key.state == KeyState.DISABLED and operation == "disable-key":
        return KeyDisabled(key_id=key.id, operation=operation)
    return KeyStateInvalid(key_id=key.id, state=KeyState(key.state).label, operation=operation)


def enable_key(session: Session, actor: Actor, key_id: str | None) -> Key:
    return _transition(session, actor, key_id, "enable-key", [KeyState.DISABLED], KeyState.ENABLED)


def disable_key(session: Session, actor: Actor, key_id: str | None) -> Key:
    return _transition(session, actor, key_id, "disable-key", [KeyState.ENABLED], KeyState.DISABLED)


def _pending_days(value: str | int | None) -> int:
    if value is None or value == "":
        raise MissingParameter(name="pending_days")
    days = whole_number(value)
    if days is None or not MIN_PENDING_DAYS <= days <= MAX_PENDING_DAYS:
        raise KmsValidationFailed(
            reason=f"pending_days must be {MIN_PENDING_DAYS}-{MAX_PENDING_DAYS}"
        )
    return days


def schedule_deletion(
    session: Session, actor: Actor, key_id: str | None, pending_days: str | int | None
) -> Key:
    find_key(session, actor, key_id)  # a bad or unknown id answers before a bad day count
    days = _pending_days(pending_days)
    return _transition(
        session,
        actor,
        key_id,
        "schedule-key-deletion",
        [KeyState.ENABLED, KeyState.DISABLED],
        KeyState.PENDING_DELETION,
        deletion_days=days,
    )


def cancel_deletion(session: Session, actor: Actor, key_id: str | None) -> Key:
    """Back from pending deletion to disabled (the owner enables it again when ready)."""
    return _transition(
        session,
        actor,
        key_id,
        "cancel-key-deletion",
        [KeyState.PENDING_DELETION],
        KeyState.DISABLED,
    )


def purge_due_keys(session: Session, now: datetime | None = None) -> list[str]:
    """Destroy every key whose deletion date has passed; returns their ids.

    The rows are locked first, so a cancel-deletion racing with the purge either lands before
    it (the key is then disabled, not due, and stays) or finds the key gone.
    """
    due = list(
        session.scalars(
            select(Key.id)
            .where(Key.state == KeyState.PENDING_DELETION, Key.deletion_at <= (now or utcnow()))
            .with_for_update(skip_locked=True)
        )
    )
    if due:
        session.execute(delete(Grant).where(Grant.key_id.in_(due)))
        session.execute(delete(Key).where(Key.id.in_(due)))
    return due
