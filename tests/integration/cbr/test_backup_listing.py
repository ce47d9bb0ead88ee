"""ListBackups paging and filters on real SQLite and PostgreSQL: `marker` continues after the
given backup in the listing's order, `incremental` filters, name filters are literal, and the
count is of the whole listing whatever the page."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from opencbr.cbr import backups
from opencbr.cbr.models import Backup
from opencbr.core.context import Runtime
from opencbr.core.errors import ValidationFailed
from tests.conftest import TenantFactory
from tests.integration.cbr.sharing_fixtures import make_vault, party, run, stored_backup


def test_marker_incremental_and_literal_names(runtime: Runtime, make_tenant: TenantFactory) -> None:
    owner = party(runtime, make_tenant())
    vault_id = make_vault(runtime, owner)
    made = [stored_backup(runtime, owner, vault_id) for _ in range(5)]
    names = ["daily 100%", "daily 1000", "weekly_a", "weeklyXa", "full/a"]
    with runtime.database.unit_of_work() as session:
        for backup_id, name in zip(made, names, strict=True):
            incremental = name != "full/a"
            session.execute(
                update(Backup)
                .where(Backup.id == backup_id)
                .values(name=name, incremental=incremental)
            )

    def listing(**filters: object) -> backups.BackupPage:
        spec = backups.BackupFilters(vault_id=vault_id, sort="name:asc", **filters)  # type: ignore[arg-type]
        return run(runtime, backups.list_backups, owner.actor, spec)

    def page(**filters: object) -> list[Backup]:
        return listing(**filters).backups  # type: ignore[return-value]

    def listed(**filters: object) -> list[str]:
        return [b.name for b in page(**filters)]

    everything = listed()
    assert everything == sorted(names)
    first = page(limit=2)
    after = first[-1].id
    assert listed(limit=2, marker=after) == everything[2:4]
    assert [b.name for b in first] + listed(marker=after) == everything

    assert listed(incremental=False) == ["full/a"]
    assert "full/a" not in listed(incremental=True)
    assert listed(name="100%") == ["daily 100%"]  # % is a character, not a wildcard
    assert listed(name="y_a") == ["weekly_a"]  # so is _
    assert listed(name="l/a") == ["full/a"]  # and so is the escape character
    assert listed(name="/") == ["full/a"]

    assert listing(limit=2).count == 5
    assert listing(limit=2, marker=after).count == 5
    assert listing(name="daily").count == 2
    past_the_end = listing(offset=7)
    assert (past_the_end.backups, past_the_end.count) == ([], 5)
    assert listing(name="nothing like it").count == 0
    assert listing(image_type="backup").count == 5
    assert listing(image_type="snapshot").count == 0
    other_vault = make_vault(runtime, owner)
    elsewhere = stored_backup(runtime, owner, other_vault)
    with pytest.raises(ValidationFailed, match="marker"):
        listed(marker=elsewhere)  # not in this listing
