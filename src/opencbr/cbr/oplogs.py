"""Operation logs: one row per backup, restore, delete or share action, readable by its project.

Share actions (S15) are logged for both sides: the owner's project and the recipient's project
each get a row, so either can read what happened with `ListOpLogs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor
from opencbr.core.db import rows_of
from opencbr.core.ids import is_uuid, new_uuid

from .errors import OperationLogNotFound
from .models import OperationLog, Vault
from .resources import PROVIDER_IDS

__all__ = [
    "LogFields",
    "OpLogFilters",
    "completed",
    "finish",
    "get_oplog",
    "list_oplogs",
    "record",
    "start",
]


class LogFields(TypedDict, total=False):
    """What a log may say besides its project and operation (each has a default)."""

    vault: Vault | None
    checkpoint_id: str
    policy_id: str
    resource: tuple[str, str, str] | None  # id, type, name
    extra: dict[str, Any] | None
    status: str  # "running" unless said


def start(
    session: Session, project_id: str, operation_type: str, **fields: Unpack[LogFields]
) -> OperationLog:
    """A log added to the unit of work as an ORM object, which its caller may still change (a
    job that carries the action on ends it with `finish`)."""
    log = OperationLog(**_values(project_id, operation_type, fields))
    session.add(log)  # inserted with the unit of work's next flush, batched with the others
    return log


def completed(project_id: str, operation_type: str, **fields: Unpack[LogFields]) -> dict[str, Any]:
    """A log of an action that completed within the request (a share added, accepted, ...),
    for `record`."""
    return _values(project_id, operation_type, {"status": "success", **fields})


_INSERT = insert(OperationLog)  # built once, as are the other statements of every share call


def record(session: Session, *logs: dict[str, Any]) -> None:
    """Write `completed` logs now, in one statement. Nothing reads them back or changes them
    in the request, so no ORM objects: the ORM's unit of work took twice the CPU for two."""
    rows_of(session).execute(_INSERT, list(logs))


def _values(project_id: str, operation_type: str, fields: LogFields) -> dict[str, Any]:
    vault = fields.get("vault")
    status = fields.get("status", "running")
    resource_id, resource_type, resource_name = fields.get("resource") or ("", "", "")
    now = utcnow()
    return {
        "id": new_uuid(),
        "project_id": project_id,
        "operation_type": operation_type,
        "status": status,
        "provider_id": PROVIDER_IDS.get(vault.object_type, "") if vault else "",
        "vault_id": vault.id if vault else "",
        "vault_name": vault.name if vault else "",
        "checkpoint_id": fields.get("checkpoint_id", ""),
        "policy_id": fields.get("policy_id", ""),
        "resource_id": resource_id,
        "resource_type": resource_type,
        "resource_name": resource_name,
        "extra_info": fields.get("extra") or {},
        "started_at": now,
        "ended_at": now if status != "running" else None,
    }


def finish(
    session: Session,
    log_id: str,
    status: str,
    error_code: str = "",
    error_message: str = "",
    progress: int = 100,
    extra: dict[str, Any] | None = None,
) -> None:
    log = session.get(OperationLog, log_id)
    if log is None:
        return
    log.status, log.error_code, log.error_message = status, error_code, error_message
    log.ended_at = utcnow()
    info = dict(log.extra_info)  # a new dict (and a new `common`): the ORM sees the change
    info["common"] = {**info.get("common", {}), "progress": progress}
    info.update(extra or {})
    log.extra_info = info


@dataclass(frozen=True)
class OpLogFilters:
    operation_type: str | None = None
    status: str | None = None
    provider_id: str | None = None
    resource_id: str | None = None
    resource_name: str | None = None
    vault_id: str | None = None
    vault_name: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    limit: int = 1000
    offset: int = 0


def list_oplogs(
    session: Session, actor: Actor, filters: OpLogFilters
) -> tuple[list[OperationLog], int]:
    query = select(OperationLog).where(OperationLog.project_id == actor.project_id)
    for column in ("operation_type", "status", "provider_id", "resource_id", "vault_id"):
        value = getattr(filters, column)
        if value:
            query = query.where(getattr(OperationLog, column) == value)
    if filters.resource_name:
        query = query.where(
            OperationLog.resource_name.contains(filters.resource_name, autoescape=True)
        )
    if filters.vault_name:
        query = query.where(OperationLog.vault_name.contains(filters.vault_name, autoescape=True))
    if filters.start_time:
        query = query.where(OperationLog.created_at >= filters.start_time)
    if filters.end_time:
        query = query.where(OperationLog.created_at <= filters.end_time)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.order_by(OperationLog.created_at.desc(), OperationLog.id.desc())
    return list(session.scalars(page.limit(filters.limit).offset(filters.offset))), count


def get_oplog(session: Session, actor: Actor, log_id: str) -> OperationLog:
    log = None
    if is_uuid(log_id):
        log = session.scalar(
            select(OperationLog).where(
                OperationLog.id == log_id, OperationLog.project_id == actor.project_id
            )
        )
    if log is None:
        raise OperationLogNotFound()
    return log
