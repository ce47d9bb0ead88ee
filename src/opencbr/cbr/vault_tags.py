"""Vault tags: at most 10 `{key, value}` pairs per vault, one value per key, and the tag
queries over a project's vaults (`ShowVaultResourceInstances`).

Tags live in the vault's own `tags` column (the list CreateVault takes). Every call acts on
the caller's vaults only: another project's vault answers like a missing one (S14).
Query semantics follow the vendor's tag service: in `tags` the keys are AND-ed and each key's
values OR-ed (an empty value list matches any value of the key); `tags_any` ORs the keys;
`not_tags` / `not_tags_any` negate those; `without_any_tag` wins over all four.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.core.context import Actor
from opencbr.core.errors import ValidationFailed

from .errors import TagNotFound
from .models import Vault, VaultStatus
from .vaults import get_vault

__all__ = [
    "MAX_TAGS",
    "TagQuery",
    "check_tags",
    "delete_tag",
    "find_vaults",
    "project_tags",
    "set_tags",
    "unset_tags",
    "vault_tags",
]

MAX_TAGS = 10
MAX_KEY, MAX_VALUE = 128, 255

Tag = dict[str, str]


def _check_key(key: str) -> str:
    key = key.strip()
    if not 1 <= len(key) <= MAX_KEY:
        raise ValidationFailed(reason=f"a tag key must be 1-{MAX_KEY} characters")
    return key


def check_tags(tags: Sequence[Mapping[str, object]]) -> list[Tag]:
    """Tags as given (key and value), validated: keys 1-128 characters, values at most 255,
    no key twice, at most 10."""
    checked: list[Tag] = []
    for tag in tags:
        key, value = tag.get("key"), tag.get("value", "")
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValidationFailed(reason='a tag is {"key": string, "value": string}')
        if len(value) > MAX_VALUE:
            raise ValidationFailed(reason=f"a tag value must be at most {MAX_VALUE} characters")
        checked.append({"key": _check_key(key), "value": value})
    keys = [t["key"] for t in checked]
    if len(set(keys)) != len(keys):
        raise ValidationFailed(reason="a tag key is given twice")
    if len(checked) > MAX_TAGS:
        raise ValidationFailed(reason=f"a vault has at most {MAX_TAGS} tags")
    return checked


def vault_tags(session: Session, actor: Actor, vault_id: str) -> list[Tag]:
    return list(get_vault(session, actor, vault_id).tags or [])


def set_tags(session: Session, actor: Actor, vault_id: str, tags: Sequence[Tag]) -> list[Tag]:
    """Add the tags, replacing the value of a key the vault already has; at most 10 in all."""
    vault = get_vault(session, actor, vault_id, lock=True)
    given = check_tags(tags)
    merged = {t["key"]: t["value"] for t in vault.tags or []}
    merged.update({t["key"]: t["value"] for t in given})
    if len(merged) > MAX_TAGS:
        raise ValidationFailed(reason=f"a vault has at most {MAX_TAGS} tags")
    vault.tags = [{"key": k, "value": v} for k, v in merged.items()]
    session.flush()
    return list(vault.tags)


def unset_tags(session: Session, actor: Actor, vault_id: str, tags: Sequence[Tag]) -> list[Tag]:
    """Remove the tags given: a tag with a value is removed only when the value matches, one
    without (or with an empty value) whatever its value. Missing keys are ignored."""
    vault = get_vault(session, actor, vault_id, lock=True)
    doomed = [(_check_key(str(t.get("key", ""))), t.get("value") or None) for t in tags]

    def removed(tag: Tag) -> bool:
        return any(tag["key"] == k and v in (None, tag["value"]) for k, v in doomed)

    vault.tags = [t for t in vault.tags or [] if not removed(t)]
    session.flush()
    return list(vault.tags)


def delete_tag(session: Session, actor: Actor, vault_id: str, key: str) -> None:
    """Remove one key (DeleteVaultTag); a key the vault lacks answers "not found"."""
    vault = get_vault(session, actor, vault_id, lock=True)
    kept = [t for t in vault.tags or [] if t["key"] != key]
    if len(kept) == len(vault.tags or []):
        raise TagNotFound(id=key)
    vault.tags = kept
    session.flush()


def _project_vaults(session: Session, actor: Actor) -> list[Vault]:
    query = select(Vault).where(
        Vault.project_id == actor.project_id, Vault.status != VaultStatus.DELETING
    )
    return list(session.scalars(query.order_by(Vault.created_at, Vault.id)))


def project_tags(session: Session, actor: Actor) -> list[dict[str, object]]:
    """Every key used on the project's vaults with the values it has (ShowVaultProjectTag)."""
    values: dict[str, list[str]] = {}
    for vault in _project_vaults(session, actor):
        for tag in vault.tags or []:
            seen = values.setdefault(tag["key"], [])
            if tag["value"] not in seen:
                seen.append(tag["value"])
    return [{"key": k, "values": v} for k, v in sorted(values.items())]


@dataclass(frozen=True)
class TagQuery:
    tags: Mapping[str, Sequence[str]] | None = None
    tags_any: Mapping[str, Sequence[str]] | None = None
    not_tags: Mapping[str, Sequence[str]] | None = None
    not_tags_any: Mapping[str, Sequence[str]] | None = None
    without_any_tag: bool = False
    name_contains: str | None = None
    object_type: str | None = None
    cloud_type: str | None = None
    exclude: Sequence[str] = field(default_factory=tuple)

    def matches(self, vault: Vault) -> bool:
        have = {t["key"]: t["value"] for t in vault.tags or []}
        if self.object_type and vault.object_type != self.object_type:
            return False
        if self.cloud_type and self.cloud_type != "public":
            return False
        if self.name_contains and self.name_contains not in vault.name:
            return False
        if self.without_any_tag:
            return not have

        def has(key: str, values: Sequence[str]) -> bool:
            return key in have and (not values or have[key] in values)

        def all_of(query: Mapping[str, Sequence[str]]) -> bool:
            return all(has(k, v) for k, v in query.items())

        def any_of(query: Mapping[str, Sequence[str]]) -> bool:
            return any(has(k, v) for k, v in query.items())

        return (
            (not self.tags or all_of(self.tags))
            and (not self.tags_any or any_of(self.tags_any))
            and (not self.not_tags or not all_of(self.not_tags))
            and (not self.not_tags_any or not any_of(self.not_tags_any))
        )


def find_vaults(
    session: Session, actor: Actor, query: TagQuery, limit: int, offset: int
) -> tuple[list[Vault], int]:
    """The caller's vaults matching the query (oldest first), one page, and how many match."""
    found = [v for v in _project_vaults(session, actor) if query.matches(v)]
    return found[offset : offset + limit], len(found)
