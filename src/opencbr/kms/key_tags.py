"""A key's tags: at most 10 `key: value` labels per key, set and read by the key's owner
(its project); the project's tag keys and values; its keys found by tag. A key of another
project answers as `access.owned_key` says (KMS.0207 / KMS.0306); a key pending deletion
keeps its tags as they are (KMS.0210)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.core.context import Actor

from .access import owned_key
from .errors import KeyPendingDeletion, KmsValidationFailed, TagNotFound
from .models import Key, KeyState

__all__ = ["MAX_TAGS", "find_keys", "key_tags", "project_tags", "remove_tags", "set_tags"]

MAX_TAGS = 10
MAX_KEY, MAX_VALUE = 36, 43


def _changeable(session: Session, actor: Actor, key_id: str | None, operation: str) -> Key:
    key = owned_key(session, actor, key_id, operation, lock=True)
    if key.state == KeyState.PENDING_DELETION:
        raise KeyPendingDeletion(key_id=key.id, operation=operation)
    return key


def key_tags(session: Session, actor: Actor, key_id: str | None) -> dict[str, str]:
    return dict(owned_key(session, actor, key_id, "show-tags").tags or {})


def set_tags(session: Session, actor: Actor, key_id: str | None, tags: Mapping[str, str]) -> None:
    key = _changeable(session, actor, key_id, "create-tag")
    for name, value in tags.items():
        if not 1 <= len(name) <= MAX_KEY or len(value) > MAX_VALUE:
            raise KmsValidationFailed(
                reason=f"a tag key is 1-{MAX_KEY} characters and its value at most {MAX_VALUE}"
            )
    merged = {**(key.tags or {}), **tags}
    if len(merged) > MAX_TAGS:
        raise KmsValidationFailed(reason=f"a key has at most {MAX_TAGS} tags")
    key.tags = merged
    session.flush()


def remove_tags(
    session: Session, actor: Actor, key_id: str | None, names: Sequence[str], strict: bool
) -> None:
    """Remove the tag keys; with `strict` (DeleteTag) a key the tags lack is not found."""
    key = _changeable(session, actor, key_id, "delete-tag")
    have = dict(key.tags or {})
    missing = [n for n in names if n not in have]
    if strict and missing:
        raise TagNotFound(tag=missing[0], key_id=key.id)
    key.tags = {k: v for k, v in have.items() if k not in set(names)}
    session.flush()


def _own_keys(session: Session, actor: Actor) -> list[Key]:
    query = select(Key).where(
        Key.project_id == actor.project_id, Key.region == (actor.region or "")
    )
    return list(session.scalars(query.order_by(Key.created_at, Key.id)))


def project_tags(session: Session, actor: Actor) -> list[dict[str, object]]:
    found: dict[str, list[str]] = {}
    for key in _own_keys(session, actor):
        for name, value in (key.tags or {}).items():
            values = found.setdefault(name, [])
            if value not in values:
                values.append(value)
    return [{"key": k, "values": v} for k, v in sorted(found.items())]


def find_keys(
    session: Session,
    actor: Actor,
    tags: Mapping[str, Sequence[str]],
    alias: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Key], int]:
    """The caller's keys having every tag key (one of its values, any when none listed) and,
    when `alias` is given, that text in their alias; one page and how many match."""

    def matches(key: Key) -> bool:
        have = key.tags or {}
        if alias and alias not in key.alias:
            return False
        return all(k in have and (not v or have[k] in v) for k, v in tags.items())

    found = [key for key in _own_keys(session, actor) if matches(key)]
    return found[offset : offset + limit], len(found)
