"""Every job kind has a human title for the pages that show a job (the console's job page)."""

from __future__ import annotations

from opencbr.api.runtime import job_handlers
from opencbr.cbr import backups, vaults
from opencbr.cbr import jobs as cbr_jobs
from opencbr.core.context import Runtime
from opencbr.core.jobs import Job
from opencbr.evs import jobs as evs_jobs
from tests.conftest import TenantFactory
from tests.integration.cbr.sharing_fixtures import make_vault, party, stored_backup


def _title(runtime: Runtime, kind: str, **payload: object) -> str | None:
    with runtime.database.unit_of_work() as session:
        job = Job(kind=kind, payload=payload)
        return cbr_jobs.job_title(session, job) or evs_jobs.job_title(session, job)


def test_every_job_kind_has_a_title(runtime: Runtime) -> None:
    untitled = [kind for kind in job_handlers(runtime) if _title(runtime, kind) is None]
    assert untitled == []


def test_a_title_names_the_backup_or_vault_and_falls_back_to_its_id(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner = party(runtime, make_tenant())
    vault_id = make_vault(runtime, owner)
    backup_id = stored_backup(runtime, owner, vault_id)
    with runtime.database.unit_of_work() as session:
        backup_name = backups.visible_backup(session, owner.actor, backup_id).name
        vault_name = vaults.get_vault(session, owner.actor, vault_id).name
    assert _title(runtime, "cbr.disk_from_backup", backup_id=backup_id) == (
        f"Create disk from backup {backup_name}"
    )
    assert _title(runtime, "cbr.delete_vault", vault_id=vault_id) == f"Delete vault {vault_name}"
    gone = "00000000-0000-0000-0000-000000000000"
    assert _title(runtime, "cbr.delete_backup", backup_id=gone) == f"Delete backup {gone}"
    assert _title(runtime, "evs.delete_disk", disk_id=gone) == f"Delete disk {gone}"
    assert _title(runtime, "something.else") is None
