"""The create-disk-from-backup job (`cbr.disk_from_backup`, EVS CreateVolume with a
backup_id): the new disk is `creating` until every block is copied, `error` if the copy fails
for good, never a half-written disk that looks healthy (S9)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from opencbr.core.context import Actor, Runtime
from opencbr.core.jobs import JobContext, Permanent
from opencbr.core.metrics import record_restore_bytes
from opencbr.evs import instant, job_states
from opencbr.evs.volumes.filling import FillingVolume

from ..dataplane import chunk_store, open_scope, store_faults
from ..models import Backup, BackupStatus
from .common import JobProgress, RuntimeJob, project_actor, store_scope
from .payloads import DiskFromBackupPayload

__all__ = ["DiskFromBackupJob"]

FILL_BATCH = 256
"""Blocks a new disk's copy fills per hold of the filling's lock (16 MiB of 64 KiB blocks)."""


class DiskFromBackupJob(RuntimeJob):
    """A new disk from a backup: `creating` until complete.

    The disk is usable over NBD while this runs (instant restore, `evs.instant`): the copy goes
    through the disk's filling, which never overwrites a block a client wrote first and serves
    blocks not copied yet from the backup. A retry resumes from the filling's map."""

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime = self.runtime
        payload = DiskFromBackupPayload.of(ctx)
        actor = project_actor(runtime, payload.project_id)
        disk_id = payload.disk_id
        with runtime.database.unit_of_work() as session:
            disk = job_states.creating_disk(session, disk_id)
            if disk is None:
                return {"skipped": "disk is not being created"}
            filling = instant.filling_volume(runtime, session, disk)
        try:
            with store_faults():
                written = _fill_from_backup(runtime, ctx, actor, payload.backup_id, filling)
            filling.flush()
            with runtime.database.unit_of_work() as session:
                job_states.filled(session, disk_id)
        except BaseException:
            instant.end_filling(runtime, disk_id, complete=False)
            raise
        instant.end_filling(runtime, disk_id, complete=True)
        return {"volume_id": disk_id, "restored_bytes": written}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        payload = DiskFromBackupPayload.of(ctx)
        with self.runtime.database.unit_of_work() as session:
            job_states.disks_failed(session, [payload.disk_id], str(error))


def _fill_from_backup(
    runtime: Runtime, ctx: JobContext, actor: Actor, backup_id: str, filling: FillingVolume
) -> int:
    """Copy every block of a disk backup into a new disk's filling (holes stay holes), at most
    `Settings.restore_copy_mib_per_s`; the store verifies each block it reads."""
    with runtime.database.unit_of_work() as session:
        backup = session.get(Backup, backup_id)
        if backup is None or backup.status not in (BackupStatus.AVAILABLE, BackupStatus.RESTORING):
            raise Permanent(f"backup {backup_id} was deleted while it was being restored")
        scope = open_scope(session, runtime, actor, store_scope(session, backup.scope_id or ""))
        manifest = backup.manifest_id
    report = JobProgress(ctx)
    rate = runtime.settings.restore_copy_mib_per_s * (1 << 20)
    started, written, reported = time.monotonic(), 0, 0
    step = FILL_BATCH * filling.block_size
    batch: list[tuple[int, bytes | None]] = []
    # Holes are left out at the source: the new disk reads zeros there already, and a disk
    # holding 1 MiB of 1 GiB would otherwise be walked through its 16,384 block slots. The
    # progress and the rate still count the disk's bytes, holes included.
    for offset, data in chunk_store(runtime).iter_blocks(scope, manifest, holes=False):
        batch.append((offset, data))
        end = offset + filling.block_size
        if len(batch) < FILL_BATCH and end - reported < step:
            continue
        written += filling.fill(batch)
        batch, reported = [], end
        report(int(95 * min(end, filling.size) / filling.size))
        if rate and (ahead := end / rate - (time.monotonic() - started)) > 0:
            time.sleep(ahead)
    written += filling.fill(batch)
    record_restore_bytes(written)
    return written
