"""Garbage collection of the chunk store, as a job (`cbr.gc`).

Roots are every manifest a backup row still names — own backups and the ones shared with
other projects alike, since a share references the owner's manifest (S9: a backup being
restored keeps its blocks through the store's restore lock, see chunkstore.store) — and every
manifest a backup record of the store's catalogue names (catalogue.py): a service started on
an empty database before `admin recover` collects nothing of the backups it lost. A record
that cannot be read skips the collection (scrubs report it). Deleting a
backup enqueues one collection unless one is already waiting; collection itself is
plan-then-execute inside the store and safe with backups and restores running.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.chunkstore import ChunkStoreError, PlanStale, StoreLocked
from opencbr.core.context import Runtime
from opencbr.core.jobs import Job, JobContext, JobStatus, enqueue

from .catalogue import recorded_manifests
from .dataplane import chunk_store
from .engine import JobProgress
from .errors import CatalogueUnreadable
from .models import Backup

log = logging.getLogger(__name__)

__all__ = ["GC_JOB", "CollectGarbage", "request_collection"]

GC_JOB = "cbr.gc"
STALE_LOCK_SECONDS = 6 * 3600


def request_collection(session: Session) -> None:
    """Ask for a collection in the caller's transaction, unless one is already waiting."""
    waiting = session.scalar(
        select(Job.id).where(Job.kind == GC_JOB, Job.status == JobStatus.QUEUED).limit(1)
    )
    if waiting is None:
        enqueue(session, GC_JOB, {})


class CollectGarbage:
    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime: Runtime = ctx.extras["runtime"]  # type: ignore[assignment]
        with runtime.database.unit_of_work() as session:
            live = set(session.scalars(select(Backup.manifest_id).where(Backup.manifest_id != "")))
        try:
            live |= recorded_manifests(runtime)
        except (CatalogueUnreadable, ChunkStoreError) as exc:
            log.error("garbage collection skipped: %s", exc)
            return {"skipped": f"a catalogue record cannot be read: {exc}"}
        store = chunk_store(runtime)
        store.break_stale_locks(STALE_LOCK_SECONDS)
        # A tick per object read or deleted; the reports renew the lease (a large store has
        # thousands of objects).
        report = JobProgress(ctx)
        plan = store.gc_plan(live, tick=lambda: report(10))
        try:
            result = store.gc_execute(plan, tick=lambda: report(60))
        except StoreLocked:
            return {"skipped": "another collection is running"}
        except PlanStale:  # a collection ran since this plan was made: its work is done
            return {"skipped": "another collection changed the store since the plan"}
        return {
            "deleted_manifests": len(result.deleted_manifests),
            "deleted_packs": len(result.deleted_packs),
            "deleted_bytes": result.deleted_bytes,
            "kept_packs": len(result.kept_packs),
        }

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        return None
