"""CBR protectable-resource routes: the caller's disks and servers as backup candidates
(rules in `protectables`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from opencbr.core.routing import JSONRoute
from opencbr.core.web import SessionDep
from opencbr.iam.auth import ActorDep

from . import protectables
from .responses_more import ProtectableList, ProtectableOne
from .vault_views import vault_out

__all__ = ["router"]

router = APIRouter(
    prefix="/v3/{project_id}", tags=["cbr", "cbr-protectables"], route_class=JSONRoute
)
Name = Annotated[str | None, Query(max_length=255)]


def _view(session: Session, found: protectables.Protectable) -> dict[str, Any]:
    reason = found.blocked_reason
    result: dict[str, Any] = {
        "result": reason is None,
        "vault": vault_out(session, found.vault) if found.vault is not None else None,
        "code": "BackupService.6116" if reason else "",
        "reason": reason or "",
        "message": reason or "",
    }
    return {
        "id": found.id,
        "name": found.name,
        "type": found.type,
        "size": found.size_gb,
        "status": found.status,
        "detail": found.detail,
        "children": found.children,
        "protectable": result,
    }


@router.get(
    "/protectables/{protectable_type}/instances",
    operation_id="ListProtectable",
    response_model=ProtectableList,
)
def list_protectable(
    protectable_type: str,
    actor: ActorDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    name: Name = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    id: Annotated[str | None, Query(max_length=64)] = None,
    server_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    where = protectables.ProtectableFilter(name=name, status=status, id=id, server_id=server_id)
    found = protectables.list_protectables(session, actor, protectable_type, where, limit, offset)
    return {"instances": [_view(session, p) for p in found]}


@router.get(
    "/protectables/{protectable_type}/instances/{instance_id}",
    operation_id="ShowProtectable",
    response_model=ProtectableOne,
)
def show_protectable(
    protectable_type: str, instance_id: str, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    found = protectables.find(session, actor, protectable_type, instance_id)
    return {"instance": _view(session, found)}
