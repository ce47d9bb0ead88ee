"""What each backup-service job carries: a typed payload that its producers build and its
handler reads, and the one way a job that reports in an operation log is started.

A payload is stored as the job row's JSON; fields a newer version added have defaults, and
fields it no longer reads are ignored, so a job queued by an older process still runs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Self, Unpack

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from opencbr.core.jobs import Job, JobContext, enqueue

from .. import oplogs

__all__ = [
    "BackupPayload",
    "CataloguePayload",
    "CollectPayload",
    "DeleteBackupPayload",
    "DeleteVaultPayload",
    "DiskFromBackupPayload",
    "DiskTarget",
    "JobPayload",
    "NbdRestorePayload",
    "RestorePayload",
    "RestoredDisk",
    "ScrubPayload",
    "ServerFromBackupPayload",
    "start_logged",
]


class JobPayload(BaseModel):
    """A job's payload; `kind` names the job (and its handler)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    kind: ClassVar[str]

    @classmethod
    def of(cls, ctx: JobContext) -> Self:
        return cls.model_validate(ctx.payload)

    def enqueue(
        self,
        session: Session,
        project_id: str | None,
        *,
        max_attempts: int = 3,
        delay: timedelta = timedelta(0),
    ) -> Job:
        """This job, in the caller's transaction (it commits with the state change)."""
        return enqueue(
            session,
            self.kind,
            self.model_dump(mode="json"),
            project_id=project_id,
            max_attempts=max_attempts,
            delay=delay,
        )


class LoggedPayload(JobPayload):
    """A job that reports its outcome in an operation log (see `start_logged`)."""

    oplog_id: str = ""


def start_logged(
    session: Session,
    payload: LoggedPayload,
    project_id: str,
    operation_type: str,
    **log: Unpack[oplogs.LogFields],
) -> Job:
    """Start a job that the caller follows in an operation log: the log (`running`), the job
    carrying the log's id, and the log linked back to the job, all in the caller's transaction."""
    entry = oplogs.start(session, project_id, operation_type, **log)
    job = payload.model_copy(update={"oplog_id": entry.id}).enqueue(session, project_id)
    entry.job_id = job.id
    return job


class BackupPayload(LoggedPayload):
    """Back up one resource (`cbr.backup`): the top-level backup made by its checkpoint."""

    kind: ClassVar[str] = "cbr.backup"
    backup_id: str


class DiskTarget(BaseModel):
    """One disk backup written into one disk."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    backup_id: str
    disk_id: str


class RestoredDisk(DiskTarget):
    """A disk restored in place, with the status it returns to once every byte is written."""

    previous: str


class RestorePayload(LoggedPayload):
    """RestoreBackup onto existing disks (`cbr.restore`)."""

    kind: ClassVar[str] = "cbr.restore"
    backup_id: str
    project_id: str
    targets: list[RestoredDisk]


class DiskFromBackupPayload(JobPayload):
    """A new disk filled from a disk backup (`cbr.disk_from_backup`)."""

    kind: ClassVar[str] = "cbr.disk_from_backup"
    backup_id: str
    disk_id: str
    project_id: str


class ServerFromBackupPayload(JobPayload):
    """A new server's disks filled from a server backup's disk backups
    (`cbr.server_from_backup`)."""

    kind: ClassVar[str] = "cbr.server_from_backup"
    backup_id: str
    server_id: str
    project_id: str
    targets: list[DiskTarget]


class DeleteBackupPayload(LoggedPayload):
    """Drop a `deleting` backup (`cbr.delete_backup`)."""

    kind: ClassVar[str] = "cbr.delete_backup"
    backup_id: str


class DeleteVaultPayload(JobPayload):
    """Drop a `deleting` vault and its backups (`cbr.delete_vault`)."""

    kind: ClassVar[str] = "cbr.delete_vault"
    vault_id: str


class ScrubPayload(JobPayload):
    """Read the whole store once, as the operator asked (`cbr.scrub`); `deep` also decrypts
    and checks every block."""

    kind: ClassVar[str] = "cbr.scrub"
    deep: bool = False


class NbdRestorePayload(LoggedPayload):
    """Write a disk backup onto an NBD export (`cbr.restore_nbd`)."""

    kind: ClassVar[str] = "cbr.restore_nbd"
    backup_id: str
    project_id: str
    nbd_uri: str
    tls_psk_file: str = ""


class CataloguePayload(JobPayload):
    """Rewrite one backup's record in the store's catalogue (`cbr.catalogue`)."""

    kind: ClassVar[str] = "cbr.catalogue"
    backup_id: str


class CollectPayload(JobPayload):
    """Collect the store's unused data (`cbr.gc`)."""

    kind: ClassVar[str] = "cbr.gc"
