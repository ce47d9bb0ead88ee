"""What a person calls each of the backup service's jobs, for pages that show one."""

from __future__ import annotations

from sqlalchemy.orm import Session

from opencbr.core.jobs import Job

from ..catalogue import CATALOGUE_JOB
from ..collect import GC_JOB
from ..models import Backup, Vault
from ..nbd_restore import RESTORE_NBD_JOB
from .payloads import (
    BackupPayload,
    DeleteBackupPayload,
    DeleteVaultPayload,
    DiskFromBackupPayload,
    RestorePayload,
    ScrubPayload,
    ServerFromBackupPayload,
)

__all__ = ["job_title"]


# What a person calls each job, naming the backup (or vault) it works on.
_BACKUP_TITLES = {
    BackupPayload.kind: "Create backup {}",
    RestorePayload.kind: "Restore backup {}",
    DiskFromBackupPayload.kind: "Create disk from backup {}",
    ServerFromBackupPayload.kind: "Create server from backup {}",
    DeleteBackupPayload.kind: "Delete backup {}",
    RESTORE_NBD_JOB: "Restore backup {} into its NBD target",
    CATALOGUE_JOB: "Record backup {} in the store's catalogue",
}


def job_title(session: Session, job: Job) -> str | None:
    """A human title for one of this slice's jobs ("Create disk from backup nightly"), for
    pages that show a job; None for another slice's. Names are read now: a backup or vault
    that is gone shows its id."""
    payload = job.payload
    if job.kind in _BACKUP_TITLES:
        backup = session.get(Backup, str(payload.get("backup_id")))
        name = backup.name if backup is not None else payload.get("backup_id")
        return _BACKUP_TITLES[job.kind].format(name)
    if job.kind == DeleteVaultPayload.kind:
        vault = session.get(Vault, str(payload.get("vault_id")))
        return f"Delete vault {vault.name if vault is not None else payload.get('vault_id')}"
    if job.kind == GC_JOB:
        return "Collect unused backup data"
    if job.kind == ScrubPayload.kind:
        return "Verify the backup store"
    return None
