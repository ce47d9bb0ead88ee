"""Garbage collection of the chunk store, as a job (`cbr.gc`).

Roots are every manifest a backup row still names — own backups and the ones shared with
other projects alike, since a share references the owner's manifest (S9: a backup being
restored keeps its blocks through the store's restore lock, see chunkstore.store) — and every
manifest a backup record of the store's catalogue names (catalogue.py): a service started on
an empty database before `admin recover` collects nothing of the backups it lost. A record
that cannot be read skips the collection (scrubs report it). Deleting a
backup enqueues one collection unless one is already waiting; collection itself is
plan-then-execute inside the store and safe with backups and restores running.

A collection job succeeds only when it collected. When another live collection holds the store
(`StoreLocked`), its lock was lost (`LockLost`), or the store changed under two plans in a row
(`PlanStale`), the job raises: the queue runs it again later with backoff, and after
`GC_ATTEMPTS` it fails with the reason. Locks of dead holders (a worker killed mid-collection,
backup or restore) never block it: the store removes them (chunkstore/locks.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.chunkstore import GcResult, PlanStale
from opencbr.core.jobs import Job, JobContext, JobStatus

from .catalogue import recorded_manifests
from .dataplane import chunk_store
from .jobs.common import JobProgress, RuntimeJob
from .jobs.payloads import CollectPayload
from .models import Backup

__all__ = ["GC_JOB", "CollectGarbage", "request_collection"]

GC_JOB = CollectPayload.kind
GC_ATTEMPTS = 8  # retries back off 2, 4, ... 256 s: a running collection has ~8 minutes


def request_collection(session: Session) -> None:
    """Ask for a collection in the caller's transaction, unless one is already waiting."""
    waiting = session.scalar(
        select(Job.id).where(Job.kind == GC_JOB, Job.status == JobStatus.QUEUED).limit(1)
    )
    if waiting is None:
        CollectPayload().enqueue(session, None, max_attempts=GC_ATTEMPTS)


class CollectGarbage(RuntimeJob):
    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime = self.runtime
        with runtime.database.unit_of_work() as session:
            live = set(session.scalars(select(Backup.manifest_id).where(Backup.manifest_id != "")))
        # A record that cannot be read may name a live manifest: collecting without it could
        # delete a backup's data, so the job fails (and is retried) rather than collect.
        live |= recorded_manifests(runtime)
        store = chunk_store(runtime)
        store.break_dead_locks()
        # A tick per object read or deleted; the reports renew the lease (a large store has
        # thousands of objects).
        report = JobProgress(ctx)

        def collect() -> GcResult:
            plan = store.gc_plan(live, tick=lambda: report(10))
            return store.gc_execute(plan, tick=lambda: report(60))

        try:
            result = collect()
        except PlanStale:  # another collection rewrote the index since the plan: plan again
            result = collect()
        return {
            "deleted_manifests": len(result.deleted_manifests),
            "deleted_packs": len(result.deleted_packs),
            "deleted_bytes": result.deleted_bytes,
            "kept_packs": len(result.kept_packs),
        }

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        return None
