"""A recipient's listing of the backups shared with it, on real SQLite and PostgreSQL: in the
backups' order whatever their age (it walks the recipient's members, which keep each backup's
date), paged by marker, and the date kept by members made before it was kept (migration)."""

from __future__ import annotations

from datetime import datetime, timedelta

from alembic import command
from sqlalchemy import select, update

from opencbr.api.runtime import migration_locations
from opencbr.cbr import backups, members
from opencbr.cbr.models import Backup, Member
from opencbr.core.context import Runtime
from opencbr.core.db import migration_config
from tests.conftest import TenantFactory
from tests.integration.cbr.sharing_fixtures import make_vault, party, run, stored_backup


def test_shared_backups_are_listed_in_their_order(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner, recipient = party(runtime, make_tenant()), party(runtime, make_tenant())
    vault_id = make_vault(runtime, owner)
    made = [stored_backup(runtime, owner, vault_id) for _ in range(4)]
    start = datetime(2026, 1, 1)
    dates = [start + timedelta(days=d) for d in (3, 1, 2, 1)]  # two made the same second
    with runtime.database.unit_of_work() as session:
        for n, (backup_id, made_at) in enumerate(zip(made, dates, strict=True)):
            values = {"created_at": made_at, "name": f"b{3 - n}"}
            session.execute(update(Backup).where(Backup.id == backup_id).values(**values))
    for backup_id in made:
        run(runtime, members.add_members, owner.actor, backup_id, [recipient.project_id])

    def listed(**filters: object) -> list[str]:
        spec = backups.BackupFilters(own_type="shared", **filters)  # type: ignore[arg-type]
        return [b.id for b in run(runtime, backups.list_backups, recipient.actor, spec).backups]

    def made_at(backup_id: str) -> datetime:
        return dates[made.index(backup_id)]

    newest_first = sorted(made, key=lambda b: (made_at(b), b), reverse=True)
    assert listed() == newest_first
    # Ascending dates; the id still breaks ties descending (a stable sort keeps that order).
    assert listed(sort="created_at:asc") == sorted(sorted(made, reverse=True), key=made_at)
    assert listed(sort="name:asc") == list(reversed(made))
    first = listed(limit=2)
    assert first == newest_first[:2]
    assert listed(marker=first[-1]) == newest_first[2:]
    assert listed(member_status="pending", limit=3) == newest_first[:3]


def test_members_made_before_learn_their_backups_dates(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner, recipient = party(runtime, make_tenant()), party(runtime, make_tenant())
    vault_id = make_vault(runtime, owner)
    backup_id = stored_backup(runtime, owner, vault_id)
    run(runtime, members.add_members, owner.actor, backup_id, [recipient.project_id])
    config = migration_config(migration_locations())
    with runtime.database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "cbr@cbr_0002")  # the members lose the backups' dates
        command.upgrade(config, "cbr@head")
    with runtime.database.unit_of_work() as session:
        kept = session.scalar(select(Member.backup_created_at).where(Member.backup_id == backup_id))
        assert kept == session.get(Backup, backup_id).created_at  # type: ignore[union-attr]
    spec = backups.BackupFilters(own_type="shared")
    page = run(runtime, backups.list_backups, recipient.actor, spec)
    assert [b.id for b in page.backups] == [backup_id]


def test_own_and_shared_backups_are_paged_together(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    """`all_granted`: the caller's own backups and those shared with it, in one order, whose
    pages (offset or marker) add up to the whole listing, counted whole on every page."""
    me, other = party(runtime, make_tenant()), party(runtime, make_tenant())
    mine = [stored_backup(runtime, me, make_vault(runtime, me)) for _ in range(3)]
    theirs = [stored_backup(runtime, other, make_vault(runtime, other)) for _ in range(3)]
    start = datetime(2026, 2, 1)
    made_at = {b: start + timedelta(days=n) for n, b in enumerate(interleave(mine, theirs))}
    with runtime.database.unit_of_work() as session:
        for backup_id, when in made_at.items():
            named = {"created_at": when, "name": f"n{9 - (when - start).days}"}
            session.execute(update(Backup).where(Backup.id == backup_id).values(**named))
    for backup_id in theirs:
        run(runtime, members.add_members, other.actor, backup_id, [me.project_id])

    def page(**filters: object) -> backups.BackupPage:
        spec = backups.BackupFilters(own_type="all_granted", **filters)  # type: ignore[arg-type]
        return run(runtime, backups.list_backups, me.actor, spec)

    def listed(**filters: object) -> list[str]:
        return [b.id for b in page(**filters).backups]

    everything = sorted(made_at, key=made_at.__getitem__, reverse=True)
    assert listed() == everything
    assert listed(limit=2) + listed(limit=2, offset=2) + listed(limit=2, offset=4) == everything
    assert [page(limit=2, offset=n).count for n in (0, 2, 4, 5, 6)] == [6] * 5
    farthest = page(offset=2**31 - 1, limit=1000)  # the largest the API takes: past 32 bits
    assert (farthest.backups, farthest.count) == ([], 6)
    assert listed(offset=5) == everything[5:]
    assert listed(marker=everything[2], limit=2) == everything[3:5]
    assert listed(sort="name:asc") == everything  # names run backwards with the dates
    assert listed(sort="created_at:asc", limit=4) == everything[::-1][:4]
    own_and_accepted = page(member_status="accepted")  # none of the shares is accepted
    assert ([b.id for b in own_and_accepted.backups], own_and_accepted.count) == (
        sorted(mine, key=made_at.__getitem__, reverse=True),
        3,
    )
    assert page().memberships.keys() == set(theirs)


def interleave(first: list[str], second: list[str]) -> list[str]:
    return [item for pair in zip(first, second, strict=True) for item in pair]
