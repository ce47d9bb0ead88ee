"""Building the process runtime: database (a new one made at the newest schema), root key,
settings."""

from __future__ import annotations

import importlib
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import MetaData

from opencbr.cbr.block_source import backup_block_source
from opencbr.cbr.catalogue import catalogue_tick
from opencbr.cbr.restore import disk_from_backup
from opencbr.cbr.scheduler import periodic_tick
from opencbr.cbr.scrub import scrub_tick
from opencbr.chunkstore import keep_freed_buffers
from opencbr.core.context import Runtime
from opencbr.core.db import Base, Database
from opencbr.core.files import private_directory
from opencbr.core.idempotency import purge_tick as client_token_purge_tick
from opencbr.core.jobs import JobHandler, WorkerPool
from opencbr.core.schema import ensure_schema
from opencbr.core.secrets import RootKey
from opencbr.core.settings import Settings
from opencbr.evs import recycle as evs_recycle
from opencbr.evs.instant import BLOCK_SOURCE
from opencbr.evs.service import VOLUME_FROM_BACKUP
from opencbr.kms import service as kms

if TYPE_CHECKING:
    from opencbr.chunkstore.s3 import S3Options

__all__ = [
    "SLICES",
    "build_runtime",
    "check_object_store",
    "job_handlers",
    "migration_locations",
    "s3_options",
    "slice_metadata",
    "start_workers",
]

SLICES = ("iam", "kms", "evs", "cbr")


def _slice_dirs() -> list[Path]:
    found = []
    for name in SLICES:
        try:
            module = importlib.import_module(f"opencbr.{name}")
        except ModuleNotFoundError:
            continue
        found.append(Path(module.__file__ or "").parent)
    return found


def migration_locations() -> list[Path]:
    """Each slice's revisions, plus core's own (the job table) in `core/migrations/core`."""
    core = Path(importlib.import_module("opencbr.core").__file__ or "").parent
    slices = [d / "migrations" for d in _slice_dirs() if (d / "migrations").is_dir()]
    return [core / "migrations" / "core", *slices]


def slice_metadata() -> MetaData:
    """The metadata of every slice's tables (importing a slice's models registers them)."""
    importlib.import_module("opencbr.core.jobs")
    importlib.import_module("opencbr.core.idempotency")
    for directory in _slice_dirs():
        if (directory / "models.py").exists():
            importlib.import_module(f"opencbr.{directory.name}.models")
    return Base.metadata


def s3_options(settings: Settings) -> S3Options:
    """How this deployment reaches its S3 store (for `s3://` store URLs)."""
    from opencbr.chunkstore.s3 import S3Options  # boto3 is imported only when used

    return S3Options(
        endpoint=settings.s3_endpoint,
        region=settings.s3_region,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
    )


def check_object_store(settings: Settings) -> None:
    """Reach the configured object store once, at start: a wrong endpoint, credentials or
    bucket stops the process with `StoreConfigurationError` (creating a missing bucket)."""
    if settings.store_url and settings.store_url.startswith("s3://"):
        from opencbr.chunkstore.s3 import S3Backend

        S3Backend.connect(settings.store_url, s3_options(settings))


def build_runtime(settings: Settings) -> Runtime:
    private_directory(settings.data_dir)
    check_object_store(settings)
    database = Database(settings.effective_database_url)
    try:
        ensure_schema(database, migration_locations())
    except BaseException:
        database.dispose()
        raise
    slice_metadata()
    root_key = RootKey.load(settings.root_key, settings.data_dir)
    runtime = Runtime(settings=settings, database=database, root_key=root_key)
    # The disk service makes disks from backups through the backup service (evs cannot import cbr).
    runtime.parts.set(VOLUME_FROM_BACKUP, disk_from_backup)
    # ... and reads a new disk's blocks from its backup while the copy runs (instant restore).
    runtime.parts.set(BLOCK_SOURCE, backup_block_source)
    return runtime


def job_handlers(runtime: Runtime) -> dict[str, JobHandler]:
    """Every slice's job handlers (`opencbr.<slice>.jobs.handlers(runtime)`)."""
    found: dict[str, JobHandler] = {}
    for name in SLICES:
        try:
            module = importlib.import_module(f"opencbr.{name}.jobs")
        except ModuleNotFoundError:
            continue
        found.update(module.handlers(runtime))
    return found


def start_workers(runtime: Runtime, threads: int = 2, name: str | None = None) -> WorkerPool:
    """Run jobs in this process until the pool is stopped."""
    keep_freed_buffers()  # jobs move disks through large buffers (chunkstore/allocator.py)
    pool = WorkerPool(
        runtime.database,
        job_handlers(runtime),
        threads=threads,
        lease=timedelta(seconds=runtime.settings.job_lease_seconds),
        name=name,
    )
    runtime.workers = pool
    pool.tick.append(periodic_tick(runtime))
    pool.tick.append(kms.purge_tick(runtime))
    pool.tick.append(client_token_purge_tick(runtime))
    pool.tick.append(evs_recycle.purge_tick(runtime))
    pool.tick.append(catalogue_tick(runtime))
    pool.tick.append(scrub_tick(runtime))
    return pool.start()
