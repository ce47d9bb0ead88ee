"""Load and fault test of a scaled-out deployment (PostgreSQL only; needs the S3 store that
`scripts/setup-swift.sh` starts, else it is skipped).

Two API processes (`opencbr serve --no-jobs`, one process each on its own port, so that a
client can fail over from one to the other) and two `opencbr worker` processes share one
throw-away PostgreSQL database, one fresh S3 bucket, one root key and one data directory.
Thirty client threads drive them only through the signed HTTP API for a bounded time: disk
writes, backups, shares, accepts, disks from shared backups, restores, listings and deletes.
Afterwards the database and the store must agree:

- every job finished once: no job is left queued or running, every backup has exactly one
  backup job, and no two backups share a manifest;
- no backup is lost or corrupt: every available backup's manifest verifies clean in its scope;
- capacities add up: each vault's `used_bytes` is the sum of its own backups' `stored_bytes`
  plus the `reserved_bytes` of the accepted members it holds;
- no client saw a 5xx.

The second phase repeats the workload and, in its middle, kills (SIGKILL) one worker while it
runs a job and one API process. Clients retry connection errors on the surviving API process;
the jobs of the dead worker are taken over when their lease expires; the same checks hold.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from sqlalchemy import func, select

from opencbr.api.runtime import build_runtime
from opencbr.cbr.dataplane import chunk_store, open_scope
from opencbr.cbr.jobs.common import project_actor
from opencbr.cbr.models import Backup, BackupStatus, Member, MemberStatus, StoreScope, Vault
from opencbr.chunkstore.s3 import S3Backend, S3Options, make_client
from opencbr.cli.client import ApiError, Client, Profile
from opencbr.core.clock import utcnow
from opencbr.core.context import Runtime
from opencbr.core.jobs import Job, JobStatus
from opencbr.core.settings import Settings
from opencbr.evs.models import Disk, DiskStatus
from opencbr.iam import service as iam
from opencbr.iam.service import TenantCredentials
from tests.conftest import PG_ADMIN, ROOT_KEY, _free_port

# Setup, two phases and their checks; a loaded 2-core machine needs more than the default.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]

S3_ENDPOINT = os.environ.get("S3_ENDPOINT_URL", "http://127.0.0.1:18080")
S3_ACCESS_KEY = os.environ.get("AWS_ACCESS_KEY_ID", "test:tester")
S3_SECRET_KEY = os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")
S3_REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")

# Client threads and seconds of each phase (environment overrides for a quicker local run).
THREADS = int(os.environ.get("OPENCBR_LOAD_THREADS", "30"))
PHASE_SECONDS = float(os.environ.get("OPENCBR_LOAD_SECONDS", "35"))
# Disks being written and backed up (a tenant each, a client thread each; the other threads
# share, accept, list, make disks from and cancel). A disk's first backup reads all of it.
DISKS = int(os.environ.get("OPENCBR_LOAD_DISKS", "6"))
RECIPIENTS = 3  # tenants backups are shared with
POLL = 0.4
KiB, MiB = 1024, 1024 * 1024
DATA_SPAN = 4 * MiB  # the part of each 1 GB sparse disk the clients write to
# A short lease when the job queue reads one from the settings; the default is 60 s.
LEASE_SECONDS = 10
DEFAULT_LEASE_SECONDS = 60


def _lease_seconds() -> int:
    return LEASE_SECONDS if "job_lease_seconds" in Settings.model_fields else DEFAULT_LEASE_SECONDS


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=2):
            return True
    except OSError:
        return False


# -- the deployment ----------------------------------------------------------------------------


@dataclass
class Deployment:
    runtime: Runtime
    endpoints: list[str]
    apis: list[subprocess.Popen[bytes]]
    workers: list[subprocess.Popen[bytes]]
    worker_logs: list[Path]
    api_logs: list[Path]

    def errors_logged(self) -> str:
        """What the API processes logged at ERROR (tracebacks of any 5xx), for a failure report."""
        lines = [
            line
            for path in self.api_logs
            for line in path.read_text(errors="replace").splitlines()
            if "ERROR" in line
        ]
        return "\n".join(lines[-5:])


def _wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    if not _reachable(S3_ENDPOINT):
        pytest.skip(f"no S3 store at {S3_ENDPOINT} (scripts/setup-swift.sh starts one)")
    name = f"opencbr_load_{uuid.uuid4().hex[:12]}"
    bucket = f"opencbr-load-{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    env = {
        **os.environ,
        "OPENCBR_DATA_DIR": str(tmp_path / "data"),
        "OPENCBR_DATABASE_URL": database_url,
        "OPENCBR_ROOT_KEY": ROOT_KEY,
        "OPENCBR_STORE_URL": f"s3://{bucket}/load",
        "OPENCBR_S3_ENDPOINT": S3_ENDPOINT,
        "OPENCBR_S3_REGION": S3_REGION,
        "OPENCBR_S3_ACCESS_KEY": S3_ACCESS_KEY,
        "OPENCBR_S3_SECRET_KEY": S3_SECRET_KEY,
        "OPENCBR_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "OPENCBR_METRICS_ENABLED": "false",
        "OPENCBR_LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # The test's own runtime migrates the schema first and reads the database and store later.
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        root_key=ROOT_KEY,
        store_url=env["OPENCBR_STORE_URL"],
        s3_endpoint=S3_ENDPOINT,
        s3_region=S3_REGION,
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=S3_SECRET_KEY,
    )
    runtime = build_runtime(settings)
    opencbr = str(Path(sys.executable).parent / "opencbr")
    apis: list[subprocess.Popen[bytes]] = []
    workers: list[subprocess.Popen[bytes]] = []
    worker_logs: list[Path] = []
    api_logs: list[Path] = []
    endpoints: list[str] = []
    try:
        for i in range(2):
            port = _free_port()
            endpoints.append(f"http://127.0.0.1:{port}")
            api_logs.append(tmp_path / f"api-{i}.log")
            log = api_logs[-1].open("wb")
            apis.append(
                subprocess.Popen(
                    [opencbr, "serve", "--workers", "1", "--no-jobs", "--port", str(port)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        for i in range(2):
            path = tmp_path / f"worker-{i}.log"
            worker_logs.append(path)
            workers.append(
                subprocess.Popen(
                    [opencbr, "worker", "--threads", "2"],
                    env={**env, "COLUMNS": "200"},
                    stdout=path.open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
        for url, api in zip(endpoints, apis, strict=True):
            _wait_for(url + "/healthz", api)
        yield Deployment(runtime, endpoints, apis, workers, worker_logs, api_logs)
    finally:
        for process in [*apis, *workers]:
            _stop(process)
        runtime.database.dispose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        options = S3Options(S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY, S3_SECRET_KEY)
        cleaner = S3Backend(make_client(options), bucket)
        try:
            for key in list(cleaner.list("")):
                cleaner.delete(key)
            cleaner.client.delete_bucket(Bucket=bucket)
        except Exception:  # the bucket is throw-away; a leftover must not fail the run
            pass


# -- clients -----------------------------------------------------------------------------------


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # 4xx by error code
    server_errors: list[str] = field(default_factory=list)  # any 5xx
    failures: list[str] = field(default_factory=list)  # a client gave up (not an API answer)
    retries: int = 0

    def count(self, what: str) -> None:
        with self.lock:
            self.calls[what] += 1


class Caller:
    """A signed client of one project that knows every API endpoint and moves on to the next
    one when a connection fails (a dead process), sticking to the one that answers."""

    def __init__(
        self, endpoints: list[str], creds: TenantCredentials, start: int, stats: Stats
    ) -> None:
        self.project = creds.projects["region-1"]
        self.clients = [
            Client(Profile(url, creds.access_key, creds.secret_key, self.project), timeout=60)
            for url in endpoints
        ]
        self.current = start % len(endpoints)
        self.stats = stats  # replaced for each phase

    def __call__(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        for attempt in range(10):
            client = self.clients[self.current]
            try:
                return client.request(method, path, body, params)
            except httpx.TransportError:
                with self.stats.lock:
                    self.stats.retries += 1
                self.current = (self.current + 1) % len(self.clients)
                time.sleep(0.1 * (attempt + 1))
            except ApiError as error:
                if error.status >= 500:
                    with self.stats.lock:
                        self.stats.server_errors.append(
                            f"{method} {path}: {error.status} {error.code} {error.message}"
                        )
                raise
        raise AssertionError(f"{method} {path}: no API process answered")

    def upload(self, path: str, data: bytes, params: dict[str, Any]) -> None:
        for attempt in range(10):
            try:
                self.clients[self.current].upload(path, [data], len(data), params)
                return
            except httpx.TransportError:
                with self.stats.lock:
                    self.stats.retries += 1
                self.current = (self.current + 1) % len(self.clients)
                time.sleep(0.1 * (attempt + 1))
        raise AssertionError(f"PUT {path}: no API process answered")

    def close(self) -> None:
        for client in self.clients:
            client.http.close()


def _poll(what: str, probe: Callable[[], Any], done: Callable[[Any], bool], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}: last {value!r}")
        time.sleep(POLL)


def _create_disk(api: Caller, name: str, backup_id: str | None = None) -> tuple[str, str]:
    volume: dict[str, Any] = {"availability_zone": "az1", "volume_type": "SAS", "name": name}
    if backup_id is None:
        volume["size"] = 1
    else:
        volume["backup_id"] = backup_id
    created = api("POST", f"/v2/{api.project}/cloudvolumes", {"volume": volume})
    return created["volume_ids"][0], created["job_id"]


def _job_status(api: Caller, job_id: str, timeout: float) -> str:
    job = _poll(
        "job",
        lambda: api("GET", f"/v1/{api.project}/jobs/{job_id}"),
        lambda j: j["status"] in ("SUCCESS", "FAIL"),
        timeout,
    )
    status: str = job["status"]
    return status


def _disk_vault(api: Caller, name: str, size_gb: int, disks: list[str]) -> str:
    vault = {
        "name": name,
        "resources": [{"id": d, "type": "OS::Cinder::Volume"} for d in disks],
        "billing": {
            "object_type": "disk",
            "protect_type": "backup",
            "consistent_level": "crash_consistent",
            "size": size_gb,
        },
    }
    vault_id: str = api("POST", f"/v3/{api.project}/vaults", {"vault": vault})["vault"]["id"]
    return vault_id


@dataclass
class World:
    """What the clients share: the disks being backed up and the backups that exist."""

    owners: list[Caller]  # one a disk, in the disk's project
    recipients: list[Caller]
    disks: list[str]
    vaults: list[str]
    recipient_vaults: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    backups: dict[str, int] = field(default_factory=dict)  # available backup id -> disk index

    def use(self, stats: Stats) -> None:
        for caller in [*self.owners, *self.recipients]:
            caller.stats = stats

    def pick(self, rng: random.Random) -> tuple[str, int] | None:
        with self.lock:
            if not self.backups:
                return None
            backup_id = rng.choice(sorted(self.backups))
            return backup_id, self.backups[backup_id]


def _back_up(world: World, index: int, stats: Stats, timeout: float) -> str | None:
    owner = world.owners[index]
    body = {"checkpoint": {"vault_id": world.vaults[index], "parameters": {"incremental": True}}}
    checkpoint = owner("POST", f"/v3/{owner.project}/checkpoints", body)["checkpoint"]
    stats.count("backup")
    made = _poll(
        "backup",
        lambda: owner(
            "GET", f"/v3/{owner.project}/backups", None, {"checkpoint_id": checkpoint["id"]}
        )["backups"],
        lambda b: len(b) == 1 and b[0]["status"] in ("available", "error"),
        timeout,
    )[0]
    if made["status"] != "available":
        with stats.lock:
            stats.failures.append(f"backup {made['id']} ended {made['status']}")
        return None
    backup_id: str = made["id"]
    with world.lock:
        world.backups[backup_id] = index
    return backup_id


def _disk_round(world: World, index: int, stats: Stats, rng: random.Random, timeout: float) -> None:
    """Write to the disk, back it up, sometimes restore it, delete the oldest backups."""
    owner = world.owners[index]
    data_path = f"/v2/{owner.project}/cloudvolumes/{world.disks[index]}/data"
    offset = rng.randrange(0, DATA_SPAN, 64 * KiB)
    owner.upload(data_path, rng.randbytes(64 * KiB), {"offset": offset})
    stats.count("write")
    backup_id = _back_up(world, index, stats, timeout)
    if backup_id is None:
        return
    if rng.random() < 0.1:  # a restore rewrites the whole disk: rare
        body = {"restore": {"volume_id": world.disks[index]}}
        owner("POST", f"/v3/{owner.project}/backups/{backup_id}/restore", body)
        stats.count("restore")
        _poll(
            "restore",
            lambda: owner("GET", f"/v3/{owner.project}/backups/{backup_id}")["backup"]["status"],
            lambda s: s != "restoring",
            timeout,
        )
    with world.lock:
        mine = [b for b, i in world.backups.items() if i == index]
        old = mine[:-3]
        for backup in old:
            del world.backups[backup]
    for backup in old:  # shared ones vanish from their recipients too (S9)
        owner("DELETE", f"/v3/{owner.project}/backups/{backup}")
        stats.count("delete")


def _share_round(world: World, stats: Stats, rng: random.Random, timeout: float) -> None:
    """Share some backup with some recipient; the recipient accepts, lists, makes a disk from
    it or rejects it; the owner sometimes cancels the share. Races with deletes are expected."""
    picked = world.pick(rng)
    if picked is None:
        time.sleep(0.5)
        return
    backup_id, index = picked
    owner = world.owners[index]
    r = rng.randrange(len(world.recipients))
    recipient = world.recipients[r]
    members = f"/v3/{owner.project}/backups/{backup_id}/members"
    member = f"/v3/{recipient.project}/backups/{backup_id}/members/{recipient.project}"
    try:
        owner("POST", members, {"members": [recipient.project]})
        stats.count("share")
    except ApiError as error:
        _refused(stats, error)  # already a member, or deleted meanwhile
    accept = {"status": "accepted", "vault_id": world.recipient_vaults[r]}
    choice = rng.random()
    if choice < 0.15:
        recipient("PUT", member, {"status": "rejected"})
        stats.count("reject")
        return
    recipient("PUT", member, accept)
    stats.count("accept")
    recipient("GET", f"/v3/{recipient.project}/backups", None, {"own_type": "shared"})
    recipient("GET", f"/v3/{recipient.project}/backups/{backup_id}")
    stats.count("list and show")
    if choice < 0.45:
        disk_id, job_id = _create_disk(recipient, f"from-{backup_id[:8]}", backup_id)
        stats.count("disk from backup")
        status = _job_status(recipient, job_id, timeout)
        stats.count(f"disk from backup {status}")
        recipient("DELETE", f"/v2/{recipient.project}/cloudvolumes/{disk_id}")
    elif choice < 0.6:
        owner("DELETE", f"{members}/{recipient.project}")
        stats.count("cancel share")
    time.sleep(0.1)


def _refused(stats: Stats, error: ApiError) -> None:
    if error.status >= 500:
        raise error
    with stats.lock:
        stats.refused[error.code] += 1


def _drive(world: World, stats: Stats, seconds: float, job_timeout: float) -> None:
    deadline = time.monotonic() + seconds
    world.use(stats)

    def run(index: int) -> None:
        rng = random.Random(index)
        while time.monotonic() < deadline:
            try:
                if index < len(world.disks):
                    _disk_round(world, index, stats, rng, job_timeout)
                else:
                    _share_round(world, stats, rng, job_timeout)
            except ApiError as error:
                if error.status >= 500:
                    return  # recorded by the caller
                _refused(stats, error)
            except (TimeoutError, AssertionError) as error:
                with stats.lock:
                    stats.failures.append(str(error))
                return

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + job_timeout + 120)
    assert not any(t.is_alive() for t in threads), "a client thread did not finish"


def _setup(deployment: Deployment, stats: Stats) -> World:
    """Tenants, one 1 GB disk a owner with a few MiB written, a vault each, a first (full)
    backup of each disk, and a vault for each recipient."""
    runtime = deployment.runtime

    def tenant(prefix: str) -> TenantCredentials:
        with runtime.database.unit_of_work() as session:
            return iam.create_tenant(
                session,
                runtime.root_key,
                runtime.settings.regions,
                f"{prefix}-{uuid.uuid4().hex[:6]}",
                ["region-1"],
            )

    eps = deployment.endpoints
    owners = [Caller(eps, tenant("owner"), i, stats) for i in range(DISKS)]
    recipients = [Caller(eps, tenant("recipient"), i, stats) for i in range(RECIPIENTS)]
    recipient_vaults = [_disk_vault(api, "shared-in", 200, []) for api in recipients]

    def disk(index: int) -> tuple[str, str]:
        owner = owners[index]
        disk_id, job_id = _create_disk(owner, f"disk-{index}")
        assert _job_status(owner, job_id, 60) == "SUCCESS"
        data_path = f"/v2/{owner.project}/cloudvolumes/{disk_id}/data"
        owner.upload(data_path, os.urandom(MiB), {"offset": 0})
        owner.upload(data_path, os.urandom(MiB), {"offset": 2 * MiB})
        return disk_id, _disk_vault(owner, f"vault-{index}", 10, [disk_id])

    with ThreadPoolExecutor(DISKS) as pool:
        made = list(pool.map(disk, range(DISKS)))
    world = World(owners, recipients, [d for d, _ in made], [v for _, v in made], recipient_vaults)
    with ThreadPoolExecutor(DISKS) as pool:
        first = list(pool.map(lambda i: _back_up(world, i, stats, 300), range(DISKS)))
    assert all(first), stats.failures
    return world


# -- checks ------------------------------------------------------------------------------------


def _drain(runtime: Runtime, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with runtime.database.unit_of_work() as session:
            busy = session.scalar(
                select(func.count()).where(
                    Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
                    Job.run_after <= utcnow() + timedelta(seconds=5),
                )
            )
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{busy} jobs still queued or running after {seconds} s")
        time.sleep(0.5)


@dataclass
class Audit:
    jobs: Counter[str]
    retried_jobs: list[str]
    seconds: dict[str, str]
    available: int
    verified_blocks: int
    orphan_manifests: int
    vaults: int


def _audit(runtime: Runtime) -> Audit:
    store = chunk_store(runtime)
    with runtime.database.unit_of_work() as session:
        jobs = session.scalars(select(Job)).all()
        unfinished = [j for j in jobs if j.status not in (JobStatus.SUCCEEDED, JobStatus.FAILED)]
        # Jobs left for later (retry backoff of a failed attempt) would show here too.
        assert not [j for j in unfinished if j.status == JobStatus.RUNNING], unfinished
        backup_jobs = Counter(
            str(j.payload.get("backup_id")) for j in jobs if j.kind == "cbr.backup"
        )
        backups = session.scalars(select(Backup)).all()
        stuck = [
            (b.id, b.status)
            for b in backups
            if b.status in (BackupStatus.PROTECTING, BackupStatus.RESTORING)
        ]
        assert not stuck, f"backups left in a transient state: {stuck}"
        top = [b for b in backups if b.parent_id is None]
        twice = {k: n for k, n in backup_jobs.items() if n != 1}
        assert not twice, f"backups with more than one backup job: {twice}"
        available = [b for b in top if b.status == BackupStatus.AVAILABLE]
        manifests = [b.manifest_id for b in available]
        assert all(manifests), "an available backup without a manifest"
        assert len(set(manifests)) == len(manifests), "two backups share one manifest"
        in_store = set(store.list_manifests())
        assert set(manifests) <= in_store, f"lost manifests: {set(manifests) - in_store}"
        # Every available backup's data reads back and verifies in its own scope.
        blocks = 0
        for b in available:
            scope_row = session.get(StoreScope, b.scope_id)
            assert scope_row is not None
            scope = open_scope(session, runtime, project_actor(runtime, b.project_id), scope_row)
            report = store.verify(scope, b.manifest_id)
            assert report.ok, f"backup {b.id}: {report.errors[:3]}"
            blocks += report.blocks
        # Capacity: own backups' stored bytes + accepted shares' reservations, per vault.
        for vault in session.scalars(select(Vault)).all():
            own = sum(b.stored_bytes for b in top if b.vault_id == vault.id)
            reserved = session.scalar(
                select(func.coalesce(func.sum(Member.reserved_bytes), 0)).where(
                    Member.vault_id == vault.id, Member.status == MemberStatus.ACCEPTED
                )
            )
            assert vault.used_bytes == own + int(reserved or 0), (
                f"vault {vault.name}: used {vault.used_bytes} != own {own} + shared {reserved}"
            )
        half_made = session.scalars(
            select(Disk.id, Disk.status).where(
                Disk.status.in_([DiskStatus.CREATING, DiskStatus.RESTORING_BACKUP])
            )
        ).all()
        assert not half_made, f"disks left half made: {half_made}"
        vault_count = session.scalar(select(func.count()).select_from(Vault)) or 0
    return Audit(
        jobs=Counter(f"{j.kind}:{j.status}" for j in jobs),
        retried_jobs=[f"{j.kind}:{j.attempts}:{j.error_code}" for j in jobs if j.attempts > 1],
        seconds=_durations(jobs),
        available=len(available),
        verified_blocks=blocks,
        orphan_manifests=len(in_store - set(manifests)),
        vaults=vault_count,
    )


def _durations(jobs: Sequence[Job]) -> dict[str, str]:
    """Mean and longest run time of each kind of finished job."""
    runs: dict[str, list[float]] = {}
    for job in jobs:
        if job.finished_at is not None and job.started_at is not None:
            runs.setdefault(job.kind, []).append((job.finished_at - job.started_at).total_seconds())
    return {k: f"{sum(v) / len(v):.1f}/{max(v):.1f}" for k, v in runs.items()}


def _report(phase: str, stats: Stats, audit: Audit, seconds: float) -> None:
    print(
        f"\n[{phase}] {seconds:.0f} s, calls {dict(stats.calls)}, refused {dict(stats.refused)}, "
        f"connection retries {stats.retries}\n  jobs {dict(audit.jobs)}, "
        f"retried {audit.retried_jobs}\n  job seconds mean/max {audit.seconds}\n  "
        f"available backups verified {audit.available}, orphan manifests "
        f"{audit.orphan_manifests}, vaults checked {audit.vaults}"
    )


def _worker_name(log: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("worker ") and " started " in line:
                return line.split()[1]
        time.sleep(0.2)
    raise AssertionError(f"no worker name in {log}")


def test_load_then_kill_a_worker_and_an_api_process(deployment: Deployment) -> None:
    runtime = deployment.runtime
    lease = _lease_seconds()
    started = time.monotonic()
    setup_stats = Stats()
    world = _setup(deployment, setup_stats)
    assert not setup_stats.server_errors, (setup_stats.server_errors, deployment.errors_logged())

    # Phase 1: everything up.
    stats = Stats()
    _drive(world, stats, PHASE_SECONDS, job_timeout=90)
    _drain(runtime, 90)
    audit = _audit(runtime)
    _report("all up", stats, audit, time.monotonic() - started)
    assert not stats.server_errors, (stats.server_errors[:10], deployment.errors_logged())
    assert not stats.failures, stats.failures[:10]
    assert stats.calls["backup"] >= DISKS
    assert audit.available > 0

    # Phase 2: the same workload; in its middle one worker dies while it runs a job, and one
    # API process dies. Its clients move to the other one; the job is taken over after its lease.
    victim_name = _worker_name(deployment.worker_logs[0])
    killed: dict[str, Any] = {}

    def held_by_victim() -> list[str]:
        with runtime.database.unit_of_work() as session:
            return list(
                session.scalars(
                    select(Job.id).where(
                        Job.status == JobStatus.RUNNING,
                        Job.lease_owner.startswith(victim_name + "/"),
                    )
                )
            )

    def kill_in_the_middle() -> None:
        """Kill the worker while it holds a job. It is frozen (SIGSTOP) while its jobs are
        read, so none of them can finish between that read and the kill."""
        time.sleep(PHASE_SECONDS / 3)
        deadline = time.monotonic() + PHASE_SECONDS / 3
        victim = deployment.workers[0]
        held: list[str] = []
        while True:
            victim.send_signal(signal.SIGSTOP)
            time.sleep(0.1)  # a commit already sent reaches PostgreSQL
            held = held_by_victim()
            if held or time.monotonic() >= deadline:
                break
            victim.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        deployment.apis[0].send_signal(signal.SIGKILL)
        killed["jobs"], killed["at"] = held, time.monotonic()

    phase2 = time.monotonic()
    killer = threading.Thread(target=kill_in_the_middle)
    killer.start()
    stats2 = Stats()
    _drive(world, stats2, PHASE_SECONDS, job_timeout=lease + 90)
    killer.join()
    assert deployment.workers[0].wait(5) == -signal.SIGKILL
    assert deployment.apis[0].wait(5) == -signal.SIGKILL
    _drain(runtime, lease + 90)
    audit2 = _audit(runtime)
    _report("one worker and one API process killed", stats2, audit2, time.monotonic() - phase2)
    assert not stats2.server_errors, (stats2.server_errors[:10], deployment.errors_logged())
    assert not stats2.failures, stats2.failures[:10]
    assert stats2.retries > 0, "no client noticed the dead API process"
    # The jobs the dead worker held were claimed again and finished (each exactly once).
    with runtime.database.unit_of_work() as session:
        taken_over = session.scalars(select(Job).where(Job.id.in_(killed["jobs"]))).all()
        for job in taken_over:
            assert job.attempts >= 2
            assert job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
            assert job.lease_owner is None or not job.lease_owner.startswith(victim_name)
    print(f"  jobs of the killed worker taken over: {len(taken_over)}")
    assert taken_over, "the killed worker held no job"
    for caller in [*world.owners, *world.recipients]:
        caller.close()
    print(f"  total {time.monotonic() - started:.0f} s")
