"""The backup service's jobs: one module per job, each with a typed payload (`payloads.py`)
that its producers build and its handler reads. The runtime collects the handlers through
`handlers(runtime)` (see `opencbr.api.runtime.job_handlers`); each is built with the runtime.

Producers import `payloads` only: the handlers are imported when they are asked for, so that
a request module never drags in (or circles back through) the job modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from opencbr.core.context import Runtime
    from opencbr.core.jobs import Job, JobHandler

__all__ = ["handlers", "job_title"]


def handlers(runtime: Runtime) -> dict[str, JobHandler]:
    from ..catalogue import CATALOGUE_JOB, CatalogueJob
    from ..collect import GC_JOB, CollectGarbage
    from ..nbd_restore import RESTORE_NBD_JOB, NbdRestoreJob
    from ..scrub import ScrubJob
    from .backup import BackupJob
    from .deletion import DeleteBackupJob, DeleteVaultJob
    from .disk_from_backup import DiskFromBackupJob
    from .payloads import (
        BackupPayload,
        DeleteBackupPayload,
        DeleteVaultPayload,
        DiskFromBackupPayload,
        RestorePayload,
        ScrubPayload,
        ServerFromBackupPayload,
    )
    from .restore import RestoreJob
    from .server_from_backup import ServerFromBackupJob

    return {
        BackupPayload.kind: BackupJob(runtime),
        RestorePayload.kind: RestoreJob(runtime),
        RESTORE_NBD_JOB: NbdRestoreJob(runtime),
        DiskFromBackupPayload.kind: DiskFromBackupJob(runtime),
        ServerFromBackupPayload.kind: ServerFromBackupJob(runtime),
        DeleteBackupPayload.kind: DeleteBackupJob(runtime),
        DeleteVaultPayload.kind: DeleteVaultJob(runtime),
        GC_JOB: CollectGarbage(runtime),
        CATALOGUE_JOB: CatalogueJob(runtime),
        ScrubPayload.kind: ScrubJob(runtime),
    }


def job_title(session: Session, job: Job) -> str | None:
    """A human title for one of this slice's jobs (see `titles.job_title`)."""
    from .titles import job_title as title

    return title(session, job)
