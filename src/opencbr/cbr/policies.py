"""Backup policies: create, read, update, delete, and which vaults follow them. Their rules
(the schedule's RRULE subset, retention) are `policy_rules.py`, whose names are also reachable
from here.

A vault follows at most one policy (`Vault.policy_id`); only backup policies exist here
(replication is not offered), so `add_policy_ids` may name one policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from opencbr.core.context import Actor
from opencbr.core.errors import ValidationFailed
from opencbr.core.ids import is_uuid, new_uuid

from .errors import PolicyNotFound
from .models import Policy, Vault, VaultStatus
from .policy_rules import (
    MAX_PATTERNS,
    Retention,
    Rule,
    backups_to_drop,
    check_definition,
    parse_offset,
    parse_rule,
    parse_schedule,
    retention_of,
)
from .vaults import get_vault

__all__ = [
    "MAX_PATTERNS",
    "PolicySpec",
    "PolicyUpdate",
    "Retention",
    "Rule",
    "associate_policy",
    "associated_vault_ids",
    "backups_to_drop",
    "check_definition",
    "create_policy",
    "delete_policy",
    "dissociate_policy",
    "get_policy",
    "list_policies",
    "parse_offset",
    "parse_rule",
    "parse_schedule",
    "retention_of",
    "update_policy",
]

# --- policies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicySpec:
    name: str
    patterns: Sequence[str]
    operation_definition: Mapping[str, Any]
    operation_type: str = "backup"
    enabled: bool = True
    start_window_minutes: int | None = None


@dataclass(frozen=True)
class PolicyUpdate:
    name: str | None = None
    enabled: bool | None = None
    patterns: Sequence[str] | None = None
    operation_definition: Mapping[str, Any] | None = None
    start_window_minutes: int | None = None


_NAME = re.compile(r"^[\w-]{1,64}$")


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValidationFailed(reason="policy name must be 1-64 letters, digits, '_' or '-'")


def _check_window(minutes: int | None) -> int:
    if minutes is None:
        return 60
    if not 60 <= minutes <= 480:
        raise ValidationFailed(reason="trigger start_window_minutes must be 60..480")
    return minutes


def create_policy(session: Session, actor: Actor, spec: PolicySpec) -> Policy:
    _check_name(spec.name)
    if spec.operation_type != "backup":
        raise ValidationFailed(reason="operation_type must be backup (replication is not offered)")
    parse_schedule(spec.patterns)
    policy = Policy(
        id=new_uuid(),
        project_id=actor.project_id,
        name=spec.name,
        enabled=spec.enabled,
        operation_type=spec.operation_type,
        operation_definition=check_definition(spec.operation_definition),
        patterns=[p.strip() for p in spec.patterns],
        start_window_minutes=_check_window(spec.start_window_minutes),
        trigger_id=new_uuid(),
        last_fired_at=None,
    )
    session.add(policy)
    session.flush()
    return policy


def get_policy(session: Session, actor: Actor, policy_id: str, *, lock: bool = False) -> Policy:
    """The caller's policy; another project's answers like a missing one (S14)."""
    policy = None
    if is_uuid(policy_id):
        query = select(Policy).where(Policy.id == policy_id, Policy.project_id == actor.project_id)
        policy = session.scalar(query.with_for_update() if lock else query)
    if policy is None:
        raise PolicyNotFound(id=policy_id)
    return policy


def list_policies(
    session: Session,
    actor: Actor,
    operation_type: str | None = None,
    vault_id: str | None = None,
) -> list[Policy]:
    query = select(Policy).where(Policy.project_id == actor.project_id)
    if operation_type:
        if operation_type not in ("backup", "replication"):
            raise ValidationFailed(reason="operation_type must be backup or replication")
        query = query.where(Policy.operation_type == operation_type)
    if vault_id:
        followed = select(Vault.policy_id).where(
            Vault.id == vault_id,
            Vault.project_id == actor.project_id,
            Vault.status != VaultStatus.DELETING,
        )
        query = query.where(Policy.id.in_(followed))
    return list(session.scalars(query.order_by(Policy.created_at.desc(), Policy.id)))


def associated_vault_ids(session: Session, policy: Policy) -> list[str]:
    query = select(Vault.id).where(
        Vault.policy_id == policy.id,
        Vault.project_id == policy.project_id,
        Vault.status != VaultStatus.DELETING,
    )
    return list(session.scalars(query.order_by(Vault.created_at, Vault.id)))


def update_policy(session: Session, actor: Actor, policy_id: str, changes: PolicyUpdate) -> Policy:
    policy = get_policy(session, actor, policy_id, lock=True)
    if changes.name is not None:
        _check_name(changes.name)
        policy.name = changes.name
    if changes.enabled is not None:
        policy.enabled = changes.enabled
    if changes.patterns is not None:
        parse_schedule(changes.patterns)
        policy.patterns = [p.strip() for p in changes.patterns]
    if changes.start_window_minutes is not None:
        policy.start_window_minutes = _check_window(changes.start_window_minutes)
    if changes.operation_definition is not None:
        policy.operation_definition = check_definition(changes.operation_definition)
    session.flush()
    return policy


def delete_policy(session: Session, actor: Actor, policy_id: str) -> None:
    """Delete a policy; the vaults that followed it keep their backups and follow none."""
    policy = get_policy(session, actor, policy_id, lock=True)
    session.execute(
        update(Vault)
        .where(Vault.policy_id == policy.id, Vault.project_id == actor.project_id)
        .values(policy_id=None)
        .execution_options(synchronize_session=False)
    )
    session.delete(policy)
    session.flush()


def associate_policy(
    session: Session, actor: Actor, vault_id: str, policy_ids: Sequence[str]
) -> tuple[Vault, Policy]:
    """Make the vault follow a policy (replacing the one it followed)."""
    wanted = list(dict.fromkeys(p for p in policy_ids if p))
    if len(wanted) != 1:
        raise ValidationFailed(reason="name exactly one backup policy (policy_id)")
    vault = get_vault(session, actor, vault_id, lock=True)
    policy = get_policy(session, actor, wanted[0])
    if vault.protect_type != "backup" or policy.operation_type != "backup":
        raise ValidationFailed(reason="only backup policies apply to backup vaults")
    vault.policy_id = policy.id
    session.flush()
    return vault, policy


def dissociate_policy(session: Session, actor: Actor, vault_id: str, policy_id: str) -> Vault:
    vault = get_vault(session, actor, vault_id, lock=True)
    policy = get_policy(session, actor, policy_id)
    if vault.policy_id != policy.id:
        raise ValidationFailed(reason=f"policy {policy.id} is not associated with vault {vault.id}")
    vault.policy_id = None
    session.flush()
    return vault
