"""What every backup-service job shares: the runtime it is built with, the identity it acts
with, its store scopes, and its progress reports."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from opencbr.core.context import Actor, Runtime
from opencbr.core.jobs import JobContext, Permanent
from opencbr.iam.models import Project

from ..models import OperationLog, StoreScope

__all__ = ["OPLOG_PROGRESS_SECONDS", "JobProgress", "RuntimeJob", "project_actor", "store_scope"]

OPLOG_PROGRESS_SECONDS = 2.0
"""How often, at most, a running job copies its progress into its operation log."""


class RuntimeJob:
    """A job handler built once per worker pool with the process runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime


def project_actor(runtime: Runtime, project_id: str) -> Actor:
    """The identity a job acts with: the project (and its domain) that asked for the work."""
    with runtime.database.unit_of_work() as session:
        project = session.get(Project, project_id)
        if project is None:
            raise Permanent(f"project {project_id} is gone")
        return Actor(project.domain_id, "", project.id, project.region)


def store_scope(session: Session, scope_id: str) -> StoreScope:
    scope = session.get(StoreScope, scope_id)
    if scope is None:
        raise Permanent(f"store scope {scope_id} is gone")
    return scope


class JobProgress:
    """A job's progress reports. The data plane calls it for every batch of blocks (thousands
    for a large disk), a collection for every object it reads or deletes; the job row is
    written when the percent moves or a quarter of the lease has passed, which renews the
    lease (`ctx.progress`, which raises LeaseLost first if another worker took the job). At
    most every `OPLOG_PROGRESS_SECONDS` the percent is also copied into the running operation
    log's `extra_info.common.progress`, where ListOpLogs and ShowOpLog show it."""

    def __init__(self, ctx: JobContext, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx, self.clock = ctx, clock
        self.oplog_id: str | None = ctx.payload.get("oplog_id")
        self.renew_every = ctx.lease.total_seconds() / 4
        self.percent = -1
        self.reported_at = self.copied_at = float("-inf")

    def __call__(self, percent: int) -> None:
        now = self.clock()
        if percent == self.percent and now - self.reported_at < self.renew_every:
            return
        self.percent, self.reported_at = percent, now
        self.ctx.progress(percent)
        if not self.oplog_id or now - self.copied_at < OPLOG_PROGRESS_SECONDS:
            return
        self.copied_at = now
        with self.ctx.database.unit_of_work() as session:
            oplog = session.get(OperationLog, self.oplog_id)
            if oplog is not None and oplog.status == "running":
                info = dict(oplog.extra_info or {})
                info["common"] = {**info.get("common", {}), "progress": percent}
                oplog.extra_info = info
