"""S9 with real data: the owner deletes a shared backup while the recipient's disk is being
made from it. The outcome is clean in every order — the disk completes with every byte, or it
ends in `error` — never `available` with wrong data.

The job queue is driven from the test thread (`run_one`, no background workers), so each order
is exact: the create-from-backup job runs before, after, or (paused at its first progress
report, in a thread) across the delete job and a garbage collection.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import model as cbr
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkevs.v2 import model as evs

from opencbr.api.runtime import job_handlers
from opencbr.cbr.collect import GC_JOB, request_collection
from opencbr.chunkstore import ChunkStore, open_backend
from opencbr.core.context import Runtime
from opencbr.core.jobs import JobContext, JobHandler, run_one
from tests.conftest import LiveServer, TenantFactory
from tests.e2e.test_sharing_scenario import MiB, Tenant, accept, share, shared_with

pytestmark = pytest.mark.slow

DATA_OFFSET = 64 * MiB
DISK_FROM_BACKUP = "cbr.disk_from_backup"


def drain(runtime: Runtime, kinds: tuple[str, ...] | None = None) -> int:
    """Run every due job (of `kinds`) in this thread, one at a time; the number run."""
    handlers = job_handlers(runtime)
    if kinds is not None:
        handlers = {k: v for k, v in handlers.items() if k in kinds}
    done = 0
    while run_one(runtime.database, handlers, "test"):
        done += 1
    return done


class PausedAtFirstProgress:
    """The real handler, whose first progress report waits until the test lets it go on."""

    def __init__(self, inner: JobHandler) -> None:
        self.inner = inner
        self.reached, self.resume = threading.Event(), threading.Event()

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        report = ctx.progress

        def progress(percent: int, result: Mapping[str, Any] | None = None) -> None:
            if not self.reached.is_set():
                self.reached.set()
                assert self.resume.wait(30), "the test never let the job go on"
            report(percent, result)

        ctx.progress = progress  # type: ignore[method-assign]
        return self.inner.run(ctx)

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        self.inner.on_failure(ctx, error)


@pytest.fixture
def small_packs(runtime: Runtime) -> ChunkStore:
    """The runtime's chunk store with 1 MiB packs: a restore of a few MiB spans many packs."""
    store = ChunkStore(open_backend(str(Path(runtime.settings.data_dir) / "store")), pack_size=MiB)
    runtime.chunk_store = store
    return store


class Scene:
    def __init__(self, server: LiveServer, runtime: Runtime, make_tenant: TenantFactory) -> None:
        self.runtime = runtime
        self.a, self.b = Tenant(server, make_tenant()), Tenant(server, make_tenant())
        self.payload = os.urandom(12 * MiB)
        a = self.a
        disk = self._volume(a, evs.CreateVolumeOption(size=1, name="source"))
        a.write(disk, DATA_OFFSET, self.payload)
        self.source = disk
        vault = self._vault(a, [disk])
        self.vault_a = vault
        checkpoint = a.cbr.create_checkpoint(
            cbr.CreateCheckpointRequest(
                body=cbr.VaultBackupReq(
                    checkpoint=cbr.VaultBackup(
                        vault_id=vault, parameters=cbr.CheckpointParam(name="big")
                    )
                )
            )
        ).checkpoint
        drain(runtime)
        listed = a.cbr.list_backups(cbr.ListBackupsRequest(checkpoint_id=checkpoint.id)).backups
        assert [x.status for x in listed] == ["available"]
        self.backup_id: str = listed[0].id
        share(a, self.backup_id, self.b)
        self.vault_b = self._vault(self.b, [])
        accept(self.b, self.backup_id, self.vault_b)

    def _volume(self, tenant: Tenant, option: Any) -> str:
        option.availability_zone, option.volume_type = "az1", "SAS"
        created = tenant.evs.create_volume(
            evs.CreateVolumeRequest(body=evs.CreateVolumeRequestBody(volume=option))
        )
        drain(self.runtime)
        volume_id: str = created.volume_ids[0]
        return volume_id

    @staticmethod
    def _vault(tenant: Tenant, disks: list[str]) -> str:
        vault = cbr.VaultCreate(
            name="v",
            resources=[cbr.ResourceCreate(id=d, type="OS::Cinder::Volume") for d in disks],
            billing=cbr.BillingCreate(
                object_type="disk",
                protect_type="backup",
                consistent_level="crash_consistent",
                size=10,
            ),
        )
        created = tenant.cbr.create_vault(
            cbr.CreateVaultRequest(body=cbr.VaultCreateReq(vault=vault))
        )
        vault_id: str = created.vault.id
        return vault_id

    def start_disk_from_backup(self) -> tuple[str, str]:
        """B asks for a disk from the shared backup; nothing runs yet. (volume id, job id)"""
        option = evs.CreateVolumeOption(
            availability_zone="az1", volume_type="SAS", backup_id=self.backup_id, name="copy"
        )
        created = self.b.evs.create_volume(
            evs.CreateVolumeRequest(body=evs.CreateVolumeRequestBody(volume=option))
        )
        assert self.status(created.volume_ids[0]) == "creating"
        return created.volume_ids[0], created.job_id

    def delete_backup(self) -> None:
        """A deletes the backup (204): it leaves B at once; its job is only queued."""
        self.a.cbr.delete_backup(cbr.DeleteBackupRequest(backup_id=self.backup_id))
        assert shared_with(self.b) == []

    def status(self, volume_id: str) -> str:
        return self.status_of(self.b, volume_id)

    @staticmethod
    def status_of(tenant: Tenant, volume_id: str) -> str:
        volume = tenant.evs.show_volume(evs.ShowVolumeRequest(volume_id=volume_id)).volume
        status: str = volume.status
        return status

    def job(self, job_id: str) -> Any:
        return self.b.evs.show_job(evs.ShowJobRequest(job_id=job_id))

    def assert_clean(self, volume_id: str) -> str:
        """The S9 invariant: available with every byte, or error (and then deletable)."""
        status = self.status(volume_id)
        assert status in ("available", "error"), status
        if status == "available":
            got = self.b.read(volume_id, DATA_OFFSET, len(self.payload))
            assert got == self.payload
            assert self.b.read(volume_id, 0, 4096) == bytes(4096)
        else:
            self.b.evs.delete_volume(evs.DeleteVolumeRequest(volume_id=volume_id))
            drain(self.runtime)
            listed = self.b.evs.list_volumes(evs.ListVolumesRequest())
            assert volume_id not in [v.id for v in listed.volumes]
        return status


@pytest.fixture
def scene(
    server: LiveServer, runtime: Runtime, make_tenant: TenantFactory, small_packs: ChunkStore
) -> Scene:
    return Scene(server, runtime, make_tenant)


def packs(store: ChunkStore) -> int:
    return sum(1 for name in store.backend.list("packs/"))


def test_delete_runs_before_the_restore_job_the_disk_ends_in_error(scene: Scene) -> None:
    volume_id, job_id = scene.start_disk_from_backup()
    scene.delete_backup()
    assert drain(scene.runtime, ("cbr.delete_backup", GC_JOB)) >= 1
    drain(scene.runtime, (DISK_FROM_BACKUP,))
    job = scene.job(job_id)
    assert job.status == "FAIL"
    assert "deleted" in job.fail_reason
    assert scene.assert_clean(volume_id) == "error"


def test_restore_job_after_the_delete_request_but_before_its_job_ends_in_error(
    scene: Scene,
) -> None:
    volume_id, job_id = scene.start_disk_from_backup()
    scene.delete_backup()
    drain(scene.runtime, (DISK_FROM_BACKUP,))  # the backup is `deleting`, its data still there
    assert scene.job(job_id).status == "FAIL"
    drain(scene.runtime)
    assert scene.assert_clean(volume_id) == "error"


def test_delete_and_collection_during_the_restore_the_disk_completes_whole(
    scene: Scene, small_packs: ChunkStore
) -> None:
    runtime = scene.runtime
    # Read one pack at a time: most packs are read after the pause, across the collection.
    small_packs.workers, small_packs.window = 1, 1
    volume_id, job_id = scene.start_disk_from_backup()
    paused = PausedAtFirstProgress(job_handlers(runtime)[DISK_FROM_BACKUP])
    worker = threading.Thread(
        target=run_one,
        args=(runtime.database, {DISK_FROM_BACKUP: paused}, "restorer"),
    )
    worker.start()
    try:
        assert paused.reached.wait(30), "the restore never reported progress"
        scene.delete_backup()
        before = packs(small_packs)
        assert drain(runtime, ("cbr.delete_backup", GC_JOB)) == 2  # the delete, then a collection
        # The running restore's lock kept every pack it needs, though no backup names them now.
        assert packs(small_packs) == before
    finally:
        paused.resume.set()
        worker.join(60)
    assert not worker.is_alive()
    assert scene.job(job_id).status == "SUCCESS"
    assert scene.assert_clean(volume_id) == "available"

    # Once the restore is over, a collection reclaims the deleted backup's packs; B's disk
    # holds its own copy of the bytes.
    with runtime.database.unit_of_work() as session:
        request_collection(session)
    drain(runtime, (GC_JOB,))
    assert packs(small_packs) < before
    assert scene.b.read(volume_id, DATA_OFFSET, len(scene.payload)) == scene.payload


def test_no_restore_starts_in_a_vault_being_deleted_and_the_share_goes_with_it(
    scene: Scene,
) -> None:
    a, b = scene.a, scene.b
    b.cbr.update_member_status(
        cbr.UpdateMemberStatusRequest(
            backup_id=scene.backup_id,
            member_id=b.project,
            body=cbr.UpdateMember(status="rejected"),
        )
    )
    a.cbr.delete_vault(cbr.DeleteVaultRequest(vault_id=scene.vault_a))
    restore = cbr.RestoreBackupRequest(
        backup_id=scene.backup_id,
        body=cbr.BackupRestoreReq(restore=cbr.BackupRestore(volume_id=scene.source)),
    )
    with pytest.raises(ClientRequestException) as refused:
        a.cbr.restore_backup(restore)
    assert (refused.value.status_code, refused.value.error_code) == (400, "BackupService.6113")
    assert scene.status_of(a, scene.source) == "available"
    drain(scene.runtime)
    assert shared_with(b) == []
    assert a.cbr.list_backups(cbr.ListBackupsRequest()).backups == []
    assert a.read(scene.source, DATA_OFFSET, len(scene.payload)) == scene.payload
