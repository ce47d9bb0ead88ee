"""Scrubbing the store: find damage before a restore does, and say which backups it hurts.

`scrub` runs the store's `verify_store` (every pack's table and end, every manifest's blocks
indexed in an existing pack, every catalogue object's frame; `deep` also decrypts and hashes
every block, with every scope's keys), then marks each backup that needs a damaged or missing
object `error`, with the objects named in its `error_message`: its owner and every recipient
see it in their listings, and a restore refuses it instead of failing half-way. The result
goes to an operation log (the operator's, project ""; and one in the project of each owner
and recipient of a damaged backup) and to `/metrics`.

A scheduled scrub runs every `Settings.scrub_period_hours` (0: never) from the workers' tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from opencbr.chunkstore import Scope
from opencbr.core.context import Runtime
from opencbr.core.jobs import Job, JobContext, throttled
from opencbr.core.metrics import record_scrub
from opencbr.kms.models import Key
from opencbr.kms.rotation import unwrap_with_any

from . import oplogs
from .catalogue import enqueue_catalogue
from .dataplane import chunk_store, derive_id_key, plain_data_key
from .jobs.common import RuntimeJob
from .jobs.payloads import ScrubPayload
from .models import Backup, BackupStatus, Member, OperationLog, StoreScope

__all__ = [
    "DamagedBackup",
    "ScrubJob",
    "ScrubResult",
    "latest_scrub",
    "scrub",
    "scrub_tick",
    "start_scrub",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DamagedBackup:
    backup_id: str
    name: str
    project_id: str
    objects: list[str]


@dataclass
class ScrubResult:
    deep: bool
    packs: int = 0
    manifests: int = 0
    blocks: int = 0
    catalogue_objects: int = 0
    bytes_read: int = 0
    errors: list[str] = field(default_factory=list)
    damaged: list[DamagedBackup] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "deep": self.deep,
            "checked": {
                "packs": self.packs,
                "manifests": self.manifests,
                "blocks": self.blocks,
                "catalogue_objects": self.catalogue_objects,
                "bytes_read": self.bytes_read,
            },
            "errors": self.errors,
            "damaged_backups": [vars(d) for d in self.damaged],
            "seconds": round(self.seconds, 3),
        }


def all_scopes(session: Session, runtime: Runtime) -> list[Scope]:
    """Every scope with its keys, opened by the operator (no tenant's permission asked)."""
    scopes = []
    for row in session.scalars(select(StoreScope)):
        if row.kms_key_id:
            key = session.get(Key, row.kms_key_id)
            if key is None:
                continue
            data_key = unwrap_with_any(session, runtime.root_key, key, row.wrapped_key)
            scopes.append(Scope(name=row.id, id_key=derive_id_key(data_key), data_key=data_key))
        else:
            data_key = plain_data_key(runtime, row)
            scopes.append(Scope(name=row.id, id_key=derive_id_key(data_key), data_key=None))
    return scopes


def scrub(runtime: Runtime, *, deep: bool = False) -> ScrubResult:
    started = time.monotonic()
    store = chunk_store(runtime)
    scopes: list[Scope] = []
    if deep:
        with runtime.database.unit_of_work() as session:
            scopes = all_scopes(session, runtime)
    report = store.verify_store(scopes, read_data=deep)
    damaged = report.damaged
    if damaged:
        # A backup or a collection that wrote the store while it was listed can look damaged
        # once (its index not listed yet, or rewritten meanwhile); damage stays. Only what a
        # second pass finds again marks a backup `error`.
        report = store.verify_store(scopes, read_data=deep)
        damaged = {m: report.damaged[m] for m in damaged if m in report.damaged}
    result = ScrubResult(
        deep=deep,
        packs=report.packs,
        manifests=report.manifests,
        blocks=report.blocks,
        catalogue_objects=report.catalogue_objects,
        bytes_read=report.bytes_read,
        errors=[str(error) for error in report.errors],
    )
    with runtime.database.unit_of_work() as session:
        result.damaged = _mark_damaged(session, damaged)
        _log(session, result)
    result.seconds = time.monotonic() - started
    objects = result.packs + result.manifests + result.catalogue_objects
    record_scrub(objects, len(result.errors), len(result.damaged))
    return result


def _mark_damaged(session: Session, damaged: dict[str, set[str]]) -> list[DamagedBackup]:
    """Mark `error` every backup needing a damaged manifest, and a server backup whose disk's
    backup is one; returns the top-level backups marked."""
    if not damaged:
        return []
    found: dict[str, DamagedBackup] = {}
    rows = session.scalars(select(Backup).where(Backup.manifest_id.in_(list(damaged))))
    for row in rows:
        top = session.get(Backup, row.parent_id) if row.parent_id else row
        if top is None or top.status == BackupStatus.DELETING:
            continue
        objects = sorted(damaged[row.manifest_id] | set(found.get(top.id, _empty()).objects))
        found[top.id] = DamagedBackup(top.id, top.name, top.project_id, objects)
    for item in found.values():
        message = "damaged in the store: " + ", ".join(item.objects)
        session.execute(
            update(Backup)
            .where(
                or_(Backup.id == item.backup_id, Backup.parent_id == item.backup_id),
                Backup.status != BackupStatus.DELETING,
            )
            .values(status=BackupStatus.ERROR, error_message=message[:2000])
        )
        enqueue_catalogue(session, item.backup_id)  # a recovery brings it back marked
    return sorted(found.values(), key=lambda d: d.backup_id)


def _empty() -> DamagedBackup:
    return DamagedBackup("", "", "", [])


def _log(session: Session, result: ScrubResult) -> None:
    summary = result.as_dict()
    status = "success" if result.ok else "failed"
    oplogs.start(session, "", "scrub", status=status, extra={"scrub": summary})
    for item in result.damaged:
        recipients = session.scalars(
            select(Member.dest_project_id).where(Member.backup_id == item.backup_id)
        )
        extra: dict[str, Any] = {
            "backup": {"backup_id": item.backup_id, "backup_name": item.name},
            "scrub": {"damaged": item.objects},
        }
        for project_id in [item.project_id, *recipients]:
            oplogs.start(session, project_id, "scrub", status="failed", extra=extra)


def scrub_tick(runtime: Runtime) -> Callable[[], None]:
    """A `WorkerPool.tick` hook: a scrub every `scrub_period_hours` (0 turns it off)."""
    hours = runtime.settings.scrub_period_hours
    if hours <= 0:
        return lambda: None
    deep = runtime.settings.scrub_deep
    started = [False]

    def action() -> None:
        if not started[0]:  # the first period starts with the process, not a scrub
            started[0] = True
            return
        _scheduled(runtime, deep)

    return throttled(timedelta(hours=hours), action, "store scrub")


def _scheduled(runtime: Runtime, deep: bool) -> None:
    result = scrub(runtime, deep=deep)
    if not result.ok:
        log.error("scrub found %d problems: %s", len(result.errors), "; ".join(result.errors[:5]))


def start_scrub(session: Session, deep: bool) -> Job:
    """A scrub as a job, run once (the operator's API)."""
    return ScrubPayload(deep=deep).enqueue(session, None, max_attempts=1)


def latest_scrub(session: Session) -> OperationLog | None:
    """The operator's log of the last scrub, if any has run."""
    return session.scalar(
        select(OperationLog)
        .where(OperationLog.project_id == "", OperationLog.operation_type == "scrub")
        .order_by(OperationLog.created_at.desc(), OperationLog.id.desc())
        .limit(1)
    )


class ScrubJob(RuntimeJob):
    """A scrub asked for through the operator's API (admin_routes.py)."""

    def run(self, ctx: JobContext) -> Mapping[str, Any] | None:
        runtime = self.runtime
        result = scrub(runtime, deep=ScrubPayload.of(ctx).deep)
        return {"ok": result.ok, "errors": len(result.errors), "damaged": len(result.damaged)}

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        del ctx
        log.error("scrub job failed: %s", error)
