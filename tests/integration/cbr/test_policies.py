"""Policies on real SQLite and PostgreSQL: CRUD and association, the scheduler firing once per
period under concurrent ticks, retention, and automatic association (S13).

Disks and servers are inserted as EVS rows; the backups a checkpoint starts are jobs these
tests do not run: they check the checkpoint, backup and job rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from opencbr.cbr import policies, scheduler, vaults
from opencbr.cbr.autobind import auto_associate
from opencbr.cbr.models import Backup, Checkpoint, Policy, Vault, VaultResource
from opencbr.core.context import Actor, Runtime
from opencbr.core.errors import AppError
from opencbr.core.ids import new_uuid
from opencbr.core.jobs import Job
from opencbr.evs.models import Disk, Server
from opencbr.iam import service as iam
from tests.conftest import TenantFactory, unique

T = TypeVar("T")
DISK, SERVER = "OS::Cinder::Volume", "OS::Nova::Server"
HOURLY = "FREQ=DAILY;BYHOUR=" + ",".join(str(h) for h in range(24)) + ";BYMINUTE=0"


def run(runtime: Runtime, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with runtime.database.unit_of_work() as session:
        return fn(session, *args, **kwargs)


def code_of(runtime: Runtime, fn: Callable[..., Any], *args: Any) -> str:
    with pytest.raises(AppError) as caught:
        run(runtime, fn, *args)
    return caught.value.code


def actor_of(runtime: Runtime, make_tenant: TenantFactory) -> Actor:
    creds = make_tenant()
    with runtime.database.unit_of_work() as session:
        _, principal = iam.resolve_access_key(session, runtime.root_key, creds.access_key)
    return Actor(creds.domain_id, principal.user_id, creds.projects["region-1"], "region-1")


def add_disk(runtime: Runtime, actor: Actor, **fields: Any) -> str:
    disk_id = new_uuid()
    values: dict[str, Any] = {
        "id": disk_id,
        "project_id": actor.project_id,
        "region": actor.region,
        "name": unique("disk"),
        "size_gb": 1,
        "status": "available",
    }
    values.update(fields)
    with runtime.database.unit_of_work() as session:
        session.add(Disk(**values))
    return disk_id


def add_server(runtime: Runtime, actor: Actor, **fields: Any) -> str:
    server_id = new_uuid()
    with runtime.database.unit_of_work() as session:
        session.add(
            Server(
                id=server_id,
                project_id=actor.project_id,
                region=actor.region,
                name=unique("srv"),
                **fields,
            )
        )
    return server_id


def make_vault(runtime: Runtime, actor: Actor, object_type: str = "disk", **fields: Any) -> str:
    spec = vaults.VaultSpec(name=unique("v"), object_type=object_type, size_gb=100, **fields)
    return run(runtime, vaults.create_vault, actor, spec).id


def make_policy(
    runtime: Runtime, actor: Actor, patterns: list[str], definition: dict[str, Any] | None = None
) -> str:
    spec = policies.PolicySpec(unique("p"), patterns, definition or {})
    return run(runtime, policies.create_policy, actor, spec).id


def set_created(runtime: Runtime, policy_id: str, when: datetime) -> None:
    with runtime.database.unit_of_work() as session:
        policy = session.get(Policy, policy_id)
        assert policy is not None
        policy.created_at = when


def rows(runtime: Runtime, query: Any) -> list[Any]:
    with runtime.database.unit_of_work() as session:
        return list(session.scalars(query))


# --- CRUD and association ---------------------------------------------------------------------


def test_policy_crud_association_and_isolation(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    alice, mallory = actor_of(runtime, make_tenant), actor_of(runtime, make_tenant)
    vault_id = make_vault(runtime, alice)
    policy_id = make_policy(runtime, alice, [HOURLY], {"max_backups": 3})
    other_id = make_policy(runtime, alice, ["FREQ=WEEKLY;BYDAY=MO;BYHOUR=3"])

    run(runtime, policies.associate_policy, alice, vault_id, [policy_id])
    listed = run(runtime, policies.list_policies, alice, None, vault_id)
    assert [p.id for p in listed] == [policy_id]
    assert {p.id for p in run(runtime, policies.list_policies, alice, "backup")} == {
        policy_id,
        other_id,
    }
    assert run(runtime, policies.list_policies, alice, "replication") == []

    def vault_ids(session: Any, policy_id: str) -> list[str]:
        return policies.associated_vault_ids(
            session, policies.get_policy(session, alice, policy_id)
        )

    assert run(runtime, vault_ids, policy_id) == [vault_id]

    # outsiders see nothing: not the policy, not the vault
    assert code_of(runtime, policies.get_policy, mallory, policy_id) == "BackupService.6401"
    assert code_of(runtime, policies.associate_policy, mallory, vault_id, [policy_id]) in (
        "BackupService.6105",
        "BackupService.6401",
    )
    assert run(runtime, policies.list_policies, mallory, None, vault_id) == []

    # replacing, then refusing a dissociation of a policy the vault does not follow
    run(runtime, policies.associate_policy, alice, vault_id, [other_id])
    assert code_of(runtime, policies.dissociate_policy, alice, vault_id, policy_id) == (
        "BackupService.9900"
    )
    assert code_of(runtime, policies.associate_policy, alice, vault_id, [policy_id, other_id]) == (
        "BackupService.9900"
    )
    run(runtime, policies.dissociate_policy, alice, vault_id, other_id)
    assert rows(runtime, select(Vault.policy_id).where(Vault.id == vault_id)) == [None]

    run(runtime, policies.associate_policy, alice, vault_id, [policy_id])
    update = policies.PolicyUpdate(name="renamed", enabled=False, patterns=["FREQ=DAILY;BYHOUR=1"])
    changed = run(runtime, policies.update_policy, alice, policy_id, update)
    assert (changed.name, changed.enabled, changed.patterns) == (
        "renamed",
        False,
        ["FREQ=DAILY;BYHOUR=1"],
    )
    bad = policies.PolicyUpdate(patterns=["FREQ=DAILY;BYHOUR=1;BYMINUTE=0,10"])
    assert code_of(runtime, policies.update_policy, alice, policy_id, bad) == "BackupService.9900"

    run(runtime, policies.delete_policy, alice, policy_id)
    assert code_of(runtime, policies.get_policy, alice, policy_id) == "BackupService.6401"
    assert rows(runtime, select(Vault.policy_id).where(Vault.id == vault_id)) == [None]


# --- the scheduler ----------------------------------------------------------------------------


@dataclass
class Scheduled:
    actor: Actor
    vault_id: str
    policy_id: str
    disks: list[str]


@pytest.fixture
def scheduled(runtime: Runtime, make_tenant: TenantFactory) -> Scheduled:
    actor = actor_of(runtime, make_tenant)
    disks = [add_disk(runtime, actor), add_disk(runtime, actor)]
    vault_id = make_vault(runtime, actor, resources=[vaults.ResourceSpec(d, DISK) for d in disks])
    policy_id = make_policy(runtime, actor, [HOURLY])
    set_created(runtime, policy_id, datetime(2026, 1, 1))
    run(runtime, policies.associate_policy, actor, vault_id, [policy_id])
    return Scheduled(actor, vault_id, policy_id, disks)


def checkpoints_of(runtime: Runtime, vault_id: str) -> list[Checkpoint]:
    query = select(Checkpoint).where(Checkpoint.vault_id == vault_id)
    return rows(runtime, query.order_by(Checkpoint.created_at))


def test_a_policy_fires_once_per_period_under_concurrent_ticks(
    runtime: Runtime, scheduled: Scheduled
) -> None:
    now = datetime(2026, 2, 2, 10, 17)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def tick() -> None:
        try:
            start.wait()
            scheduler.scheduler_tick(runtime, now=now)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors

    made = checkpoints_of(runtime, scheduled.vault_id)
    assert len(made) == 1
    checkpoint = made[0]
    assert checkpoint.auto_trigger
    assert checkpoint.policy_id == scheduled.policy_id
    assert checkpoint.name == "autobk_202602021000"
    backups = rows(runtime, select(Backup).where(Backup.checkpoint_id == checkpoint.id))
    assert sorted(b.resource_id for b in backups) == sorted(scheduled.disks)
    assert all(b.auto_trigger and b.policy_id == scheduled.policy_id for b in backups)
    assert all(b.status == "protecting" for b in backups)
    jobs = rows(
        runtime,
        select(Job).where(Job.kind == "cbr.backup", Job.project_id == scheduled.actor.project_id),
    )
    assert sorted(j.payload["backup_id"] for j in jobs) == sorted(b.id for b in backups)
    fired = rows(runtime, select(Policy.last_fired_at).where(Policy.id == scheduled.policy_id))
    assert fired == [datetime(2026, 2, 2, 10, 0)]

    # the same period again: nothing; the next period: one more checkpoint
    scheduler.scheduler_tick(runtime, now=now + timedelta(minutes=30))
    assert len(checkpoints_of(runtime, scheduled.vault_id)) == 1
    with runtime.database.unit_of_work() as session:  # let the first backups finish
        for backup in session.scalars(select(Backup).where(Backup.vault_id == scheduled.vault_id)):
            backup.status = "available"
    scheduler.scheduler_tick(runtime, now=now + timedelta(hours=1))
    assert len(checkpoints_of(runtime, scheduled.vault_id)) == 2


def test_disabled_policies_and_missed_windows_do_not_fire(
    runtime: Runtime, scheduled: Scheduled
) -> None:
    update = policies.PolicyUpdate(enabled=False)
    run(runtime, policies.update_policy, scheduled.actor, scheduled.policy_id, update)
    scheduler.scheduler_tick(runtime, now=datetime(2026, 2, 2, 10, 5))
    assert checkpoints_of(runtime, scheduled.vault_id) == []
    run(runtime, policies.update_policy, scheduled.actor, scheduled.policy_id,
        policies.PolicyUpdate(enabled=True, patterns=["FREQ=DAILY;BYHOUR=8"]))  # fmt: skip
    scheduler.scheduler_tick(runtime, now=datetime(2026, 2, 2, 10, 5))  # 2 h late, window 1 h
    assert checkpoints_of(runtime, scheduled.vault_id) == []


def test_a_vault_with_nothing_to_back_up_gets_a_skipped_log(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    from opencbr.cbr.models import OperationLog

    actor = actor_of(runtime, make_tenant)
    vault_id = make_vault(runtime, actor)
    policy_id = make_policy(runtime, actor, [HOURLY])
    set_created(runtime, policy_id, datetime(2026, 1, 1))
    run(runtime, policies.associate_policy, actor, vault_id, [policy_id])
    scheduler.scheduler_tick(runtime, now=datetime(2026, 2, 2, 10, 5))
    logs = rows(runtime, select(OperationLog).where(OperationLog.vault_id == vault_id))
    assert [(log.status, log.error_code, log.policy_id) for log in logs] == [
        ("skipped", "BackupService.0001", policy_id)
    ]
    assert checkpoints_of(runtime, vault_id) == []


# --- retention --------------------------------------------------------------------------------


def add_backup(
    runtime: Runtime,
    actor: Actor,
    vault_id: str,
    resource_id: str,
    created_at: datetime,
    *,
    auto: bool = True,
    status: str = "available",
) -> str:
    backup_id, checkpoint_id = new_uuid(), new_uuid()
    with runtime.database.unit_of_work() as session:
        session.add(
            Checkpoint(
                id=checkpoint_id,
                project_id=actor.project_id,
                vault_id=vault_id,
                name=unique("cp"),
                status="available",
                auto_trigger=auto,
                skipped=[],
            )
        )
        session.add(
            Backup(
                id=backup_id,
                project_id=actor.project_id,
                region=actor.region,
                vault_id=vault_id,
                checkpoint_id=checkpoint_id,
                name=unique("b"),
                status=status,
                resource_id=resource_id,
                resource_type=DISK,
                auto_trigger=auto,
                created_at=created_at,
            )
        )
    return backup_id


def test_retention_deletes_exactly_what_the_rules_drop(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    actor = actor_of(runtime, make_tenant)
    disk_a, disk_b = add_disk(runtime, actor), add_disk(runtime, actor)
    vault_id = make_vault(runtime, actor)
    # never due during this test (03:00 only), keeps the 2 newest + the newest of 3 days
    definition = {"max_backups": 2, "day_backups": 3, "timezone": "UTC+00:00"}
    policy_id = make_policy(runtime, actor, ["FREQ=DAILY;BYHOUR=3"], definition)
    run(runtime, policies.associate_policy, actor, vault_id, [policy_id])
    now = datetime(2026, 2, 10, 12, 0)
    day = timedelta(days=1)
    # disk A: two backups a day (01:00, 11:00) for 5 days
    a = {
        (d, h): add_backup(runtime, actor, vault_id, disk_a, now.replace(hour=h) - d * day)
        for d in range(5)
        for h in (1, 11)
    }
    # disk B: one backup only; a manual old one, a protecting one, an errored one
    b_only = add_backup(runtime, actor, vault_id, disk_b, now - 30 * day)
    manual = add_backup(runtime, actor, vault_id, disk_a, now - 60 * day, auto=False)
    running = add_backup(runtime, actor, vault_id, disk_a, now - 90 * day, status="protecting")
    failed = add_backup(runtime, actor, vault_id, disk_a, now - 90 * day, status="error")

    scheduler.scheduler_tick(runtime, now=now)

    kept_a = {a[(0, 11)], a[(0, 1)], a[(1, 11)], a[(2, 11)]}
    dropped = set(a.values()) - kept_a
    statuses = dict(rows_pairs(runtime, actor.project_id))
    assert {i for i, s in statuses.items() if s == "deleting"} == dropped
    assert statuses[b_only] == statuses[manual] == "available"
    assert (statuses[running], statuses[failed]) == ("protecting", "error")
    deletes = select(Job).where(Job.kind == "cbr.delete_backup", Job.project_id == actor.project_id)
    jobs = rows(runtime, deletes)
    assert sorted(j.payload["backup_id"] for j in jobs) == sorted(dropped)

    scheduler.scheduler_tick(runtime, now=now + timedelta(minutes=1))  # nothing more to drop
    assert len(rows(runtime, deletes)) == len(dropped)


def test_expired_manual_backups_are_deleted(runtime: Runtime, make_tenant: TenantFactory) -> None:
    actor = actor_of(runtime, make_tenant)
    vault_id = make_vault(runtime, actor)
    now = datetime(2026, 2, 10, 12, 0)
    old = add_backup(runtime, actor, vault_id, new_uuid(), now - timedelta(days=9), auto=False)
    fresh = add_backup(runtime, actor, vault_id, new_uuid(), now, auto=False)
    with runtime.database.unit_of_work() as session:
        for backup_id, days in ((old, -1), (fresh, 6)):
            backup = session.get(Backup, backup_id)
            assert backup is not None
            backup.expired_at = now + timedelta(days=days)
    scheduler.scheduler_tick(runtime, now=now)
    statuses = dict(rows_pairs(runtime, actor.project_id))
    assert (statuses[old], statuses[fresh]) == ("deleting", "available")


def rows_pairs(runtime: Runtime, project_id: str | None) -> list[tuple[str, str]]:
    """Backup ids and statuses of one project (the PostgreSQL database is shared by the run)."""
    query = select(Backup.id, Backup.status).where(Backup.project_id == project_id)
    with runtime.database.unit_of_work() as session:
        return [(i, s) for i, s in session.execute(query).all()]


# --- automatic association (S13) --------------------------------------------------------------


def test_auto_association_picks_exactly_the_unprotected_resources_of_its_type(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    actor, other = actor_of(runtime, make_tenant), actor_of(runtime, make_tenant)
    free = add_disk(runtime, actor, tags={"env": "prod"})
    in_use = add_disk(runtime, actor, status="in-use", tags={"env": "dev"})
    add_disk(runtime, actor, status="error")
    add_disk(runtime, actor, status="creating")
    add_disk(runtime, other)  # another tenant's
    add_disk(runtime, actor, region="region-2")  # another region
    protected = add_disk(runtime, actor)
    make_vault(runtime, actor, resources=[vaults.ResourceSpec(protected, DISK)])
    server = add_server(runtime, actor)
    add_disk(runtime, actor, server_id=server, bootable=True)  # its server's vault covers it
    loose_server = add_server(runtime, actor)
    add_server(runtime, actor, status="DELETED")
    make_vault(runtime, actor, "server", resources=[vaults.ResourceSpec(server, SERVER)])

    tagged_id = make_vault(
        runtime, actor, auto_bind=True, bind_rules={"tags": [{"key": "env", "value": "prod"}]}
    )
    disk_vault_id = make_vault(runtime, actor, auto_bind=True)
    server_vault_id = make_vault(runtime, actor, "server", auto_bind=True)

    def associate(session: Any, vault_id: str) -> list[str]:
        vault = session.get(Vault, vault_id)
        return auto_associate(session, vault)

    assert run(runtime, associate, tagged_id) == [free]
    assert run(runtime, associate, disk_vault_id) == [in_use]
    assert run(runtime, associate, server_vault_id) == [loose_server]
    assert run(runtime, associate, disk_vault_id) == []  # nothing left
    held = rows(runtime, select(VaultResource).where(VaultResource.vault_id == disk_vault_id))
    assert [(r.resource_id, r.auto_protect, r.resource_type) for r in held] == [
        (in_use, True, DISK)
    ]


def test_auto_bind_vaults_are_served_at_their_period(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    actor = actor_of(runtime, make_tenant)
    first = add_disk(runtime, actor)
    # no policy: the default daily period at 00:00 UTC (60-minute window)
    lone_id = make_vault(runtime, actor, auto_bind=True)
    scheduler.scheduler_tick(runtime, now=datetime(2026, 2, 3, 13, 0))  # outside the window
    assert checkpoints_of(runtime, lone_id) == []
    scheduler.scheduler_tick(runtime, now=datetime(2026, 2, 3, 0, 10))
    made = checkpoints_of(runtime, lone_id)
    assert [(c.name, c.auto_trigger, c.policy_id) for c in made] == [
        ("autobind_202602030000", True, None)
    ]
    backups = rows(runtime, select(Backup).where(Backup.checkpoint_id == made[0].id))
    assert [b.resource_id for b in backups] == [first]
    scheduler.scheduler_tick(runtime, now=datetime(2026, 2, 3, 0, 20))  # nothing new
    assert len(checkpoints_of(runtime, lone_id)) == 1

    # with a policy: association happens when the policy fires, then the whole vault is backed up
    second = add_disk(runtime, actor)
    scheduled_id = make_vault(runtime, actor, auto_bind=True)
    policy_id = make_policy(runtime, actor, [HOURLY])
    set_created(runtime, policy_id, datetime(2026, 1, 1))
    run(runtime, policies.associate_policy, actor, scheduled_id, [policy_id])
    scheduler.scheduler_tick(runtime, now=datetime(2026, 2, 3, 15, 30))
    made = checkpoints_of(runtime, scheduled_id)
    assert len(made) == 1
    backups = rows(runtime, select(Backup).where(Backup.checkpoint_id == made[0].id))
    assert [b.resource_id for b in backups] == [second]
    assert checkpoints_of(runtime, lone_id)[-1].name == "autobind_202602030000"


# --- a policy the vault cannot see --------------------------------------------------------------


def test_create_vault_refuses_a_policy_of_another_project_or_none(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    alice, mallory = actor_of(runtime, make_tenant), actor_of(runtime, make_tenant)
    theirs = make_policy(runtime, alice, [HOURLY])
    for policy_id in (theirs, new_uuid(), "not-a-uuid"):
        spec = vaults.VaultSpec(
            name=unique("v"), object_type="disk", size_gb=1, policy_id=policy_id
        )
        assert code_of(runtime, vaults.create_vault, mallory, spec) == "BackupService.6401"
    assert rows(runtime, select(Vault.id).where(Vault.policy_id == theirs)) == []

    mine = make_policy(runtime, mallory, [HOURLY])
    vault_id = make_vault(runtime, mallory, policy_id=mine)
    assert rows(runtime, select(Vault.policy_id).where(Vault.id == vault_id)) == [mine]


def test_a_policy_of_another_project_does_not_schedule_an_auto_bind_vault(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    alice, mallory = actor_of(runtime, make_tenant), actor_of(runtime, make_tenant)
    theirs = make_policy(runtime, alice, [HOURLY])
    disk_id = add_disk(runtime, mallory)
    vault_id = make_vault(runtime, mallory, auto_bind=True)
    with runtime.database.unit_of_work() as session:  # stored before CreateVault checked it
        vault = session.get(Vault, vault_id)
        assert vault is not None
        vault.policy_id = theirs
    scheduler.scheduler_tick(runtime, now=datetime(2026, 2, 3, 0, 10))
    made = checkpoints_of(runtime, vault_id)
    assert [(c.name, c.policy_id) for c in made] == [("autobind_202602030000", None)]
    backups = rows(runtime, select(Backup).where(Backup.checkpoint_id == made[0].id))
    assert [b.resource_id for b in backups] == [disk_id]
