"""The job queue on real SQLite and PostgreSQL: claims, leases, retries, no double runs."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from opencbr.core.context import Runtime
from opencbr.core.db import Database
from opencbr.core.job_wakeup import Wakeup, process_wakeup
from opencbr.core.jobs import (
    Job,
    JobContext,
    JobStatus,
    Permanent,
    WorkerPool,
    enqueue,
    get_job,
    run_one,
)


class Recorder:
    """A handler that records what ran and can be told to fail."""

    def __init__(self, fail_times: int = 0, permanent: bool = False) -> None:
        self.runs: Counter[str] = Counter()
        self.failed: list[str] = []
        self.fail_times, self.permanent = fail_times, permanent
        self.lock = threading.Lock()

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        with self.lock:
            self.runs[ctx.job_id] += 1
            count = self.runs[ctx.job_id]
        ctx.progress(50)
        if self.permanent:
            raise Permanent("cannot be done")
        if count <= self.fail_times:
            raise RuntimeError(f"transient failure {count}")
        return {"value": ctx.payload["n"] * 2}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        self.failed.append(ctx.job_id)


def _make_due(runtime: Runtime, job_id: str) -> None:
    with runtime.database.unit_of_work() as session:
        session.execute(update(Job).where(Job.id == job_id).values(run_after=Job.created_at))


def test_a_job_runs_once_and_keeps_its_result(runtime: Runtime) -> None:
    handler = Recorder()
    with runtime.database.unit_of_work() as session:
        job_id = enqueue(session, "double", {"n": 21}).id
    assert run_one(runtime.database, {"double": handler}, "w1")
    assert not run_one(runtime.database, {"double": handler}, "w1")
    with runtime.database.unit_of_work() as session:
        job = get_job(session, job_id)
        assert (job.status, job.progress, job.result) == (JobStatus.SUCCEEDED, 100, {"value": 42})
    assert handler.runs[job_id] == 1


def test_a_job_enqueued_in_a_rolled_back_transaction_does_not_exist(runtime: Runtime) -> None:
    handler = Recorder()
    try:
        with runtime.database.unit_of_work() as session:
            enqueue(session, "double", {"n": 1})
            raise RuntimeError("the state change failed")
    except RuntimeError:
        pass
    assert not run_one(runtime.database, {"double": handler}, "w1")


def test_transient_failures_retry_with_backoff_then_succeed(runtime: Runtime) -> None:
    handler = Recorder(fail_times=1)
    with runtime.database.unit_of_work() as session:
        job_id = enqueue(session, "double", {"n": 1}).id
    run_one(runtime.database, {"double": handler}, "w1")
    with runtime.database.unit_of_work() as session:
        job = get_job(session, job_id)
        assert job.status == JobStatus.QUEUED
        assert job.run_after > job.created_at
        assert job.error_code == "RuntimeError"
    assert not run_one(runtime.database, {"double": handler}, "w1")  # backing off
    _make_due(runtime, job_id)
    assert run_one(runtime.database, {"double": handler}, "w1")
    with runtime.database.unit_of_work() as session:
        assert get_job(session, job_id).status == JobStatus.SUCCEEDED


def test_permanent_failure_fails_once_and_mends_state(runtime: Runtime) -> None:
    handler = Recorder(permanent=True)
    with runtime.database.unit_of_work() as session:
        job_id = enqueue(session, "double", {"n": 1}).id
    run_one(runtime.database, {"double": handler}, "w1")
    with runtime.database.unit_of_work() as session:
        job = get_job(session, job_id)
        assert (job.status, job.error_message) == (JobStatus.FAILED, "cannot be done")
    assert handler.failed == [job_id]


def test_an_expired_lease_is_taken_over_and_the_old_worker_cannot_finish(runtime: Runtime) -> None:
    from opencbr.core.jobs import _claim, _finish

    with runtime.database.unit_of_work() as session:
        job_id = enqueue(session, "double", {"n": 2}).id
    stale = _claim(runtime.database, ["double"], "dead-worker", timedelta(seconds=-1))
    assert stale is not None
    handler = Recorder()
    assert run_one(runtime.database, {"double": handler}, "w2")
    assert not _finish(stale, status=JobStatus.FAILED)
    with runtime.database.unit_of_work() as session:
        job = get_job(session, job_id)
        assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)


def test_a_job_whose_last_attempt_died_fails_and_is_not_run_again(runtime: Runtime) -> None:
    from opencbr.core.jobs import _claim

    with runtime.database.unit_of_work() as session:
        job_id = enqueue(session, "double", {"n": 3}).id
        max_attempts = get_job(session, job_id).max_attempts
    for attempt in range(max_attempts):  # every attempt's worker dies with the lease
        dead = _claim(runtime.database, ["double"], f"dead-{attempt}", timedelta(seconds=-1))
        assert dead is not None
    handler = Recorder()
    assert run_one(runtime.database, {"double": handler}, "survivor")
    assert handler.runs[job_id] == 0
    assert handler.failed == [job_id]
    with runtime.database.unit_of_work() as session:
        job = get_job(session, job_id)
        assert job.status == JobStatus.FAILED
        assert "worker stopped" in job.error_message
    assert not run_one(runtime.database, {"double": handler}, "survivor")


def test_many_workers_never_run_one_job_twice(runtime: Runtime) -> None:
    handler = Recorder()
    with runtime.database.unit_of_work() as session:
        ids = [enqueue(session, "double", {"n": i}).id for i in range(30)]
    pools = [
        WorkerPool(runtime.database, {"double": handler}, threads=2, poll_seconds=0.01).start()
        for _ in range(2)
    ]
    try:
        deadline = threading.Event()
        for _ in range(600):
            with runtime.database.unit_of_work() as session:
                done = all(get_job(session, i).status == JobStatus.SUCCEEDED for i in ids)
            if done:
                break
            deadline.wait(0.05)
    finally:
        for pool in pools:
            pool.stop()
    assert sorted(handler.runs) == sorted(ids)
    assert set(handler.runs.values()) == {1}


class Signalling:
    """A handler that tells the test each job it ran."""

    def __init__(self) -> None:
        self.ran = threading.Event()

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        self.ran.set()
        return None

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        pass


# Workers that would look for jobs only once an hour: a job they run at once was woken for.
HOUR = 3600.0


def test_an_idle_worker_runs_a_job_as_soon_as_it_is_enqueued(runtime: Runtime) -> None:
    handler = Signalling()
    pool = WorkerPool(runtime.database, {"signal": handler}, threads=1, poll_seconds=HOUR)
    pool.start()
    try:
        time.sleep(0.3)  # the worker found nothing and waits for the next poll
        with runtime.database.unit_of_work() as session:
            enqueue(session, "signal", {})
        assert handler.ran.wait(30)
    finally:
        pool.stop()


def _enqueue_then_fail(database: Database) -> None:
    with database.unit_of_work() as session:
        enqueue(session, "signal", {})
        raise RuntimeError("the state change failed")


def test_a_rolled_back_enqueue_wakes_nobody_and_leaves_no_job(runtime: Runtime) -> None:
    wakeup = process_wakeup()
    before = wakeup.generation
    with pytest.raises(RuntimeError, match="failed"):
        _enqueue_then_fail(runtime.database)
    assert wakeup.generation == before
    assert not run_one(runtime.database, {"signal": Signalling()}, "w1")


def test_a_job_enqueued_by_another_process_wakes_the_workers_on_postgresql(
    runtime: Runtime,
) -> None:
    if runtime.database.is_sqlite:
        pytest.skip("SQLite has no notifications: other processes' jobs wait for the poll")
    handler = Signalling()
    # A wake-up of its own: this process's enqueues cannot reach it, only PostgreSQL's NOTIFY.
    pool = WorkerPool(
        runtime.database, {"signal": handler}, threads=1, poll_seconds=HOUR, wakeup=Wakeup()
    )
    other = Database(runtime.settings.effective_database_url)  # another process's connections
    pool.start()
    try:
        assert pool.listener is not None
        assert pool.listener.listening.wait(30)
        time.sleep(0.3)  # the worker found nothing and waits for the next poll
        with other.unit_of_work() as session:
            enqueue(session, "signal", {})
        assert handler.ran.wait(30)
    finally:
        pool.stop()
        other.dispose()
