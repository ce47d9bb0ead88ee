"""A worker killed with SIGKILL in the middle of a backup: the API runs without job workers
and the jobs run in separate `opencbr worker` processes sharing the database and data
directory. The job is claimed again once its lease expires; the backup then either completes
with the right bytes or fails cleanly, and the next backup of the disk succeeds (the backup
view the dead worker left open on the disk is folded back when the next process opens it)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huaweicloudsdkcbr.v1 import model as cbr

from opencbr.cbr.models import Backup, Vault
from opencbr.core.context import Runtime
from opencbr.core.jobs import Job
from opencbr.core.settings import Settings
from tests.conftest import ROOT_KEY, LiveServer, TenantFactory
from tests.e2e import flows

MiB = 1 << 20
# Random, so every block is read, hashed, compressed and stored. Large enough that the backup
# outlasts the job's first progress writes (a moving percent is written at most every 0.5 s):
# 256 MiB was backed up in about that time on PostgreSQL, before any percent reached the row.
DATA = 768 * MiB
PIECE = 8 * MiB
LEASE_SECONDS = 3
OPENCBR = str(Path(sys.executable).parent / "opencbr")
pytestmark = pytest.mark.slow


class Workers:
    """`opencbr worker` processes of this test's deployment (one job at a time each)."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.env = {
            **os.environ,
            "OPENCBR_DATA_DIR": str(settings.data_dir),
            "OPENCBR_DATABASE_URL": settings.effective_database_url,
            "OPENCBR_ROOT_KEY": ROOT_KEY,
            "OPENCBR_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
            "OPENCBR_WORKER_THREADS": "1",
        }
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{len(self.running)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen([OPENCBR, "worker"], env=self.env, stdout=log, stderr=log)
        log.close()
        self.running.append(process)
        return process

    def output(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.logs.glob("worker-*.log")))

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def worker_processes(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    workers = Workers(settings, tmp_path)
    yield workers
    workers.stop_all()


def _job(runtime: Runtime, job_id: str) -> Job:
    with runtime.database.unit_of_work() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def _checkpoint(cbr_client: Any, vault_id: str, name: str) -> str:
    body = cbr.VaultBackupReq(
        checkpoint=cbr.VaultBackup(vault_id=vault_id, parameters=cbr.CheckpointParam(name=name))
    )
    checkpoint_id: str = cbr_client.create_checkpoint(
        cbr.CreateCheckpointRequest(body=body)
    ).checkpoint.id
    return checkpoint_id


def _running_log(cbr_client: Any, checkpoint_id: str) -> Any:
    logs = cbr_client.list_op_logs(cbr.ListOpLogsRequest(operation_type="backup")).operation_logs
    return next(log for log in logs if log.checkpoint_id == checkpoint_id)


def _digest(data_client: Any, project: str, disk_id: str) -> str:
    digest = hashlib.sha256()
    for offset in range(0, DATA, 64 * MiB):
        digest.update(flows.read(data_client, project, disk_id, offset, 64 * MiB))
    return digest.hexdigest()


def test_worker_killed_mid_backup(
    server: LiveServer,
    runtime: Runtime,
    make_tenant: TenantFactory,
    worker_processes: Workers,
    record_property: Any,
) -> None:
    creds = make_tenant()
    project, evs_client, cbr_client, data_client = flows.tenant_clients(server.url, creds)
    first = worker_processes.start()

    disk = flows.create_disk(evs_client, "busy", size_gb=1)
    content = os.urandom(DATA)
    for offset in range(0, DATA, PIECE):
        flows.write(data_client, project, disk, offset, content[offset : offset + PIECE])
    expected = hashlib.sha256(content).hexdigest()
    del content
    vault = flows.disk_vault(cbr_client, "crash-vault", 10, [disk])

    checkpoint = _checkpoint(cbr_client, vault.id, "interrupted")
    # Kill the worker mid-way: as soon as its job has reported progress (each batch renews the
    # lease and records the percentage in the job row), before it can finish.
    job_id = _running_log(cbr_client, checkpoint).extra_info.common.task_id
    deadline = time.monotonic() + 120
    while (job := _job(runtime, job_id)).progress == 0 and job.status != "succeeded":
        assert time.monotonic() < deadline, worker_processes.output()
        time.sleep(0.01)
    assert job.status == "running", worker_processes.output()
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    killed = _job(runtime, job_id)
    assert (killed.status, killed.attempts) == ("running", 1)
    assert 0 < killed.progress < 100
    # The dead worker left the disk's backup view open.
    assert (runtime.settings.data_dir / "volumes" / f"{disk}.cbt.view").exists()

    worker_processes.start()
    done = flows.wait_for(
        "the retried job",
        lambda: _job(runtime, job_id),
        lambda job: job.status in ("succeeded", "failed"),
        timeout=240,
    )
    assert done.attempts == 2, worker_processes.output()
    record_property("interrupted_backup_job", done.status)  # either outcome is correct
    backup = cbr_client.list_backups(cbr.ListBackupsRequest(checkpoint_id=checkpoint)).backups[0]
    with runtime.database.unit_of_work() as session:
        vault_row, backup_row = session.get(Vault, vault.id), session.get(Backup, backup.id)
        assert vault_row is not None
        assert backup_row is not None
        used, stored = vault_row.used_bytes, backup_row.stored_bytes
    if done.status == "succeeded":
        assert backup.status == "available"
        assert used == stored > 0
        copy, job = flows.disk_from_backup(evs_client, backup.id, "from-retried")
        assert job.status == "SUCCESS", job
        assert _digest(data_client, project, copy) == expected
    else:
        assert backup.status == "error"
        assert used == 0

    after = flows.back_up(cbr_client, vault.id, "next")
    assert after.status == "available", worker_processes.output()
    copy, job = flows.disk_from_backup(evs_client, after.id, "from-next")
    assert job.status == "SUCCESS", job
    assert _digest(data_client, project, copy) == expected
    assert not (runtime.settings.data_dir / "volumes" / f"{disk}.cbt.view").exists()
