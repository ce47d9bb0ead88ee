"""The policy scheduler: fires each due policy once per period, auto-associates, keeps retention.

How it runs: `periodic_tick(runtime)` is appended to the job `WorkerPool.tick` hooks, so every
worker process (the embedded `serve` one and each `opencbr worker`) runs `scheduler_tick` about
once a minute. A tick hook rather than a self-re-enqueuing job because a job chain can break (a
lost or failed job ends the schedule) and needs seeding, while a hook needs neither; the hook is
throttled per process and skipped by threads that find another thread of the pool in it, so it
stays cheap. The throttle is only about cost: correctness never depends on process state.

Once per period, with any number of processes: a policy's period starts at each run time of its
trigger (`policy_rules.parse_schedule`). A tick fires the latest run time `t` with
`now - start_window < t <= now`, by a compare-and-swap `UPDATE cbr_policies SET last_fired_at=t
WHERE last_fired_at IS NULL OR last_fired_at < t`, in the same transaction as the checkpoints it
creates: the one transaction whose update changed the row fires; the others change nothing.
Run times missed by more than the start window (every worker down) are skipped, not caught up.

Firing a policy, for each vault that follows it (same project): auto-association first when the
vault has `auto_bind` (S13), then a checkpoint (`auto_trigger`, `policy_id`) of the whole vault;
a vault that cannot be backed up (no resources, full) gets a `skipped` operation log; a locked
vault is backed up as any other (`vault_lock`).

Auto-bind vaults that follow no policy of their own project use a default period: daily at
00:00 UTC with a 60-minute start window. In that window each tick associates the vault's
unprotected resources and backs up just those; association is idempotent (a resource is in one
vault only), so concurrent ticks associate and back up each resource once.
A vault whose policy is disabled is paused: nothing.

Retention: at every tick, each vault that follows an enabled policy with a count or age limit
gets `policy_rules.backups_to_drop` applied to its available automatic backups, per resource, and
backups past their own `expired_at` (manual checkpoints with a retention) are deleted too, all
through `deletion.delete_backup` acting as the vault's project. Deleting is a compare-and-swap,
so two processes deleting the same backup delete it once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Exists, exists, or_, select, update
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor, Runtime
from opencbr.core.db import Database
from opencbr.core.errors import AppError
from opencbr.core.jobs import throttled
from opencbr.iam.models import Project

from . import oplogs
from .autobind import auto_associate
from .checkpoints import CheckpointSpec, create_checkpoint
from .deletion import delete_backup
from .models import Backup, BackupStatus, Policy, Vault, VaultStatus
from .policy_rules import Rule, backups_to_drop, parse_rule, parse_schedule, retention_of

__all__ = [
    "DEFAULT_AUTOBIND_RULE",
    "apply_retention",
    "autobind_period",
    "due_periods",
    "fire_policy",
    "period_to_fire",
    "periodic_tick",
    "scheduler_tick",
]

log = logging.getLogger(__name__)

DEFAULT_AUTOBIND_RULE = "FREQ=DAILY;BYHOUR=0;BYMINUTE=0"
DEFAULT_WINDOW = timedelta(minutes=60)
TICK_EVERY = timedelta(seconds=60)
EXPIRED_BATCH = 200


# --- when: pure functions ----------------------------------------------------------------------


def due_periods(
    rules: Sequence[Rule], anchor: datetime, after: datetime, now: datetime
) -> list[datetime]:
    """Run times `t` of the rules with `after < t <= now` and `t >= anchor`, ascending.

    `anchor` is the policy's start (its creation): INTERVAL counts from its day or week.
    """
    found: set[datetime] = set()
    day = max(after, anchor).replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= now:
        for rule in rules:
            if not rule.runs_on(day, anchor):
                continue
            for minute in rule.times:
                t = day + timedelta(minutes=minute)
                if after < t <= now and t >= anchor:
                    found.add(t)
        day += timedelta(days=1)
    return sorted(found)


def period_to_fire(
    rules: Sequence[Rule],
    anchor: datetime,
    last_fired_at: datetime | None,
    now: datetime,
    window: timedelta,
) -> datetime | None:
    """The period start to fire now: the latest run time within the start window not fired yet."""
    after = now - window
    if last_fired_at is not None and last_fired_at > after:
        after = last_fired_at
    due = due_periods(rules, anchor, after, now)
    return due[-1] if due else None


def autobind_period(now: datetime) -> datetime | None:
    """The default period of an auto-bind vault without a policy, when `now` is in its window."""
    rule = parse_rule(DEFAULT_AUTOBIND_RULE)
    return period_to_fire([rule], datetime.min, None, now, DEFAULT_WINDOW)


# --- the tick ----------------------------------------------------------------------------------


def periodic_tick(runtime: Runtime, every: timedelta = TICK_EVERY) -> Callable[[], None]:
    """A `WorkerPool.tick` hook that runs `scheduler_tick` at most once per `every`."""
    return throttled(every, lambda: scheduler_tick(runtime), "scheduler tick")


def scheduler_tick(runtime: Runtime, now: datetime | None = None) -> None:
    """One scheduler pass: fire due policies, default-period auto-binding, retention."""
    now = now or utcnow()
    database = runtime.database
    for policy_id, period in _due_policies(database, now):
        _guarded(f"policy {policy_id}", fire_policy, database, policy_id, period, now)
    daily = autobind_period(now)
    if daily is not None:
        for vault_id in _unscheduled_autobind_vaults(database):
            _guarded(f"auto-bind vault {vault_id}", _autobind_vault, database, vault_id, daily)
    for vault_id in _retained_vaults(database):
        _guarded(f"retention of vault {vault_id}", _retain_vault, database, vault_id, now)
    _guarded("expired backups", _delete_expired, database, now)


def _guarded(what: str, fn: Callable[..., object], *args: object) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("scheduler: %s failed", what)


def _followed() -> Exists:
    """The policy has at least one vault of its project following it."""
    return exists().where(
        Vault.policy_id == Policy.id,
        Vault.project_id == Policy.project_id,
        Vault.status != VaultStatus.DELETING,
    )


def _due_policies(database: Database, now: datetime) -> list[tuple[str, datetime]]:
    with database.unit_of_work() as session:
        rows = session.execute(
            select(
                Policy.id,
                Policy.patterns,
                Policy.created_at,
                Policy.last_fired_at,
                Policy.start_window_minutes,
            ).where(
                Policy.enabled.is_(True),
                Policy.operation_type == "backup",
                _followed(),
            )
        ).all()
    due = []
    for policy_id, patterns, created_at, last_fired_at, window_minutes in rows:
        try:
            rules = parse_schedule(patterns)
        except AppError:
            log.warning("policy %s has an invalid trigger; not scheduled", policy_id)
            continue
        window = timedelta(minutes=window_minutes or 60)
        period = period_to_fire(rules, created_at, last_fired_at, now, window)
        if period is not None:
            due.append((policy_id, period))
    return due


def owner_actor(session: Session, vault: Vault) -> Actor:
    """The vault's project acting as itself (the scheduler works on the tenant's behalf)."""
    project = session.get(Project, vault.project_id)
    domain_id = project.domain_id if project is not None else ""
    return Actor(domain_id, vault.user_id, vault.project_id, vault.region)


def fire_policy(database: Database, policy_id: str, period: datetime, now: datetime) -> list[str]:
    """Fire one period of a policy unless another tick did; the checkpoint ids it created."""
    with database.unit_of_work() as session:
        won = session.execute(
            update(Policy)
            .where(
                Policy.id == policy_id,
                Policy.enabled.is_(True),
                or_(Policy.last_fired_at.is_(None), Policy.last_fired_at < period),
            )
            .values(last_fired_at=period)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not won:
            return []
        policy = session.get(Policy, policy_id)
        assert policy is not None
        followers = session.scalars(
            select(Vault)
            .where(
                Vault.policy_id == policy.id,
                Vault.project_id == policy.project_id,
                Vault.status != VaultStatus.DELETING,
            )
            .order_by(Vault.id)
        ).all()
        made = []
        for vault in followers:
            checkpoint_id = _back_up_vault(session, vault, policy.id, period, None)
            if checkpoint_id:
                made.append(checkpoint_id)
        return made


def _back_up_vault(
    session: Session, vault: Vault, policy_id: str | None, period: datetime, only: list[str] | None
) -> str | None:
    """Auto-associate (if the vault wants it), then take the period's checkpoint of the vault."""
    actor = owner_actor(session, vault)
    if vault.auto_bind and only is None:
        auto_associate(session, vault)
    prefix = "autobk" if policy_id else "autobind"
    spec = CheckpointSpec(
        vault_id=vault.id,
        name=f"{prefix}_{period:%Y%m%d%H%M}",
        resources=only,
        auto_trigger=True,
        policy_id=policy_id,
    )
    try:
        with session.begin_nested():
            return create_checkpoint(session, actor, spec).id
    except AppError as error:
        skipped = oplogs.start(
            session,
            vault.project_id,
            "backup",
            vault=vault,
            policy_id=policy_id or "",
            status="skipped",
        )
        skipped.error_code, skipped.error_message = error.code, error.message
        return None


def _unscheduled_autobind_vaults(database: Database) -> list[str]:
    with database.unit_of_work() as session:
        # Only a policy of the vault's own project schedules it: a policy id it cannot see (one
        # stored before CreateVault checked it) must not stop its automatic association.
        has_policy = exists().where(
            Policy.id == Vault.policy_id, Policy.project_id == Vault.project_id
        )
        query = select(Vault.id).where(
            Vault.auto_bind.is_(True),
            Vault.status == VaultStatus.AVAILABLE,
            or_(Vault.policy_id.is_(None), ~has_policy),
        )
        return list(session.scalars(query.order_by(Vault.id)))


def _autobind_vault(database: Database, vault_id: str, period: datetime) -> None:
    with database.unit_of_work() as session:
        query = select(Vault).where(Vault.id == vault_id)
        vault = session.scalar(query.with_for_update())  # one tick at a time per vault
        if vault is None or not vault.auto_bind or vault.status != VaultStatus.AVAILABLE:
            return
        taken = auto_associate(session, vault)
        if taken:
            _back_up_vault(session, vault, None, period, taken)


# --- retention ---------------------------------------------------------------------------------


def apply_retention(session: Session, vault: Vault, policy: Policy, now: datetime) -> list[str]:
    """Delete the vault's automatic backups that the policy's rules no longer keep."""
    retention = retention_of(policy.operation_definition or {})
    if not retention.limited:
        return []
    rows = session.execute(
        select(Backup.id, Backup.resource_id, Backup.created_at).where(
            Backup.vault_id == vault.id,
            Backup.project_id == vault.project_id,
            Backup.parent_id.is_(None),
            Backup.auto_trigger.is_(True),
            Backup.status == BackupStatus.AVAILABLE,
        )
    ).all()
    per_resource: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for backup_id, resource_id, created_at in rows:
        per_resource[resource_id].append((backup_id, created_at))
    doomed = sorted(
        backup_id
        for backups in per_resource.values()
        for backup_id in backups_to_drop(backups, retention, now)
    )
    return _delete_all(session, owner_actor(session, vault), doomed)


def _delete_all(session: Session, actor: Actor, backup_ids: Sequence[str]) -> list[str]:
    deleted = []
    for backup_id in backup_ids:
        try:
            with session.begin_nested():
                delete_backup(session, actor, backup_id)
        except AppError:  # already being deleted (another tick) or busy: skip it
            continue
        deleted.append(backup_id)
    return deleted


def _retained_vaults(database: Database) -> list[str]:
    with database.unit_of_work() as session:
        rows = session.execute(
            select(Vault.id, Policy.operation_definition)
            .join(Policy, Policy.id == Vault.policy_id)
            .where(
                Policy.project_id == Vault.project_id,
                Policy.enabled.is_(True),
                Vault.status != VaultStatus.DELETING,
            )
            .order_by(Vault.id)
        ).all()
    return [vault_id for vault_id, definition in rows if retention_of(definition or {}).limited]


def _retain_vault(database: Database, vault_id: str, now: datetime) -> None:
    with database.unit_of_work() as session:
        vault = session.get(Vault, vault_id)
        policy = session.get(Policy, vault.policy_id) if vault and vault.policy_id else None
        if vault is None or policy is None or policy.project_id != vault.project_id:
            return
        apply_retention(session, vault, policy, now)


def _delete_expired(database: Database, now: datetime) -> None:
    with database.unit_of_work() as session:
        rows = session.execute(
            select(Backup.id, Backup.vault_id)
            .where(
                Backup.expired_at.is_not(None),
                Backup.expired_at < now,
                Backup.parent_id.is_(None),
                Backup.status == BackupStatus.AVAILABLE,
            )
            .order_by(Backup.expired_at)
            .limit(EXPIRED_BATCH)
        ).all()
        for backup_id, vault_id in rows:
            vault = session.get(Vault, vault_id)
            if vault is not None:
                _delete_all(session, owner_actor(session, vault), [backup_id])
