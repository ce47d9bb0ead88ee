"""Deleting a vault on real SQLite and PostgreSQL: a job that cannot finish (its backups stay
busy) leaves the vault in `error`, not `deleting` for ever, and deleting again works."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from opencbr.cbr import vaults
from opencbr.cbr.jobs import handlers
from opencbr.cbr.models import Backup, Vault
from opencbr.core.context import Runtime
from opencbr.core.jobs import Job, JobStatus, run_one
from tests.conftest import TenantFactory
from tests.integration.cbr.sharing_fixtures import Party, make_vault, party, run, stored_backup


def _request_deletion(runtime: Runtime, owner: Party, vault_id: str) -> str:
    run(runtime, vaults.delete_vault, owner.actor, vault_id)
    with runtime.database.unit_of_work() as session:
        job_id = session.scalars(
            select(Job.id)
            .where(Job.kind == "cbr.delete_vault", Job.project_id == owner.project_id)
            .order_by(Job.created_at.desc())
        ).first()
    assert job_id is not None
    return job_id


def _run_to_the_end(runtime: Runtime, job_id: str) -> Job:
    """Run the job through its retries. The PostgreSQL database holds other tests' leftover
    jobs too: this one is made the oldest due job each time, so it is the one claimed."""
    job_handlers = {"cbr.delete_vault": handlers(runtime)["cbr.delete_vault"]}
    while True:
        with runtime.database.unit_of_work() as session:
            job = session.get(Job, job_id)
            assert job is not None
            if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
                return job
            job.run_after = datetime(2000, 1, 1)
        run_one(runtime.database, job_handlers, "w")


def test_a_vault_whose_backups_stay_busy_ends_in_error_and_can_be_deleted_again(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner = party(runtime, make_tenant())
    vault_id = make_vault(runtime, owner)
    backup_id = stored_backup(runtime, owner, vault_id)
    job_id = _request_deletion(runtime, owner, vault_id)
    with runtime.database.unit_of_work() as session:  # a backup turned busy meanwhile
        session.execute(update(Backup).where(Backup.id == backup_id).values(status="protecting"))
    job = _run_to_the_end(runtime, job_id)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 10)
    with runtime.database.unit_of_work() as session:
        vault = session.get(Vault, vault_id)
        assert vault is not None
        assert vault.status == "error"
        session.execute(update(Backup).where(Backup.id == backup_id).values(status="available"))

    job = _run_to_the_end(runtime, _request_deletion(runtime, owner, vault_id))
    assert job.status == JobStatus.SUCCEEDED
    with runtime.database.unit_of_work() as session:
        assert session.get(Vault, vault_id) is None
        assert session.get(Backup, backup_id) is None
