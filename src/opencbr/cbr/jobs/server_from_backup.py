"""The create-server-from-backup job (`cbr.server_from_backup`): a new server's disks
filled from a server backup's disk backups; the server is `BUILD` until done."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opencbr.core.jobs import JobContext
from opencbr.evs import job_states
from opencbr.evs import service as evs

from .common import RuntimeJob, project_actor
from .payloads import ServerFromBackupPayload
from .restore import write_backup_into

__all__ = ["ServerFromBackupJob"]


class ServerFromBackupJob(RuntimeJob):
    """A new server's disks filled from the server backup's disk backups; `BUILD` until done."""

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime = self.runtime
        payload = ServerFromBackupPayload.of(ctx)
        actor = project_actor(runtime, payload.project_id)
        targets = payload.targets
        with runtime.database.unit_of_work() as session:
            for target in targets:
                disk = job_states.disk_for_job(session, target.disk_id)
                evs.provision_image(runtime, disk, session=session)
        written = sum(
            write_backup_into(
                runtime, ctx, actor, t.backup_id, t.disk_id, (i, len(targets)), fresh=True
            )
            for i, t in enumerate(targets)
        )
        with runtime.database.unit_of_work() as session:
            job_states.server_built(session, payload.server_id, [t.disk_id for t in targets])
        return {"server_id": payload.server_id, "restored_bytes": written}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        payload = ServerFromBackupPayload.of(ctx)
        with self.runtime.database.unit_of_work() as session:
            disk_ids = [t.disk_id for t in payload.targets]
            job_states.server_build_failed(session, payload.server_id, disk_ids, str(error))
