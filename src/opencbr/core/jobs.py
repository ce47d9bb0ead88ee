"""The job queue: long work (backups, restores, disk creation, GC, schedules) runs as jobs.

Rules:
- A job row is written by `enqueue` in the caller's transaction, so it exists exactly when the
  state change that asked for it committed.
- Workers claim with `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite every
  transaction begins IMMEDIATE (see `db.py`), so claims are serialised by the single writer.
- A claim is a lease. A running job renews it with every progress report (heartbeat); a job
  whose worker died is claimed again once the lease expires, until `max_attempts` is used up.
- Every update a worker makes is conditional on still holding the lease (compare-and-swap on
  `lease_owner` and `attempts`), so a job never completes twice.
- Retryable failures go back to the queue with exponential backoff; `Permanent` errors (and the
  last attempt) fail the job and call the handler's `on_failure` so the domain state is mended.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import JSON, DateTime, Integer, String, Text, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from .clock import utcnow
from .db import Base, Database
from .errors import AppError, NotFound
from .ids import new_uuid

__all__ = [
    "Job",
    "JobContext",
    "JobHandler",
    "JobNotFound",
    "JobStatus",
    "LeaseLost",
    "Permanent",
    "WorkerPool",
    "enqueue",
    "get_job",
    "run_one",
    "throttled",
]

log = logging.getLogger(__name__)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    project_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED, index=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    run_after: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    error_code: Mapped[str] = mapped_column(String(64), default="")
    error_message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class JobNotFound(NotFound):
    code = "BackupService.6218"
    template = "Job {id} not found."


class Permanent(Exception):
    """Raised by a handler for a failure that retrying cannot mend."""


class LeaseLost(Exception):
    """This worker no longer holds the job (its lease expired and another worker took it)."""


def enqueue(
    session: Session,
    kind: str,
    payload: Mapping[str, Any],
    project_id: str | None = None,
    max_attempts: int = 3,
    delay: timedelta = timedelta(0),
) -> Job:
    """Add a job in the caller's transaction (it commits with the state change)."""
    job = Job(
        id=new_uuid(),
        kind=kind,
        project_id=project_id,
        payload=dict(payload),
        result={},
        max_attempts=max_attempts,
        run_after=utcnow() + delay,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: str, project_id: str | None = None) -> Job:
    query = select(Job).where(Job.id == job_id)
    if project_id is not None:
        query = query.where(Job.project_id == project_id)
    job = session.scalar(query)
    if job is None:
        raise JobNotFound(id=job_id)
    return job


@dataclass
class JobContext:
    """What a handler gets: the job's data and a way to report progress (the heartbeat)."""

    database: Database
    job_id: str
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    worker_id: str
    lease: timedelta

    @property
    def last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    def progress(self, percent: int, result: Mapping[str, Any] | None = None) -> None:
        """Record progress and renew the lease; raises LeaseLost if another worker took over."""
        values: dict[str, Any] = {
            "progress": max(0, min(100, percent)),
            "lease_expires_at": utcnow() + self.lease,
        }
        if result is not None:
            values["result"] = dict(result)
        with self.database.unit_of_work() as session:
            changed = session.execute(update(Job).where(*self._held()).values(**values)).rowcount  # type: ignore[attr-defined]
        if not changed:
            raise LeaseLost(self.job_id)

    def _held(self) -> tuple[Any, ...]:
        return (
            Job.id == self.job_id,
            Job.lease_owner == self.worker_id,
            Job.attempts == self.attempt,
            Job.status == JobStatus.RUNNING,
        )


class JobHandler(Protocol):
    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        """Do the work; return the job's result. Idempotent: a retry may repeat it."""

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        """Mend domain state after the job failed for good (e.g. mark a backup `error`)."""


def _claim(
    database: Database, kinds: list[str], worker_id: str, lease: timedelta
) -> JobContext | None:
    now = utcnow()
    with database.unit_of_work() as session:
        due = or_(
            (Job.status == JobStatus.QUEUED) & (Job.run_after <= now),
            (Job.status == JobStatus.RUNNING) & (Job.lease_expires_at < now),
        )
        query = select(Job).where(due, Job.kind.in_(kinds)).order_by(Job.run_after).limit(1)
        if not database.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        job = session.scalar(query)
        if job is None:
            return None
        job.status = JobStatus.RUNNING
        job.attempts += 1
        job.lease_owner = worker_id
        job.lease_expires_at = now + lease
        job.started_at = job.started_at or now
        return JobContext(
            database,
            job.id,
            job.kind,
            dict(job.payload),
            job.attempts,
            job.max_attempts,
            worker_id,
            lease,
        )


def _finish(ctx: JobContext, **values: Any) -> bool:
    with ctx.database.unit_of_work() as session:
        changed = session.execute(update(Job).where(*ctx._held()).values(**values)).rowcount  # type: ignore[attr-defined]
    return bool(changed)


def _fail_for_good(ctx: JobContext, handler: JobHandler, error: BaseException) -> None:
    code = error.code if isinstance(error, AppError) else type(error).__name__
    message = error.message if isinstance(error, AppError) else str(error)
    try:
        handler.on_failure(ctx, error)
    except Exception:
        log.exception("on_failure of job %s failed", ctx.job_id)
    _finish(
        ctx,
        status=JobStatus.FAILED,
        error_code=code,
        error_message=message[:4000],
        finished_at=utcnow(),
        lease_owner=None,
    )


def run_one(
    database: Database,
    handlers: Mapping[str, JobHandler],
    worker_id: str,
    lease: timedelta = timedelta(seconds=60),
) -> bool:
    """Claim and run one due job; False when there was none."""
    ctx = _claim(database, list(handlers), worker_id, lease)
    if ctx is None:
        return False
    handler = handlers[ctx.kind]
    if ctx.attempt > ctx.max_attempts:
        # Its last attempt's worker died (the lease ran out) without recording an outcome: a
        # job that keeps killing its workers must not run for ever, and its state needs mending.
        reason = f"its worker stopped during the last of {ctx.max_attempts} attempts"
        _fail_for_good(ctx, handler, Permanent(reason))
        return True
    try:
        result = handler.run(ctx)
    except LeaseLost:
        log.warning("job %s: lease lost, leaving it to its new owner", ctx.job_id)
    except (Permanent, AppError) as error:
        _fail_for_good(ctx, handler, error)
    except Exception as error:
        log.exception("job %s attempt %d failed", ctx.job_id, ctx.attempt)
        if ctx.last_attempt:
            _fail_for_good(ctx, handler, error)
        else:
            backoff = timedelta(seconds=min(300, 2**ctx.attempt))
            _finish(
                ctx,
                status=JobStatus.QUEUED,
                run_after=utcnow() + backoff,
                lease_owner=None,
                error_code=type(error).__name__,
                error_message=str(error)[:4000],
            )
    else:
        _finish(
            ctx,
            status=JobStatus.SUCCEEDED,
            progress=100,
            result=dict(result or {}),
            finished_at=utcnow(),
            lease_owner=None,
            error_code="",
            error_message="",
        )
    return True


class WorkerPool:
    """Threads that claim and run jobs until stopped."""

    def __init__(
        self,
        database: Database,
        handlers: Mapping[str, JobHandler],
        threads: int = 2,
        poll_seconds: float = 0.5,
        lease: timedelta = timedelta(seconds=60),
        name: str | None = None,
    ) -> None:
        self.database, self.handlers = database, handlers
        self.poll_seconds, self.lease = poll_seconds, lease
        self.name = name or f"worker-{new_uuid()[:8]}"
        self.stop_event = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, args=(f"{self.name}/{i}",), daemon=True)
            for i in range(threads)
        ]
        self.tick: list[Callable[[], None]] = []

    def start(self) -> WorkerPool:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _loop(self, worker_id: str) -> None:
        while not self.stop_event.is_set():
            try:
                for periodic in self.tick:
                    periodic()
                busy = run_one(self.database, self.handlers, worker_id, self.lease)
            except Exception:
                log.exception("worker %s: unexpected error", worker_id)
                busy = False
            if not busy:
                self.stop_event.wait(self.poll_seconds)


def throttled(every: timedelta, action: Callable[[], None], what: str) -> Callable[[], None]:
    """A `WorkerPool.tick` hook: runs `action` at most once per `every` in this process, in
    whichever worker thread comes first (the others return at once). A failure is logged and
    tried again at the next period; it never takes a worker down."""
    lock = threading.Lock()
    next_run = [0.0]

    def tick() -> None:
        if time.monotonic() < next_run[0] or not lock.acquire(blocking=False):
            return
        try:
            next_run[0] = time.monotonic() + every.total_seconds()
            action()
        except Exception:
            log.exception("%s failed", what)
        finally:
            lock.release()

    return tick
