"""ListBackups paging and filters on real SQLite and PostgreSQL: `marker` continues after the
given backup in the listing's order, `incremental` filters, and name filters are literal."""

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
    names = ["daily 100%", "daily 1000", "weekly_a", "weeklyXa", "full"]
    with runtime.database.unit_of_work() as session:
        for backup_id, name in zip(made, names, strict=True):
            incremental = name != "full"
            session.execute(
                update(Backup)
                .where(Backup.id == backup_id)
                .values(name=name, incremental=incremental)
            )

    def page(**filters: object) -> list[Backup]:
        spec = backups.BackupFilters(vault_id=vault_id, sort="name:asc", **filters)  # type: ignore[arg-type]
        return run(runtime, backups.list_backups, owner.actor, spec).backups

    def listed(**filters: object) -> list[str]:
        return [b.name for b in page(**filters)]

    everything = listed()
    assert everything == sorted(names)
    first = page(limit=2)
    after = first[-1].id
    assert listed(limit=2, marker=after) == everything[2:4]
    assert [b.name for b in first] + listed(marker=after) == everything

    assert listed(incremental=False) == ["full"]
    assert "full" not in listed(incremental=True)
    assert listed(name="100%") == ["daily 100%"]  # % is a character, not a wildcard
    assert listed(name="y_a") == ["weekly_a"]  # so is _
    other_vault = make_vault(runtime, owner)
    elsewhere = stored_backup(runtime, owner, other_vault)
    with pytest.raises(ValidationFailed, match="marker"):
        listed(marker=elsewhere)  # not in this listing
