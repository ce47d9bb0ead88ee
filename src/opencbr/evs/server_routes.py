"""Our server calls (`/v1/{project_id}/servers...`): create with disks, list, show, attach,
detach, stop, start, delete (`?delete_disks=true` deletes the disks too)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.core.idempotency import idempotent
from opencbr.core.routing import JSONRoute
from opencbr.core.web import RuntimeDep, SessionDep
from opencbr.iam.auth import ActorDep

from . import servers, service
from .errors import CLIENT_TOKEN_ERRORS
from .models import Server
from .responses import ServerCreated, ServerJobs, ServerList, ServerOne, VolumeOne
from .schemas import AttachBody, CreateServerBody, DiskChoiceIn
from .views import server_view, volume_view

__all__ = ["router"]

router = APIRouter(prefix="/v1/{project_id}/servers", tags=["evs"], route_class=JSONRoute)


def _choice(choice: DiskChoiceIn) -> servers.DiskChoice:
    return servers.DiskChoice(
        disk_id=choice.volume_id,
        size_gb=choice.size,
        volume_type=choice.volume_type,
        encrypted=choice.encrypted,
        kms_key_id=choice.kms_key_id,
        name=choice.name,
    )


def _view(session: Session, server: Server) -> dict[str, Any]:
    return server_view(server, service.server_disks(session, server.id))


@router.post("", status_code=202, operation_id="CreateServer", response_model=ServerCreated)
@idempotent(CLIENT_TOKEN_ERRORS)
def create_server(
    body: CreateServerBody, actor: ActorDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    given = body.server
    spec = servers.ServerSpec(
        name=given.name,
        system_disk=_choice(given.system_disk),
        data_disks=[_choice(c) for c in given.data_disks],
        availability_zone=given.availability_zone,
        flavor=given.flavor,
        metadata=dict(given.metadata),
    )
    server, job = servers.create_server(session, runtime, actor, spec)
    return {"server": _view(session, server), "job_id": job.id}


@router.get("", operation_id="ListServers", response_model=ServerList)
def list_servers(
    actor: ActorDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    query = (
        select(Server)
        .where(Server.project_id == actor.project_id)
        .order_by(Server.created_at.desc(), Server.id)
        .offset(offset)
        .limit(limit)
    )
    found = [_view(session, s) for s in session.scalars(query)]
    return {"servers": found, "count": len(found)}


@router.get("/{server_id}", operation_id="ShowServer", response_model=ServerOne)
def show_server(server_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    assert actor.project_id is not None
    return {"server": _view(session, service.get_server(session, actor.project_id, server_id))}


@router.post("/{server_id}/attach", operation_id="AttachVolume", response_model=VolumeOne)
def attach(
    server_id: str, body: AttachBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    return {"volume": volume_view(servers.attach_disk(session, actor, server_id, body.volume_id))}


@router.post("/{server_id}/detach", operation_id="DetachVolume", response_model=VolumeOne)
def detach(
    server_id: str, body: AttachBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    return {"volume": volume_view(servers.detach_disk(session, actor, server_id, body.volume_id))}


@router.post("/{server_id}/stop", operation_id="StopServer", response_model=ServerOne)
def stop(server_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    return {"server": _view(session, servers.stop_server(session, actor, server_id))}


@router.post("/{server_id}/start", operation_id="StartServer", response_model=ServerOne)
def start(server_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    return {"server": _view(session, servers.start_server(session, actor, server_id))}


@router.delete(
    "/{server_id}", status_code=202, operation_id="DeleteServer", response_model=ServerJobs
)
def delete(
    server_id: str, actor: ActorDep, session: SessionDep, delete_disks: bool = False
) -> dict[str, Any]:
    jobs = servers.delete_server(session, actor, server_id, delete_disks=delete_disks)
    return {"job_ids": [job.id for job in jobs]}
