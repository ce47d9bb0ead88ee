"""Concurrent sharing calls on real SQLite and PostgreSQL: threads, each with its own unit of
work, start together at a barrier. On PostgreSQL the backup and vault row locks and the
conditional capacity update decide; on SQLite transactions begin IMMEDIATE and serialise.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from opencbr.cbr import deletion, members
from opencbr.cbr.models import Backup, GiB, Member
from opencbr.core.context import Runtime
from opencbr.core.errors import AppError
from tests.conftest import TenantFactory
from tests.integration.cbr.sharing_fixtures import (
    MiB,
    extra_project,
    make_vault,
    party,
    run,
    set_status,
    stored_backup,
    vault_row,
)

pytestmark = pytest.mark.slow


def _together(runtime: Runtime, calls: list[Callable[..., Any]]) -> Counter[str]:
    """Run each call in its own thread and unit of work at once; count outcomes by code."""
    barrier = threading.Barrier(len(calls))

    def one(call: Callable[..., Any]) -> str:
        barrier.wait()
        try:
            with runtime.database.unit_of_work() as session:
                call(session)
        except AppError as exc:
            return exc.code
        return "ok"

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return Counter(pool.map(one, calls))


def test_s6_twenty_concurrent_accepts_into_room_for_one_exactly_one_succeeds(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner = party(runtime, make_tenant())
    owner_vault = make_vault(runtime, owner, size_gb=100)
    recipient = party(runtime, make_tenant())
    vault_id = make_vault(runtime, recipient, size_gb=1)  # 1024 MiB: one 600 MiB share fits
    shared = [stored_backup(runtime, owner, owner_vault, size_bytes=600 * MiB) for _ in range(20)]
    for backup_id in shared:
        run(runtime, members.add_members, owner.actor, backup_id, [recipient.project_id])

    def accept(backup_id: str) -> Callable[..., Any]:
        return lambda session: members.update_member_status(
            session, recipient.actor, backup_id, recipient.project_id, "accepted", vault_id
        )

    outcomes = _together(runtime, [accept(b) for b in shared])
    assert outcomes == Counter({"ok": 1, "BackupService.6114": 19})
    assert vault_row(runtime, vault_id).used_bytes == 600 * MiB
    with runtime.database.unit_of_work() as session:
        accepted = session.scalar(
            select(func.count())
            .select_from(Member)
            .where(Member.dest_project_id == recipient.project_id, Member.status == "accepted")
        )
    assert accepted == 1


def test_s6_the_same_share_accepted_twenty_times_at_once_is_counted_once(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner = party(runtime, make_tenant())
    backup_id = stored_backup(runtime, owner, make_vault(runtime, owner), size_bytes=GiB)
    recipient = party(runtime, make_tenant())
    vault_id = make_vault(runtime, recipient, size_gb=10)
    run(runtime, members.add_members, owner.actor, backup_id, [recipient.project_id])
    call = lambda session: members.update_member_status(  # noqa: E731
        session, recipient.actor, backup_id, recipient.project_id, "accepted", vault_id
    )
    assert _together(runtime, [call] * 20) == Counter({"ok": 20})
    assert vault_row(runtime, vault_id).used_bytes == GiB


def test_s3_concurrent_adds_never_pass_ten_members(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner = party(runtime, make_tenant())
    backup_id = stored_backup(runtime, owner, make_vault(runtime, owner))
    tenant = make_tenant()
    projects = [extra_project(runtime, tenant).project_id for _ in range(14)]

    def add(project_id: str) -> Callable[..., Any]:
        return lambda session: members.add_members(session, owner.actor, backup_id, [project_id])

    outcomes = _together(runtime, [add(p) for p in projects])
    assert outcomes == Counter({"ok": 10, "BackupService.6701": 4})
    with runtime.database.unit_of_work() as session:
        count = session.scalar(
            select(func.count()).select_from(Member).where(Member.backup_id == backup_id)
        )
    assert count == 10


def test_s4_concurrent_duplicate_adds_make_one_member(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner = party(runtime, make_tenant())
    backup_id = stored_backup(runtime, owner, make_vault(runtime, owner))
    recipient = party(runtime, make_tenant())
    call = lambda session: members.add_members(  # noqa: E731
        session, owner.actor, backup_id, [recipient.project_id]
    )
    assert _together(runtime, [call] * 10) == Counter({"ok": 1, "BackupService.6703": 9})


def test_s9_delete_during_accept_leaves_no_share_and_no_reserved_space(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner = party(runtime, make_tenant())
    owner_vault = make_vault(runtime, owner, size_gb=100)
    recipients = [party(runtime, make_tenant()) for _ in range(3)]
    vaults_of = {r.project_id: make_vault(runtime, r, size_gb=10) for r in recipients}
    for _ in range(4):
        backup_id = stored_backup(runtime, owner, owner_vault, size_bytes=GiB)
        run(
            runtime,
            members.add_members,
            owner.actor,
            backup_id,
            [r.project_id for r in recipients],
        )

        def accept(who: Any, backup_id: str = backup_id) -> Callable[..., Any]:
            return lambda session: members.update_member_status(
                session, who.actor, backup_id, who.project_id, "accepted", vaults_of[who.project_id]
            )

        delete = lambda session, backup_id=backup_id: deletion.delete_backup(  # noqa: E731
            session, owner.actor, backup_id
        )
        outcomes = _together(runtime, [*(accept(r) for r in recipients), delete])
        # The delete always wins in the end; an accept either ran before it or finds no share.
        assert outcomes["ok"] >= 1
        assert set(outcomes) <= {"ok", "BackupService.6200", "BackupService.6705"}
        with runtime.database.unit_of_work() as session:
            left = session.scalar(
                select(func.count()).select_from(Member).where(Member.backup_id == backup_id)
            )
            status = session.scalar(select(Backup.status).where(Backup.id == backup_id))
        assert (left, status) == (0, "deleting")
        for vault_id in vaults_of.values():
            assert vault_row(runtime, vault_id).used_bytes == 0


def test_s9_concurrent_deletes_of_backups_shared_into_the_same_vaults_all_succeed(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    """Each delete frees space in every recipient vault; the vaults are locked in one order, so
    deletes running together wait for each other instead of deadlocking."""
    owner = party(runtime, make_tenant())
    owner_vault = make_vault(runtime, owner, size_gb=100)
    recipients = [party(runtime, make_tenant()) for _ in range(4)]
    vaults_of = {r.project_id: make_vault(runtime, r, size_gb=100) for r in recipients}
    shared = [stored_backup(runtime, owner, owner_vault, size_bytes=GiB) for _ in range(12)]
    for backup_id in shared:
        run(runtime, members.add_members, owner.actor, backup_id, list(vaults_of))
        for who in recipients:
            set_status(runtime, who, backup_id, "accepted", vaults_of[who.project_id])
    assert {vault_row(runtime, v).used_bytes for v in vaults_of.values()} == {12 * GiB}

    def delete(backup_id: str) -> Callable[..., Any]:
        return lambda session: deletion.delete_backup(session, owner.actor, backup_id)

    assert _together(runtime, [delete(b) for b in shared]) == Counter({"ok": 12})
    with runtime.database.unit_of_work() as session:
        left = session.scalar(
            select(func.count()).select_from(Member).where(Member.backup_id.in_(shared))
        )
    assert left == 0
    assert {vault_row(runtime, v).used_bytes for v in vaults_of.values()} == {0}
