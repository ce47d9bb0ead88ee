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
