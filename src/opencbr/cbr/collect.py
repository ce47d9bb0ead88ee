"""Garbage collection of the chunk store, as a job (`cbr.gc`).

Roots are every manifest a backup row still names — own backups and the ones shared with
other projects alike, since a share references the owner's manifest (S9: a backup being
restored keeps its blocks through the store's restore lock, see chunkstore.store). Deleting a
backup enqueues one collection unless one is already waiting; collection itself is
plan-then-execute inside the store and safe with backups and restores running.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.chunkstore import PlanStale, StoreLocked
from opencbr.core.context import Runtime
from opencbr.core.jobs import Job, JobContext, JobStatus, enqueue

from .dataplane import chunk_store
from .models import Backup

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
        store = chunk_store(runtime)
        store.break_stale_locks(STALE_LOCK_SECONDS)
        plan = store.gc_plan(live, tick=_heartbeat(ctx, percent=10))
        try:
            result = store.gc_execute(plan, tick=_heartbeat(ctx, percent=60))
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


def _heartbeat(
    ctx: JobContext, percent: int, clock: Callable[[], float] = time.monotonic
) -> Callable[[], None]:
    """Renews the job's lease four times per lease while a collection reads or deletes
    objects (a large store has thousands); raises LeaseLost if another worker took it."""
    every = ctx.lease.total_seconds() / 4
    last = clock()

    def beat() -> None:
        nonlocal last
        if clock() - last >= every:
            last = clock()
            ctx.progress(percent)

    return beat
