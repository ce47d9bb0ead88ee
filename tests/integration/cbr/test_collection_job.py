"""The collection job on real SQLite and PostgreSQL: it says `succeeded` only when it collected.
A live collection elsewhere sends it back to the queue; one killed with -9 stalls nothing."""

from __future__ import annotations

import io
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from opencbr.cbr.collect import GC_JOB, CollectGarbage, request_collection
from opencbr.cbr.dataplane import chunk_store
from opencbr.chunkstore import Scope
from opencbr.core.clock import utcnow
from opencbr.core.context import Runtime
from opencbr.core.jobs import Job, run_one
from tests.integration.chunkstore.test_dead_locks import Where, hold, holders, kill

__all__ = ["holders"]

SCOPE = Scope("scope-gc-job", b"i" * 32, b"k" * 32)


@pytest.fixture(autouse=True)
def only_this_tests_collections(runtime: Runtime) -> None:
    """The run's PostgreSQL database is shared: earlier tests' collection jobs are theirs, not
    this test's, and would be claimed in its place."""
    with runtime.database.unit_of_work() as session:
        session.execute(delete(Job).where(Job.kind == GC_JOB))


def _gc_job(runtime: Runtime) -> Job:
    with runtime.database.unit_of_work() as session:
        job = session.scalars(select(Job).where(Job.kind == GC_JOB)).one()
        session.expunge(job)
        return job


def _run_gc(runtime: Runtime) -> Job:
    with runtime.database.unit_of_work() as session:  # due now, whatever its backoff
        session.execute(update(Job).where(Job.kind == GC_JOB).values(run_after=utcnow()))
    handlers = {GC_JOB: CollectGarbage(runtime)}
    assert run_one(runtime.database, handlers, "test")
    return _gc_job(runtime)


def test_a_job_blocked_by_a_live_collection_is_retried_and_a_killed_one_blocks_nothing(
    runtime: Runtime, holders: list[subprocess.Popen[str]]
) -> None:
    store = chunk_store(runtime)
    data = bytes(range(256)) * 1024
    dead = store.backup(SCOPE, io.BytesIO(data), len(data)).manifest_id
    store.delete_manifest(dead)
    path = runtime.settings.store_url or str(Path(runtime.settings.data_dir) / "store")
    where: Where = (store.backend, path, {})
    collector, _ = hold(holders, where, "gc")
    with runtime.database.unit_of_work() as session:
        request_collection(session)

    before = utcnow()
    job = _run_gc(runtime)  # another collection is alive: not done, so not `succeeded`
    assert (job.status, job.error_code) == ("queued", "StoreLocked")
    assert job.run_after >= before + timedelta(seconds=2)  # retried later, with backoff

    kill(collector)  # the collection dies mid-way, leaving its lock
    job = _run_gc(runtime)
    assert job.status == "succeeded"
    assert job.result["deleted_packs"] >= 1
    assert store.locks() == []
