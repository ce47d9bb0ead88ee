"""Parties, vaults and stored backup records for the sharing tests.

`stored_backup` inserts a checkpoint and a backup row in status `available` directly: it is a
stored backup record; the data plane (chunk store, disk images) is not involved. Sharing rules
only read the record (owner, region, type, status, size), so these tests need nothing more.
Vaults, projects and members are made through the real services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from opencbr.cbr import members, vaults
from opencbr.cbr.models import Backup, Checkpoint, GiB, Member, ResourceType, Vault
from opencbr.core.context import Actor, Runtime
from opencbr.core.errors import AppError
from opencbr.core.ids import new_uuid
from opencbr.iam import service as iam
from opencbr.iam.service import TenantCredentials
from tests.conftest import TenantFactory, unique

__all__ = [
    "DISK",
    "SERVER",
    "MiB",
    "Party",
    "Rollback",
    "SharingWorld",
    "attempt",
    "build_world",
    "code_of",
    "extra_project",
    "make_vault",
    "member_row",
    "party",
    "run",
    "stored_backup",
    "vault_row",
]

DISK = ResourceType.DISK.value
SERVER = ResourceType.SERVER.value
MiB = 2**20
T = TypeVar("T")


@dataclass(frozen=True)
class Party:
    """One project of one tenant, as a service caller."""

    creds: TenantCredentials
    actor: Actor

    @property
    def project_id(self) -> str:
        assert self.actor.project_id is not None
        return self.actor.project_id


def run(runtime: Runtime, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a service in its own unit of work (commits, or rolls back on error)."""
    with runtime.database.unit_of_work() as session:
        return fn(session, *args, **kwargs)


def set_status(
    runtime: Runtime,
    who: Party,
    backup_id: str,
    status: str,
    vault_id: str | None = None,
    **options: Any,
) -> Member:
    """The recipient `who` accepts (into `vault_id`) or rejects a share, in its own unit of work."""
    return run(
        runtime,
        members.update_member_status,
        who.actor,
        backup_id,
        who.project_id,
        status,
        vault_id,
        **options,
    )


class Rollback(Exception):
    """Raised on purpose to undo a probe's unit of work."""


def attempt(runtime: Runtime, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """Run a call and roll it back whatever happens: "ok" or the refusal's error code."""
    outcome = "ok"
    try:
        with runtime.database.unit_of_work() as session:
            try:
                fn(session, *args, **kwargs)
            except AppError as exc:
                outcome = exc.code
            raise Rollback()
    except Rollback:
        pass
    return outcome


def code_of(runtime: Runtime, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The error code a (committing) call raises; fails the test when it succeeds."""
    with pytest.raises(AppError) as caught:
        run(runtime, fn, *args, **kwargs)
    return caught.value.code


def party(runtime: Runtime, creds: TenantCredentials, region: str = "region-1") -> Party:
    return Party(creds, _actor(runtime, creds, creds.projects[region], region))


def _actor(runtime: Runtime, creds: TenantCredentials, project_id: str, region: str) -> Actor:
    with runtime.database.unit_of_work() as session:
        _, principal = iam.resolve_access_key(session, runtime.root_key, creds.access_key)
    return Actor(creds.domain_id, principal.user_id, project_id, region)


def extra_project(
    runtime: Runtime, creds: TenantCredentials, region: str = "region-1", suffix: str | None = None
) -> Party:
    """Another project of the same account (a sub-project `<region>_<suffix>`)."""
    with runtime.database.unit_of_work() as session:
        project = iam.create_project(
            session,
            creds.domain_id,
            region,
            runtime.settings.regions,
            suffix or unique("p").replace("-", ""),
        )
        project_id = project.id
    return Party(creds, _actor(runtime, creds, project_id, region))


def make_vault(runtime: Runtime, who: Party, object_type: str = "disk", size_gb: int = 10) -> str:
    """A real vault of `who`, made through the vault service."""
    spec = vaults.VaultSpec(name=unique("vault"), object_type=object_type, size_gb=size_gb)
    return run(runtime, vaults.create_vault, who.actor, spec).id


def stored_backup(
    runtime: Runtime,
    owner: Party,
    vault_id: str,
    *,
    size_bytes: int = GiB // 4,
    resource_type: str = DISK,
    status: str = "available",
    encrypted: bool = False,
    disks: int = 2,
) -> str:
    """A stored backup record (data plane not involved): checkpoint + backup rows, and for a
    server backup one child disk backup per disk. Returns the backup id."""
    checkpoint_id, backup_id = new_uuid(), new_uuid()
    with runtime.database.unit_of_work() as session:
        session.add(
            Checkpoint(
                id=checkpoint_id,
                project_id=owner.project_id,
                vault_id=vault_id,
                name=unique("cp"),
                status="available",
                skipped=[],
            )
        )
        session.add(
            _record(owner, vault_id, checkpoint_id, backup_id, resource_type, status, size_bytes)
        )
        session.flush()
        if resource_type == SERVER:
            for index in range(disks):
                child = _record(
                    owner, vault_id, checkpoint_id, new_uuid(), DISK, status, size_bytes // disks
                )
                child.parent_id = backup_id
                child.device = f"/dev/vd{'abcdefgh'[index]}"
                session.add(child)
        for row in session.scalars(select(Backup).where(Backup.checkpoint_id == checkpoint_id)):
            row.encrypted = encrypted
    return backup_id


def _record(
    owner: Party,
    vault_id: str,
    checkpoint_id: str,
    backup_id: str,
    resource_type: str,
    status: str,
    size_bytes: int,
) -> Backup:
    return Backup(
        id=backup_id,
        project_id=owner.project_id,
        region=owner.actor.region,
        vault_id=vault_id,
        checkpoint_id=checkpoint_id,
        name=unique("backup"),
        status=status,
        resource_id=new_uuid(),
        resource_name=unique("res"),
        resource_type=resource_type,
        resource_az="az1",
        resource_size_gb=max(1, size_bytes // GiB),
        size_bytes=size_bytes,
        stored_bytes=size_bytes,
    )


def vault_row(runtime: Runtime, vault_id: str) -> Vault:
    with runtime.database.unit_of_work() as session:
        vault = session.get(Vault, vault_id)
        assert vault is not None
        return vault


def member_row(runtime: Runtime, backup_id: str, project_id: str) -> Member | None:
    with runtime.database.unit_of_work() as session:
        return session.scalar(
            select(Member).where(
                Member.backup_id == backup_id, Member.dest_project_id == project_id
            )
        )


@dataclass
class SharingWorld:
    """Owner A shares a disk backup; B pending, C accepted (into its vault), D rejected;
    outsiders: A's other project in the region, tenant E, and A's project in region-2."""

    runtime: Runtime
    owner: Party
    pending: Party
    accepted: Party
    rejected: Party
    same_account: Party
    other_account: Party
    other_region: Party
    owner_vault: str
    accepted_vault: str
    backup_id: str

    def actors(self) -> dict[str, Party]:
        return {
            "owner": self.owner,
            "pending": self.pending,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "same_account": self.same_account,
            "other_account": self.other_account,
            "other_region": self.other_region,
        }


def build_world(runtime: Runtime, make_tenant: TenantFactory) -> SharingWorld:
    a, b, c, d, e = (make_tenant() for _ in range(5))
    owner = party(runtime, a)
    world = SharingWorld(
        runtime=runtime,
        owner=owner,
        pending=party(runtime, b),
        accepted=party(runtime, c),
        rejected=party(runtime, d),
        same_account=extra_project(runtime, a),
        other_account=party(runtime, e),
        other_region=party(runtime, a, "region-2"),
        owner_vault=make_vault(runtime, owner),
        accepted_vault="",
        backup_id="",
    )
    world.backup_id = stored_backup(runtime, owner, world.owner_vault)
    world.accepted_vault = make_vault(runtime, world.accepted)
    recipients = [world.pending.project_id, world.accepted.project_id, world.rejected.project_id]
    run(runtime, members.add_members, owner.actor, world.backup_id, recipients)
    set_status(runtime, world.accepted, world.backup_id, "accepted", world.accepted_vault)
    set_status(runtime, world.rejected, world.backup_id, "rejected")
    return world


@pytest.fixture
def world(runtime: Runtime, make_tenant: TenantFactory) -> SharingWorld:
    return build_world(runtime, make_tenant)
